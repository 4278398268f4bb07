"""``DashScopeMilvusSparseEmbeddings``: DashScope sparse vectors for langchain-milvus.

``Milvus(embedding_function=[dense, sparse])`` finds the sparse function with
``isinstance(..., BaseSparseEmbedding)``, so duck typing is not enough: this class subclasses it.
List the dense model first: Milvus embeds with each function in list order, so the sparse one
then finds the sparse halves of a ``dense&sparse`` call (see ``DashScopeEmbeddings.sparse_view``).
"""

from __future__ import annotations

from ._sparse import SparseBase

try:
    from langchain_milvus.utils.sparse import BaseSparseEmbedding

    _MISSING = None
except ImportError:  # pragma: no cover - exercised in a subprocess without langchain-milvus
    from abc import ABC as BaseSparseEmbedding  # type: ignore[assignment]

    _MISSING = 'langchain-milvus is not installed: pip install "dashscope-embed[milvus]"'

__all__ = ["DashScopeMilvusSparseEmbeddings"]


class DashScopeMilvusSparseEmbeddings(SparseBase, BaseSparseEmbedding):
    """DashScope ``output_type="sparse"`` vectors as ``{token_index: weight}`` dicts.

    Example::

        from langchain_milvus import Milvus
        from langchain_dashscope_embed import DashScopeEmbeddings

        dense = DashScopeEmbeddings(output_type="dense&sparse")
        store = Milvus(embedding_function=[dense, dense.sparse_view("milvus")],
                       vector_field=["dense", "sparse"], connection_args={"uri": "./m.db"})
    """

    _missing = _MISSING

    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """Sparse vectors of corpus texts (``text_type="document"``), one per text, in order."""
        return [v.as_dict() for v in self._vectors(texts, "document")]

    def embed_query(self, query: str) -> dict[int, float]:
        """The sparse vector of a query (``text_type="query"``)."""
        return self._vectors([query], "query")[0].as_dict()

    async def aembed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """Async :meth:`embed_documents` on the core's asyncio client (no threads)."""
        return [v.as_dict() for v in await self._avectors(texts, "document")]

    async def aembed_query(self, query: str) -> dict[int, float]:
        """Async :meth:`embed_query` on the core's asyncio client (no threads)."""
        return (await self._avectors([query], "query"))[0].as_dict()
