"""A DashScope sparse encoder for ``MilvusVectorStore(sparse_embedding_function=…)``.

llama-index-vector-stores-milvus checks ``isinstance(fn, BaseSparseEmbeddingFunction)``, so duck
typing is not enough. That package is optional (it pulls pymilvus), so nothing here imports it at
module import: the first adapter created registers its class as a virtual subclass of Milvus's
ABC when that ABC is importable, and is a plain class otherwise.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._common import Role
from .sparse import DashScopeSparseEmbedding, SparseSource

__all__ = ["DashScopeMilvusSparseFunction"]

_MILVUS_BASE = ("llama_index.vector_stores.milvus.utils", "BaseSparseEmbeddingFunction")
_registered = False


def _register_with_milvus() -> bool:
    """Register the adapter with Milvus's ABC if the package is installed; True once done."""
    global _registered
    if not _registered:
        try:
            base = getattr(importlib.import_module(_MILVUS_BASE[0]), _MILVUS_BASE[1])
        except (ImportError, AttributeError):
            return False
        base.register(DashScopeMilvusSparseFunction)
        _registered = True
    return True


class DashScopeMilvusSparseFunction:
    """Milvus ``BaseSparseEmbeddingFunction`` contract over DashScope sparse vectors.

    ``encode_documents`` sends ``text_type="document"``, ``encode_queries`` ``"query"``; both
    return one ``{index: weight}`` dict (unique indices) per text, in order, from one batched
    call. ``async_encode_*`` use the native async client.

    Args:
        source: A ``DashScopeSparseEmbedding``, or the index's ``DashScopeEmbedding`` (with
            ``output_type="dense&sparse"``, texts it already embedded cost no extra request).
            ``None`` builds a ``DashScopeSparseEmbedding(**kwargs)``.
        **kwargs: Options for that ``DashScopeSparseEmbedding`` (only when ``source`` is None).

    Example:
        >>> from llama_index.vector_stores.milvus import MilvusVectorStore  # doctest: +SKIP
        >>> store = MilvusVectorStore(  # doctest: +SKIP
        ...     uri="./milvus.db", dim=1024, enable_sparse=True,
        ...     sparse_embedding_function=DashScopeMilvusSparseFunction())
    """

    def __init__(self, source: SparseSource | None = None, **kwargs: Any) -> None:
        self._source: SparseSource = (
            source if source is not None else DashScopeSparseEmbedding(**kwargs)
        )
        _register_with_milvus()

    def __repr__(self) -> str:
        return f"DashScopeMilvusSparseFunction(source={type(self._source).__name__})"

    def _encode(self, texts: list[str], role: Role) -> list[dict[int, float]]:
        vectors = self._source._sparse_vectors(texts, role)
        return [dict(zip(v.indices, v.values, strict=True)) for v in vectors]

    async def _aencode(self, texts: list[str], role: Role) -> list[dict[int, float]]:
        vectors = await self._source._asparse_vectors(texts, role)
        return [dict(zip(v.indices, v.values, strict=True)) for v in vectors]

    def encode_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """Sparse vectors for search queries (``text_type="query"``)."""
        return self._encode(queries, "query")

    def encode_documents(self, documents: list[str]) -> list[dict[int, float]]:
        """Sparse vectors for stored documents (``text_type="document"``)."""
        return self._encode(documents, "document")

    async def async_encode_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """Async :meth:`encode_queries` (native async, no thread)."""
        return await self._aencode(queries, "query")

    async def async_encode_documents(self, documents: list[str]) -> list[dict[int, float]]:
        """Async :meth:`encode_documents` (native async, no thread)."""
        return await self._aencode(documents, "document")
