"""The private half of every LangChain and LlamaIndex adapter instance (framework-neutral).

Why one object: an adapter instance is a pydantic model whose fields are the public,
vector-changing options. Everything here is mutable, holds the key, or is bound to an event
loop, so it lives behind one private attribute, the same for both frameworks:

* the sync core client and one async core client (which keeps a connection pool per event
  loop), both admitted by **one** :class:`~dashscope_embed.Throttle`: ``max_concurrency`` bounds
  the instance's requests in flight across threads and event loops together, and a 429 or a
  learned row limit seen by one path is known to all;
* usage totals and the usage of the last call;
* one bounded sparse cache, keyed by everything a sparse vector depends on;
* pickling as the key and the options only (no locks, no pools): a copy opens its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import httpx

from dashscope_embed._async_client import AsyncDashScopeClient
from dashscope_embed._client import DashScopeClient
from dashscope_embed._types import EmbeddingResult, SparseVector, TextType, Usage

__all__ = ["Runtime", "Space"]

#: What a sparse vector depends on besides its text: (model, dimension, instruct, text_type).
Space = tuple[str, int | None, str | None, TextType | None]


class Runtime:
    """Core clients, one throttle, usage totals and the sparse cache of one adapter instance.

    Args:
        api_key: The key (``None``: ``DASHSCOPE_API_KEY``); resolved once, kept private.
        options: Core client keywords (region, base_url, workspace, timeout, max_retries,
            max_concurrency, rpm, tpm).
        http_client: An injected ``httpx.Client`` (never closed, never pickled).
        async_http_client: An injected ``httpx.AsyncClient`` (likewise).
        sparse_cache_size: Sparse vectors kept for the sparse views (0: none).
    """

    def __init__(
        self,
        api_key: str | None,
        options: dict[str, Any],
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        *,
        sparse_cache_size: int = 0,
    ) -> None:
        self.client = DashScopeClient(api_key, http_client=http_client, **options)
        self._key = self.client.config.api_key  # resolved: argument > DASHSCOPE_API_KEY
        shared = {k: v for k, v in options.items() if k not in ("max_concurrency", "rpm", "tpm")}
        self.aclient = AsyncDashScopeClient(
            self._key, http_client=async_http_client, throttle=self.client.throttle, **shared
        )
        self._options = options
        self._injected = (http_client, async_http_client)
        self._lock = threading.Lock()
        self._usage = Usage()
        self._last: Usage | None = None
        self._sparse: OrderedDict[tuple[Space, str], SparseVector] = OrderedDict()
        self._sparse_size = sparse_cache_size

    @property
    def sync(self) -> DashScopeClient:
        """The sync core client (an alias of :attr:`client`)."""
        return self.client

    def __repr__(self) -> str:
        return f"Runtime({self.client!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Locks, pools and injected httpx clients cannot be pickled (or shared across processes).
        return {
            "key": self._key,
            "options": self._options,
            "sparse_cache_size": self._sparse_size,
            "usage": self._usage,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["key"], state["options"], sparse_cache_size=state["sparse_cache_size"]
        )
        self._usage = state["usage"]

    def rebuild(self, options: dict[str, Any]) -> Runtime:
        """A runtime for new endpoint options: same key, injected clients and usage totals."""
        new = Runtime(self._key, options, *self._injected, sparse_cache_size=self._sparse_size)
        new._usage, new._last = self.usage, self.last_usage
        return new

    async def async_client(self) -> AsyncDashScopeClient:
        """The async core client (it serves every event loop with a pool of that loop's)."""
        return self.aclient

    def close(self) -> None:
        """Close the sync connection pool (an injected ``http_client`` is left open)."""
        self.client.close()

    async def aclose(self) -> None:
        """Close the running loop's async pool (others close as their loops shut down)."""
        await self.aclient.aclose()

    @property
    def usage(self) -> Usage:
        """Usage summed over every call of this instance."""
        with self._lock:
            return self._usage

    @property
    def last_usage(self) -> Usage | None:
        """Usage of the most recent call that sent something, ``None`` before the first."""
        with self._lock:
            return self._last

    def reset_usage(self) -> None:
        """Set the totals and the last call's usage back to zero."""
        with self._lock:
            self._usage = Usage()
            self._last = Usage()

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
