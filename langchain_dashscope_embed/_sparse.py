"""What the Qdrant and Milvus sparse classes share: a source ``DashScopeEmbeddings`` to call.

Sparse and dense classes must be separate objects (their method names clash: ``embed_query``
returns a sparse vector here and a dense one there), but they can share one API call: a view
built with :meth:`DashScopeEmbeddings.sparse_view` reads the sparse halves its source kept from
``output_type="dense&sparse"`` calls, and calls the API (``output_type="sparse"``, through the
source's ``_embed`` / ``_aembed``) only for the texts it does not find there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from dashscope_embed import EmbeddingResult, SparseVector, TextType
from dashscope_embed.adapters import Runtime, Space

__all__ = ["SparseBase", "SparseSource"]


class SparseSource(Protocol):
    """What a sparse view needs of its dense source (a ``DashScopeEmbeddings``)."""

    _rt: Runtime

    def _space(self, text_type: TextType) -> Space: ...

    def _embed(
        self, texts: Sequence[str], text_type: TextType, output_type: Any = None
    ) -> EmbeddingResult: ...

    async def _aembed(
        self, texts: Sequence[str], text_type: TextType, output_type: Any = None
    ) -> EmbeddingResult: ...


class SparseBase:
    """Holds the source embeddings and checks that the vector-store package is installed."""

    _missing: str | None = None  # set by a subclass whose framework failed to import
    #: Builds a source from fields; ``embeddings.py`` sets it to ``DashScopeEmbeddings`` (so this
    #: module, and the Qdrant / Milvus classes on it, never import the dense class).
    make_source: ClassVar[Callable[..., SparseSource]]

    def __init__(self, source: SparseSource | None = None, **kwargs: object) -> None:
        """Use ``source``'s settings, calls and usage meter, or build one from ``kwargs``.

        Args:
            source: A dense :class:`DashScopeEmbeddings` to share calls with (``dense&sparse``).
            **kwargs: Fields of :class:`DashScopeEmbeddings` (``model``, ``api_key``...), used
                when no ``source`` is given.

        Raises:
            ImportError: the vector-store package is missing (the message names the extra).
        """
        if self._missing:
            raise ImportError(self._missing)
        if source is not None and kwargs:
            raise TypeError("pass either source= or DashScopeEmbeddings fields, not both")
        self.source = source if source is not None else SparseBase.make_source(**kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r})"

    def _vectors(self, texts: Sequence[str], text_type: TextType) -> list[SparseVector]:
        """Merged sparse vectors (unique ascending indices), one per text, in order."""
        found, missing = self._plan(texts, text_type)
        fresh = self.source._embed(missing, text_type, "sparse").sparse if missing else ()
        return _fill(found, fresh or ())

    async def _avectors(self, texts: Sequence[str], text_type: TextType) -> list[SparseVector]:
        found, missing = self._plan(texts, text_type)
        fresh = (await self.source._aembed(missing, text_type, "sparse")).sparse if missing else ()
        return _fill(found, fresh or ())

    def _plan(
        self, texts: Sequence[str], text_type: TextType
    ) -> tuple[list[SparseVector | None], list[str]]:
        if isinstance(texts, (str, bytes)):  # the core rejects it, with its clear error, unsent
            self.source._rt.client.embed_texts(texts)
        texts = list(texts)
        found = self.source._rt.cached_sparse(texts, self.source._space(text_type))
        return found, [t for t, v in zip(texts, found, strict=True) if v is None]


def _fill(found: list[SparseVector | None], fresh: Sequence[SparseVector]) -> list[SparseVector]:
    it = iter(fresh)
    return [(v if v is not None else next(it)).merged() for v in found]
