"""``DashScopeMultimodalEmbeddings``: texts and images in one vector space, for LangChain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashscope_embed import (
    DEFAULT_MULTIMODAL_MODEL,
    EmbeddingResult,
    Image,
    InvalidInputError,
    MultimodalInput,
)

from ._base import DashScopeFields

try:
    from langchain_core.embeddings import Embeddings
except ImportError as exc:  # pragma: no cover - depends on the environment
    _HINT = 'langchain-core is missing: pip install "dashscope-embed[langchain]"'
    raise ImportError(_HINT) from exc

__all__ = ["DashScopeMultimodalEmbeddings"]


class DashScopeMultimodalEmbeddings(DashScopeFields, Embeddings):
    """Alibaba Cloud Model Studio (DashScope) multimodal embeddings: texts and images together.

    Texts (``embed_documents`` / ``embed_query``) and images (``embed_image``) land in the same
    vector space, so a text query finds images and an image finds similar images. This is the
    ``embed_image(uris=...)`` contract of ``langchain_chroma.Chroma.add_images`` and
    ``similarity_search_by_image``.

    Setup:
        ``pip install "dashscope-embed[langchain]"`` and ``export DASHSCOPE_API_KEY=sk-...``.

    Key init args:
        model: ``tongyi-embedding-vision-plus`` (default), ``tongyi-embedding-vision-flash``,
            ``qwen3-vl-embedding``, ``multimodal-embedding-v1`` (Beijing only)...
        dimension: Output size (validated per model; default: the model's own).
        query_instruct: Instruction sent with queries only (qwen3-vl-embedding).
        api_key / region / base_url / workspace: Where to call; arguments win over
            ``DASHSCOPE_API_KEY`` / ``DASHSCOPE_REGION`` / ``DASHSCOPE_BASE_URL`` /
            ``DASHSCOPE_WORKSPACE``.
        timeout / max_retries / max_concurrency: Passed to the core, which batches to the
            model's element and image limits, retries per batch and keeps input order.

    Instantiate / embed::

        from langchain_dashscope_embed import DashScopeMultimodalEmbeddings

        emb = DashScopeMultimodalEmbeddings()
        images = emb.embed_image(uris=["photos/cat.png", "https://example.com/dog.jpg"])
        query = emb.embed_query("a cat on a sofa")             # same space as the images
        images = await emb.aembed_image(uris=["photos/cat.png"])

    An image URI is a local path (read and sent inline as a data URI, never uploaded), an
    http(s) URL (fetched by the service) or a ``data:image/...;base64,`` URI. Texts are always
    texts: a text that names a file is embedded as the text it is.
    """

    model: str = DEFAULT_MULTIMODAL_MODEL

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # An empty call validates model, region, dimension and instruct now and sends nothing.
        self._build_runtime(lambda c: c.embed_multimodal([], **self._options(query=True)))

    def _options(self, *, query: bool) -> dict[str, Any]:
        return {
            "model": self.model,
            "dimension": self.dimension,
            "instruct": self.query_instruct if query else None,
            "max_batch_size": self.max_batch_size,
        }

    def _embed(self, inputs: Sequence[MultimodalInput], *, query: bool = False) -> EmbeddingResult:
        result = self._rt.client.embed_multimodal(inputs, **self._options(query=query))
        return self._rt.record(result)

    async def _aembed(
        self, inputs: Sequence[MultimodalInput], *, query: bool = False
    ) -> EmbeddingResult:
        client = await self._rt.async_client()
        result = await client.embed_multimodal(inputs, **self._options(query=query))
        return self._rt.record(result)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts into the multimodal space, one plain-float vector per text."""
        return self._embed(_texts(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query into the multimodal space (plus ``query_instruct`` if set)."""
        return self._embed([text], query=True).tolist()[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` on the core's asyncio client (no threads)."""
        return (await self._aembed(_texts(texts))).tolist()

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query` on the core's asyncio client (no threads)."""
        return (await self._aembed([text], query=True)).tolist()[0]

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images given as local paths, http(s) URLs or ``data:`` URIs.

        The signature is the one ``langchain_chroma.Chroma.add_images`` and
        ``similarity_search_by_image`` call (``embed_image(uris=[...])``).

        Raises:
            InvalidInputError: a missing file, an unsupported format or an image over the
                model's size limit, naming its index, before any request.
        """
        return self._embed(_images(uris)).tolist()

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image` on the core's asyncio client."""
        return (await self._aembed(_images(uris))).tolist()


def _texts(texts: Sequence[str]) -> Sequence[str]:
    if isinstance(texts, str):
        return texts  # the core names the mistake (a bare string is not a list of texts)
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"input {i} is {type(text).__name__}, not str: embed_documents takes texts "
                "(use embed_image for images)",
                index=i,
                rule="not_a_string",
            )
    return out


def _images(uris: Sequence[str]) -> list[MultimodalInput]:
    if isinstance(uris, str):
        raise TypeError("uris must be a list of image URIs, got a single string: wrap it as [uri]")
    return [Image(uri) for uri in uris]
