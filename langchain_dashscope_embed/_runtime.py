"""Per-instance state that is never serialised: core clients, token usage, the sparse cache.

Why a separate object: the LangChain classes are pydantic models whose fields are the public,
vector-changing options. Everything here is mutable, holds the key (inside the core clients) or
is bound to an event loop, so it lives behind one private attribute. It pickles as the key and
the connection options only (no locks, no pools): a copy opens its own.

The async core clients live in a :class:`~dashscope_embed._engine._loops.LoopClients`: one per
event loop, closed while that loop shuts down.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import httpx

from dashscope_embed import (
    AsyncDashScopeClient,
    DashScopeClient,
    EmbeddingResult,
    SparseVector,
    TextType,
    Usage,
)
from dashscope_embed._engine._loops import LoopClients

__all__ = ["Runtime", "Space"]

#: What a sparse vector depends on besides its text: (model, dimension, instruct, text_type).
Space = tuple[str, int | None, str | None, TextType]


class Runtime:
    """Core clients, usage totals and the bounded sparse cache of one embeddings instance."""

    def __init__(
        self,
        key: str | None,
        conf: dict[str, Any],
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
        *,
        sparse_cache_size: int,
    ) -> None:
        self.client = DashScopeClient(key, http_client=http_client, **conf)
        self._key = self.client.config.api_key  # resolved: argument > DASHSCOPE_API_KEY
        self._conf = conf
        self._async = LoopClients(
            lambda: AsyncDashScopeClient(self._key, http_client=http_async_client, **conf)
        )
        self._lock = threading.Lock()
        self._usage = Usage()
        self._last = Usage()
        self._sparse: OrderedDict[tuple[Space, str], SparseVector] = OrderedDict()
        self._sparse_size = sparse_cache_size

    def __getstate__(self) -> dict[str, Any]:
        # Locks, pools and injected httpx clients cannot be pickled (or shared across processes).
        return {"key": self._key, "conf": self._conf, "sparse_cache_size": self._sparse_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["key"], state["conf"], sparse_cache_size=state["sparse_cache_size"]
        )

    async def async_client(self) -> AsyncDashScopeClient:
        """The async core client of the running event loop (created on first use)."""
        return await self._async.get()

    async def aclose(self) -> None:
        """Close the async client of the running loop (others close as their loops shut down)."""
        await self._async.aclose()

    @property
    def usage(self) -> Usage:
        with self._lock:
            return self._usage

    @property
    def last_usage(self) -> Usage:
        with self._lock:
            return self._last

    def reset_usage(self) -> None:
        with self._lock:
            self._usage = self._last = Usage()

    def record(
        self, result: EmbeddingResult, *, texts: Sequence[str] = (), space: Space | None = None
    ) -> EmbeddingResult:
        """Add the call's usage; with a ``space``, keep the sparse halves for the sparse view."""
        with self._lock:
            self._usage = self._usage + result.usage
            self._last = result.usage
            if space is None or not result.sparse or self._sparse_size <= 0:
                return result
            for text, vector in zip(texts, result.sparse, strict=True):
                self._sparse[(space, text)] = vector.merged()
                self._sparse.move_to_end((space, text))
            while len(self._sparse) > self._sparse_size:
                self._sparse.popitem(last=False)
        return result

    def cached_sparse(self, texts: Sequence[str], space: Space) -> list[SparseVector | None]:
        """The kept sparse vector of each text, or ``None`` where it has to be fetched."""
        with self._lock:
            return [self._sparse.get((space, t)) if isinstance(t, str) else None for t in texts]
