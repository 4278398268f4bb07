"""Sparse (lexical) DashScope vectors for LlamaIndex, and ready functions for Qdrant hybrid search.

DashScope returns one ``(index, value, token)`` entry per token occurrence, so an index can
repeat. Every vector leaving this module is merged first (unique ascending indices, the largest
weight kept), which is what Qdrant and Milvus require.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import httpx
from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding, SparseEmbedding
from llama_index.core.bridge.pydantic import Field

from dashscope_embed import DEFAULT_TEXT_MODEL, OutputType, SparseVector

from ._common import DashScopeSettings, Role
from ._endpoint import EndpointMixin
from ._support import sparse_rows

__all__ = [
    "DashScopeSparseEmbedding",
    "QdrantSparseFns",
    "SparseEncoder",
    "SparseSource",
    "qdrant_sparse_fns",
]

#: Qdrant's ``SparseEncoderCallable``: texts → (indices per text, values per text).
SparseEncoder = Callable[[list[str]], tuple[list[list[int]], list[list[float]]]]


class SparseSource(Protocol):
    """What the store adapters need: merged sparse vectors for documents or queries."""

    def _sparse_vectors(self, texts: Sequence[str], role: Role) -> list[SparseVector]: ...

    async def _asparse_vectors(self, texts: Sequence[str], role: Role) -> list[SparseVector]: ...


class DashScopeSparseEmbedding(DashScopeSettings, BaseSparseEmbedding):
    """DashScope sparse embeddings (``output_type="sparse"``) for LlamaIndex.

    Returns ``{index: weight}`` dicts with unique indices. Query hooks send
    ``text_type="query"``, text hooks ``"document"``; batches are real batches and async hooks
    use the native async client. Takes the same options as ``DashScopeEmbedding`` except
    ``dimension`` and ``output_type`` (sparse output needs text-embedding-v3/v4 or qwen3.7).

    Example:
        >>> sparse = DashScopeSparseEmbedding()  # doctest: +SKIP
        >>> sparse.get_query_embedding("hybrid search")  # doctest: +SKIP
        {1024: 0.31, 88734: 0.12, ...}
    """

    model_name: str = Field(default=DEFAULT_TEXT_MODEL, description="DashScope model id.")
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

    @classmethod
    def class_name(cls) -> str:
        return "DashScopeSparseEmbedding"

    def _output_type(self) -> OutputType:
        return "sparse"

    def _sparse_vectors(self, texts: Sequence[str], role: Role) -> list[SparseVector]:
        return sparse_rows(self._embed(texts, role)) if texts else []

    async def _asparse_vectors(self, texts: Sequence[str], role: Role) -> list[SparseVector]:
        return sparse_rows(await self._aembed(texts, role)) if texts else []

    def _get_query_embedding(self, query: str) -> SparseEmbedding:
        return _as_dict(self._sparse_vectors([query], "query")[0])

    async def _aget_query_embedding(self, query: str) -> SparseEmbedding:
        return _as_dict((await self._asparse_vectors([query], "query"))[0])

    def _get_text_embedding(self, text: str) -> SparseEmbedding:
        return _as_dict(self._sparse_vectors([text], "document")[0])

    async def _aget_text_embedding(self, text: str) -> SparseEmbedding:
        return _as_dict((await self._asparse_vectors([text], "document"))[0])

    def _get_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return [_as_dict(v) for v in self._sparse_vectors(texts, "document")]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return [_as_dict(v) for v in await self._asparse_vectors(texts, "document")]


def _as_dict(vec: SparseVector) -> SparseEmbedding:
    return dict(zip(vec.indices, vec.values, strict=True))


class QdrantSparseFns(NamedTuple):
    """``QdrantVectorStore(..., enable_hybrid=True, **fns._asdict())`` fills both arguments."""

    sparse_doc_fn: SparseEncoder
    sparse_query_fn: SparseEncoder


def qdrant_sparse_fns(source: SparseSource | None = None, **kwargs: Any) -> QdrantSparseFns:
    """Sparse encoders for ``QdrantVectorStore(sparse_doc_fn=…, sparse_query_fn=…)``.

    Args:
        source: A :class:`DashScopeSparseEmbedding`, or the index's ``DashScopeEmbedding``
            (with ``output_type="dense&sparse"`` its calls already carry the sparse vectors, so
            the store's encoders send no request for texts the index just embedded). ``None``
            builds a ``DashScopeSparseEmbedding(**kwargs)``.
        **kwargs: Options for that ``DashScopeSparseEmbedding`` (only when ``source`` is None).

    Returns:
        ``(sparse_doc_fn, sparse_query_fn)``: documents go out as ``text_type="document"``,
        queries as ``"query"``; one request per batch Qdrant hands over.
    """
    src: SparseSource = source if source is not None else DashScopeSparseEmbedding(**kwargs)

    def encoder(role: Role) -> SparseEncoder:
        def encode(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
            vectors = src._sparse_vectors(texts, role)
            return [list(v.indices) for v in vectors], [list(v.values) for v in vectors]

        encode.__name__ = f"dashscope_sparse_{role}_fn"
        return encode

    return QdrantSparseFns(encoder("document"), encoder("query"))
