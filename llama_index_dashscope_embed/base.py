"""``DashScopeEmbedding``: LlamaIndex dense embeddings over the dashscope-embed core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import httpx
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from dashscope_embed import DEFAULT_TEXT_MODEL, EmbeddingResult, OutputType, SparseVector

from ._common import DashScopeSettings, Role
from ._endpoint import EndpointMixin
from ._stash import SparseStash
from ._support import fill_sparse

__all__ = ["DashScopeEmbedding"]


class DashScopeEmbedding(DashScopeSettings, BaseEmbedding):
    """Alibaba Cloud Model Studio (DashScope) text embeddings for LlamaIndex.

    Query hooks send ``text_type="query"`` (plus ``query_instruct`` when set) and text hooks
    ``"document"``; batch hooks hand ``embed_batch_size`` texts at a time to the core, which sends
    them as concurrent requests of the model's row limit; the async hooks use the core's native
    async client. One throttle per instance bounds requests in flight across all of them.
    Failures raise the core's typed errors, never ``None`` or ``[]``.

    Every option that changes the vectors is a public field, so ``to_dict()`` / ``from_dict()``
    round-trip them and ``IngestionPipeline`` caches invalidate when one changes. The key comes
    from ``api_key=`` or ``DASHSCOPE_API_KEY`` and is never serialised.

    Args:
        model_name: ``text-embedding-v4`` (default), ``-v3``, ``-v2``, ``-v1``,
            ``qwen3.7-text-embedding``... Unknown names work with conservative limits.
        dimension: Output size (validated per model); ``None`` keeps the model's default.
        output_type: ``"dense"``, or ``"dense&sparse"`` to fetch the sparse vectors in the same
            call so that :func:`qdrant_sparse_fns` / the Milvus adapter built from this object
            send no second request.
        text_type: ``"auto"`` (query vs document per hook), or ``"document"`` / ``"query"`` for
            every text.
        query_instruct: Instruction sent with queries (text-embedding-v4, qwen3.7).
        region / base_url / workspace: Endpoint (argument > environment > ``cn-beijing``).
        timeout / max_retries / max_concurrency: Passed to the core (not serialised).
        rpm / tpm: Your quota per model, if known: paced to it from the first request.
        embed_batch_size: Texts per LlamaIndex batch call (default 2048); the core splits each
            into requests of the model's row limit and sends them side by side. Smaller
            values give finer callback/progress events and less concurrency.
        num_workers: Batches in flight in ``aget_text_embedding_batch`` (default 8).
        api_key / http_client / async_http_client: Keyword-only, never serialised.

    Example:
        >>> from llama_index.core import Settings
        >>> Settings.embed_model = DashScopeEmbedding(dimension=512)  # doctest: +SKIP
    """

    model_name: str = Field(default=DEFAULT_TEXT_MODEL, description="DashScope model id.")
    dimension: int | None = Field(default=None, description="Output dimension (None: default).")
    output_type: Literal["dense", "dense&sparse"] = Field(
        default="dense", description="dense&sparse also keeps the sparse halves for hybrid stores."
    )
    num_workers: int | None = Field(default=8, description="Batches in flight (async batch).")

    _stash: SparseStash = PrivateAttr(default_factory=SparseStash)

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

    @classmethod
    def class_name(cls) -> str:
        return "DashScopeEmbedding"

    def _output_type(self) -> OutputType:
        return self.output_type

    def _keep(self, texts: Sequence[str], role: Role, res: EmbeddingResult) -> list[Embedding]:
        if res.sparse is not None:
            self._stash.put(self._stash_prefix(role), texts, res.sparse)
        return res.tolist()

    def _stash_prefix(self, role: Role) -> tuple[str, str | None, str | None]:
        opts = self._call_options(role)
        return (self.model_name, opts["text_type"], opts["instruct"])

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._keep([query], "query", self._embed([query], "query"))[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._keep([query], "query", await self._aembed([query], "query"))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._keep([text], "document", self._embed([text], "document"))[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return self._keep([text], "document", await self._aembed([text], "document"))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._keep(texts, "document", self._embed(texts, "document"))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._keep(texts, "document", await self._aembed(texts, "document"))

    # The sparse side (sparse.qdrant_sparse_fns, milvus adapter): stashed halves, then one call.
    def _sparse_vectors(self, texts: Sequence[str], role: Role) -> list[SparseVector]:
        found = self._stash.get(self._stash_prefix(role), texts)
        missing = [t for t, v in zip(texts, found, strict=True) if v is None]
        res = self._embed(missing, role, "sparse") if missing else None
        return fill_sparse(found, res)

    async def _asparse_vectors(self, texts: Sequence[str], role: Role) -> list[SparseVector]:
        found = self._stash.get(self._stash_prefix(role), texts)
        missing = [t for t, v in zip(texts, found, strict=True) if v is None]
        res = await self._aembed(missing, role, "sparse") if missing else None
        return fill_sparse(found, res)
