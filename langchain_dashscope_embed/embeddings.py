"""``DashScopeEmbeddings``: LangChain text embeddings over the dashscope-embed core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from pydantic import Field

from dashscope_embed import DEFAULT_TEXT_MODEL, EmbeddingResult, OutputType, TextType
from dashscope_embed.adapters import Space, reject_multimodal_model

from ._base import DashScopeFields
from ._sparse import SparseBase

try:
    from langchain_core.embeddings import Embeddings
except ImportError as exc:  # pragma: no cover - depends on the environment
    _HINT = 'langchain-core is missing: pip install "dashscope-embed[langchain]"'
    raise ImportError(_HINT) from exc

if TYPE_CHECKING:
    from .milvus import DashScopeMilvusSparseEmbeddings
    from .qdrant import DashScopeSparseEmbeddings

__all__ = ["DashScopeEmbeddings"]


class DashScopeEmbeddings(DashScopeFields, Embeddings):
    """Alibaba Cloud Model Studio (DashScope) text embeddings, e.g. ``text-embedding-v4``.

    A drop-in replacement for ``langchain_community.embeddings.DashScopeEmbeddings``: same
    ``model`` field and ``DASHSCOPE_API_KEY``, ``dashscope_api_key=`` still accepted.

    Setup: ``pip install "dashscope-embed[langchain]"``, ``export DASHSCOPE_API_KEY=sk-...``.

    Key init args:
        model: Model id (default ``text-embedding-v4``).
        dimension: Output size (v4: 64..2048; default: the model's own, 1024 for v4).
        query_instruct: Task instruction sent as ``instruct`` with queries (v4 and newer).
        output_type: ``"dense"`` or ``"dense&sparse"`` (one call feeds :meth:`sparse_view`).
        api_key / region / base_url / workspace: Where to call; arguments win over
            ``DASHSCOPE_API_KEY`` / ``DASHSCOPE_REGION`` / ``DASHSCOPE_BASE_URL`` /
            ``DASHSCOPE_WORKSPACE``.
        timeout / max_retries / max_concurrency: For the core (batching, retries, concurrency).
        rpm / tpm: Your quota per model, if you know it: paced to it from the first request.

    Instantiate / embed::

        from langchain_dashscope_embed import DashScopeEmbeddings

        emb = DashScopeEmbeddings(dimension=512)
        vectors = emb.embed_documents(["Hangzhou is in Zhejiang.", "Tea grows on hills."])
        query = emb.embed_query("Where is Hangzhou?")          # text_type="query"
        query = await emb.aembed_query("Where is Hangzhou?")   # native asyncio
        emb.usage.total_tokens                                 # tokens billed so far
    """

    model: str = DEFAULT_TEXT_MODEL
    output_type: Literal["dense", "dense&sparse"] = "dense"
    sparse_cache_size: int = Field(default=10_000, ge=0)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        reject_multimodal_model(self.model, use="DashScopeMultimodalEmbeddings")
        # An empty call validates model, dimension and instruct now and sends nothing.
        self._build_runtime(
            lambda c: c.embed_texts([], **self._options("query", self.output_type)),
            sparse_cache_size=self.sparse_cache_size,
        )

    def _options(self, text_type: TextType, output_type: OutputType) -> dict[str, Any]:
        return {
            "model": self.model,
            "text_type": text_type,
            "dimension": None if output_type == "sparse" else self.dimension,
            "output_type": output_type,
            "instruct": self.query_instruct if text_type == "query" else None,
            "max_batch_size": self.max_batch_size,
        }

    def _space(self, text_type: TextType) -> Space:
        """The sparse cache's key prefix: a cached vector is only served to the same space."""
        instruct = self.query_instruct if text_type == "query" else None
        return (self.model, self.dimension, instruct, text_type)

    def _embed(
        self, texts: Sequence[str], text_type: TextType, output_type: OutputType | None = None
    ) -> EmbeddingResult:
        out = output_type or self.output_type
        result = self._rt.client.embed_texts(texts, **self._options(text_type, out))
        space = self._space(text_type) if out == "dense&sparse" else None
        return self._rt.record(result, texts=texts, space=space)

    async def _aembed(
        self, texts: Sequence[str], text_type: TextType, output_type: OutputType | None = None
    ) -> EmbeddingResult:
        out = output_type or self.output_type
        client = await self._rt.async_client()
        result = await client.embed_texts(texts, **self._options(text_type, out))
        space = self._space(text_type) if out == "dense&sparse" else None
        return self._rt.record(result, texts=texts, space=space)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed corpus texts (``text_type="document"``), one plain-float vector per text."""
        return self._embed(texts, "document").tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query (``text_type="query"``, plus ``instruct`` if set)."""
        return self._embed([text], "query").tolist()[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` on the core's asyncio client (no threads)."""
        return (await self._aembed(texts, "document")).tolist()

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query` on the core's asyncio client (no threads)."""
        return (await self._aembed([text], "query")).tolist()[0]

    @overload
    def sparse_view(self, kind: Literal["qdrant"] = "qdrant") -> DashScopeSparseEmbeddings: ...
    @overload
    def sparse_view(self, kind: Literal["milvus"]) -> DashScopeMilvusSparseEmbeddings: ...
    def sparse_view(
        self, kind: Literal["qdrant", "milvus"] = "qdrant"
    ) -> DashScopeSparseEmbeddings | DashScopeMilvusSparseEmbeddings:
        """A sparse embeddings object sharing this one's calls (see ``output_type``).

        With ``output_type="dense&sparse"`` every dense call also keeps the sparse half of its
        texts (a bounded cache of ``sparse_cache_size`` texts), and the view reads it before
        calling the API, so a hybrid index pays for each text once. ``kind="qdrant"`` gives a
        langchain-qdrant ``SparseEmbeddings``; ``kind="milvus"`` a langchain-milvus
        ``BaseSparseEmbedding``.
        """
        if kind == "milvus":
            from .milvus import DashScopeMilvusSparseEmbeddings

            return DashScopeMilvusSparseEmbeddings(source=self)
        from .qdrant import DashScopeSparseEmbeddings

        return DashScopeSparseEmbeddings(source=self)

    def cache_namespace(self, kind: Literal["document", "query"] = "document") -> str:
        """A cache-key prefix naming this instance's vector space (see :mod:`.cache`)."""
        from .cache import cache_namespace

        return cache_namespace(self, kind)


SparseBase.make_source = DashScopeEmbeddings
