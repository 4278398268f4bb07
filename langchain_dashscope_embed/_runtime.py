"""Per-instance state that is never serialised: core clients, token usage, the sparse cache.

Why a separate object: the LangChain classes are pydantic models whose fields are the public,
vector-changing options. Everything here is mutable, holds the key (inside the core clients) or
is bound to an event loop, so it lives behind one private attribute.

The async core client is created per running event loop: an ``httpx.AsyncClient`` binds its
pooled connections to the loop that first used them, and ``asyncio.run`` (or pytest-asyncio)
gives each run a fresh loop. Clients of loops that have since closed are dropped.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from dashscope_embed import (
    AsyncDashScopeClient,
    DashScopeClient,
    EmbeddingResult,
    OutputType,
    SparseVector,
    TextType,
    Usage,
)

__all__ = ["Runtime"]


class Runtime:
    """Core clients, usage totals and the bounded sparse cache of one embeddings instance."""

    def __init__(
        self,
        client: DashScopeClient,
        make_async: Callable[[], AsyncDashScopeClient],
        *,
        sparse_cache_size: int,
    ) -> None:
        self.client = client
        self._make_async = make_async
        self._async: dict[asyncio.AbstractEventLoop, AsyncDashScopeClient] = {}
        self._lock = threading.Lock()
        self._usage = Usage()
        self._last = Usage()
        self._sparse: OrderedDict[tuple[str, TextType], SparseVector] = OrderedDict()
        self._sparse_size = sparse_cache_size

    def async_client(self) -> AsyncDashScopeClient:
        """The async core client of the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [lp for lp in self._async if lp.is_closed()]:
                del self._async[stale]
            client = self._async.get(loop)
            if client is None:
                client = self._async[loop] = self._make_async()
        return client

    async def aclose(self) -> None:
        """Close the async client of the running loop (others close with their loops)."""
        with self._lock:
            client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

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
        self,
        texts: Sequence[str],
        text_type: TextType,
        output_type: OutputType,
        result: EmbeddingResult,
    ) -> EmbeddingResult:
        """Add the call's usage; keep the sparse half of a ``dense&sparse`` call for the view."""
        with self._lock:
            self._usage = self._usage + result.usage
            self._last = result.usage
            if output_type != "dense&sparse" or not result.sparse or self._sparse_size <= 0:
                return result
            for text, vector in zip(texts, result.sparse, strict=True):
                key = (text, text_type)
                self._sparse[key] = vector.merged()
                self._sparse.move_to_end(key)
            while len(self._sparse) > self._sparse_size:
                self._sparse.popitem(last=False)
        return result

    def cached_sparse(self, texts: Sequence[str], text_type: TextType) -> list[SparseVector | None]:
        """The kept sparse vector of each text, or ``None`` where it has to be fetched."""
        with self._lock:
            return [self._sparse.get((t, text_type)) if isinstance(t, str) else None for t in texts]
