"""``DashScopeMultiModalEmbedding``: LlamaIndex image and text embeddings in one vector space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from llama_index.core.base.embeddings.base import Embedding
from llama_index.core.bridge.pydantic import Field, model_validator
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType

from dashscope_embed import DEFAULT_MULTIMODAL_MODEL, EmbeddingResult, Image, MultimodalInput
from dashscope_embed.adapters import Runtime

from ._endpoint import EndpointMixin
from ._support import record

__all__ = ["DashScopeMultiModalEmbedding"]

#: Inputs per LlamaIndex batch call: 5 requests of 20 images (tongyi-embedding-vision-*) side by
#: side; the model's element limit (20) made those one request per chunk, one after another.
MULTIMODAL_EMBED_BATCH_SIZE = 100


class DashScopeMultiModalEmbedding(EndpointMixin, MultiModalEmbedding):
    """Alibaba Cloud Model Studio (DashScope) multimodal embeddings for LlamaIndex.

    Images and texts go to the same multimodal model: one vector space, so
    ``MultiModalVectorStoreIndex`` can answer a text query with images. An image is a local path,
    an http(s) URL, a ``data:`` URI or a ``BytesIO`` (``ImageNode.resolve_image()``); local
    content is sent inline. The core splits batches to the model's element and image limits and
    runs them side by side; async hooks use its native async client. Failures raise typed errors.

    Args:
        model_name: ``tongyi-embedding-vision-plus`` (default), ``tongyi-embedding-vision-flash``,
            ``qwen3-vl-embedding``, ``multimodal-embedding-v1`` (Beijing only)...
        dimension: Output size (validated per model); ``None`` keeps the model's default.
        query_instruct: Instruction sent with queries only (qwen3-vl-embedding).
        region / base_url / workspace: Endpoint (argument > environment > ``cn-beijing``).
        timeout / max_retries / max_concurrency: Passed to the core (not serialised).
        embed_batch_size: Inputs per LlamaIndex batch, default 100 (chunks run one after another;
            a chunk's images are all encoded before its requests go: this bounds memory).
        api_key / http_client / async_http_client: Keyword-only, never serialised.

    Example:
        >>> from llama_index.core.indices import MultiModalVectorStoreIndex
        >>> emb = DashScopeMultiModalEmbedding()  # doctest: +SKIP
        >>> index = MultiModalVectorStoreIndex.from_documents(  # doctest: +SKIP
        ...     docs, embed_model=emb, image_embed_model=emb)
    """

    model_name: str = Field(default=DEFAULT_MULTIMODAL_MODEL, description="DashScope model id.")
    dimension: int | None = Field(default=None, description="Output dimension (None: default).")
    query_instruct: str | None = Field(default=None, description="Sent with queries only.")
    region: str | None = Field(default=None, description="Region preset (resolved at init).")
    base_url: str | None = Field(default=None, description="Explicit host (resolved at init).")
    # Transport knobs do not change the vectors: kept out of to_dict() (and cache hashes).
    workspace: str | None = Field(default=None, exclude=True)
    timeout: float | None = Field(default=None, exclude=True)
    max_retries: int | None = Field(default=None, exclude=True)
    max_concurrency: int | None = Field(default=None, exclude=True)
    num_workers: int | None = Field(default=8, description="Batches in flight (async batch).")

    def __init__(
        self,
        *,
        api_key: str | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **data: Any,
    ) -> None:
        """See ``EndpointMixin.__init__``; declared here so type checkers see ``api_key``."""
        EndpointMixin.__init__(  # explicit: type checkers see the pydantic-synthesised one
            self,
            api_key=api_key,
            http_client=http_client,
            async_http_client=async_http_client,
            **data,
        )

    @model_validator(mode="before")
    @classmethod
    def _default_batch_size(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("embed_batch_size") is None:
            data = {**data, "embed_batch_size": MULTIMODAL_EMBED_BATCH_SIZE}
        return data

    def _check_options(self, runtime: Runtime) -> None:
        # An empty call validates model, region, dimension and instruct; nothing is sent.
        runtime.sync.embed_multimodal([], **self._options(query=True))

    @classmethod
    def class_name(cls) -> str:
        return "DashScopeMultiModalEmbedding"

    def _options(self, *, query: bool = False) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "dimension": self.dimension,
            "instruct": self.query_instruct if query else None,
        }  # the core splits each LlamaIndex batch to the model's element and image limits

    def _embed(self, inputs: Sequence[MultimodalInput], *, query: bool = False) -> list[Embedding]:
        res = self._rt.sync.embed_multimodal(inputs, **self._options(query=query))
        return self._record(res)

    async def _aembed(
        self, inputs: Sequence[MultimodalInput], *, query: bool = False
    ) -> list[Embedding]:
        client = self._rt.aclient
        res = await client.embed_multimodal(inputs, **self._options(query=query))
        return self._record(res)

    def _record(self, res: EmbeddingResult) -> list[Embedding]:
        record(self._rt, res, text_type=None, output_type="dense")
        return res.tolist()

    # -- images ---------------------------------------------------------------------------------
    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._embed([Image(img_file_path)])[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return (await self._aembed([Image(img_file_path)]))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return self._embed([Image(p) for p in img_file_paths])

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[Embedding]:
        return await self._aembed([Image(p) for p in img_file_paths])

    # -- texts, in the same space ---------------------------------------------------------------
    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], query=True)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed([query], query=True))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed(texts)
