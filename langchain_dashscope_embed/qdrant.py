"""``DashScopeSparseEmbeddings``: DashScope sparse vectors as langchain-qdrant ``SparseEmbeddings``.

Use it as ``sparse_embedding=`` of ``QdrantVectorStore`` with ``RetrievalMode.SPARSE`` or
``HYBRID``. Repeated token indices (DashScope returns one entry per occurrence) are merged, so
every ``SparseVector`` has the unique indices Qdrant requires.
"""

from __future__ import annotations

from dashscope_embed import SparseVector as CoreSparseVector

from ._sparse import SparseBase

try:
    from langchain_qdrant import SparseEmbeddings, SparseVector

    _MISSING = None
except ImportError:  # pragma: no cover - exercised in a subprocess without langchain-qdrant
    from abc import ABC as SparseEmbeddings  # type: ignore[assignment]

    SparseVector = None  # type: ignore[assignment,misc]
    _MISSING = 'langchain-qdrant is not installed: pip install "dashscope-embed[qdrant]"'

__all__ = ["DashScopeSparseEmbeddings"]


class DashScopeSparseEmbeddings(SparseBase, SparseEmbeddings):
    """DashScope ``output_type="sparse"`` vectors for Qdrant sparse and hybrid retrieval.

    Example::

        from langchain_qdrant import QdrantVectorStore, RetrievalMode
        from langchain_dashscope_embed import DashScopeEmbeddings

        dense = DashScopeEmbeddings(output_type="dense&sparse")  # one call, both vectors
        store = QdrantVectorStore.from_texts(
            texts, dense, sparse_embedding=dense.sparse_view(),
            retrieval_mode=RetrievalMode.HYBRID, location=":memory:",
        )

    Standalone: ``DashScopeSparseEmbeddings(model="text-embedding-v4")`` calls the API itself.
    """

    _missing = _MISSING

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Sparse vectors of corpus texts (``text_type="document"``), one per text, in order."""
        return [_qdrant(v) for v in self._vectors(texts, "document")]

    def embed_query(self, text: str) -> SparseVector:
        """The sparse vector of a query (``text_type="query"``)."""
        return _qdrant(self._vectors([text], "query")[0])

    async def aembed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Async :meth:`embed_documents` on the core's asyncio client (no threads)."""
        return [_qdrant(v) for v in await self._avectors(texts, "document")]

    async def aembed_query(self, text: str) -> SparseVector:
        """Async :meth:`embed_query` on the core's asyncio client (no threads)."""
        return _qdrant((await self._avectors([text], "query"))[0])


def _qdrant(vector: CoreSparseVector) -> SparseVector:
    # Already merged by the source: unique ascending indices.
    return SparseVector(indices=list(vector.indices), values=list(vector.values))
