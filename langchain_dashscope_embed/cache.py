"""``cached_embeddings``: a ``CacheBackedEmbeddings`` that never mixes vector spaces.

LangChain's recipe (``namespace=embedder.model``) is not enough for DashScope: the same model
gives different vectors per ``dimension``, and a query vector (``text_type="query"``, maybe with
an ``instruct``) differs from the document vector of the same text. ``query_embedding_cache=True``
even reuses the *document* store for queries. This helper keys documents and queries under
:meth:`DashScopeEmbeddings.cache_namespace` ``("document")`` and ``("query")``, in one store.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Literal, Protocol, cast

from dashscope_embed import get_model

if TYPE_CHECKING:
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_core.embeddings import Embeddings
    from langchain_core.stores import ByteStore

__all__ = ["DenseSpace", "cache_namespace", "cached_embeddings"]


class DenseSpace(Protocol):
    """What names a dense vector space (``DashScopeEmbeddings`` has it; no import needed)."""

    @property
    def model(self) -> str: ...

    @property
    def dimension(self) -> int | None: ...

    @property
    def query_instruct(self) -> str | None: ...

    def cache_namespace(self, kind: Literal["document", "query"] = "document") -> str: ...


class CachableEmbeddings(DenseSpace, Protocol):
    """A ``DashScopeEmbeddings``: its space, and LangChain's two embedding calls."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


def cache_namespace(embeddings: DenseSpace, kind: Literal["document", "query"] = "document") -> str:
    """A cache-key prefix naming the vector space ``embeddings`` produces for ``kind`` texts.

    It covers the model, the effective dimension (``None`` and the model's default are the same
    space), the text type and, for queries, a digest of ``query_instruct``. ``output_type`` is
    left out: it does not change the dense vector. Only ``[A-Za-z0-9_.-]``, so it is safe as a
    ``LocalFileStore`` key, e.g. ``dashscope.text-embedding-v4.d1024.document.``.

    Raises:
        ValueError: ``kind`` is neither ``"document"`` nor ``"query"``.
    """
    if kind not in ("document", "query"):
        raise ValueError(f"kind must be 'document' or 'query', got {kind!r}")
    spec = get_model(embeddings.model, kind="text")
    dim = embeddings.dimension or (spec.default_dimension if spec.known else "default")
    parts = ["dashscope", re.sub(r"[^A-Za-z0-9_.-]", "_", embeddings.model), f"d{dim}", kind]
    if kind == "query":
        instruct = (embeddings.query_instruct or "").encode("utf-8")
        digest = hashlib.blake2b(instruct, digest_size=6).hexdigest()
        parts.append(f"i{digest}" if instruct else "noinstruct")
    return ".".join(parts) + "."


def cached_embeddings(
    embeddings: CachableEmbeddings,
    store: ByteStore,
    *,
    query_store: ByteStore | None = None,
    cache_queries: bool = True,
    batch_size: int | None = None,
    key_encoder: Literal["sha1", "blake2b", "sha256", "sha512"] = "sha256",
) -> CacheBackedEmbeddings:
    """Wrap ``embeddings`` in a ``CacheBackedEmbeddings`` with separate query/document keys.

    Args:
        embeddings: The DashScope embeddings to cache.
        store: Any LangChain ``ByteStore`` (``InMemoryByteStore``, ``LocalFileStore``, Redis...).
        query_store: Where to keep query vectors (default: ``store``, under the query namespace).
        cache_queries: ``False`` to embed every query afresh.
        batch_size: Texts embedded between store writes (default: all missing texts at once).
        key_encoder: How texts are hashed into keys (SHA-256 by default; LangChain's SHA-1
            default warns about collisions).

    Returns:
        A ``CacheBackedEmbeddings``; a text already cached costs no request.

    Raises:
        ImportError: ``langchain-classic`` (home of ``CacheBackedEmbeddings``) is missing.
    """
    try:
        from langchain_classic.embeddings import CacheBackedEmbeddings
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "CacheBackedEmbeddings lives in langchain-classic: pip install langchain-classic"
        ) from exc

    dense = cast("Embeddings", embeddings)

    def keyed(byte_store: ByteStore, kind: Literal["document", "query"]) -> CacheBackedEmbeddings:
        return CacheBackedEmbeddings.from_bytes_store(
            dense,
            byte_store,
            namespace=embeddings.cache_namespace(kind),
            batch_size=batch_size,
            key_encoder=key_encoder,
        )

    queries = keyed(query_store or store, "query") if cache_queries else None
    return CacheBackedEmbeddings(
        dense,
        keyed(store, "document").document_embedding_store,
        batch_size=batch_size,
        query_embedding_store=queries.document_embedding_store if queries else None,
    )
