"""One object per running event loop, closed while that loop shuts down.

An ``httpx.AsyncClient`` binds its pooled connections to the loop that first used them, and
``asyncio.run`` (or pytest-asyncio) gives every run a fresh loop, so each loop gets its own
pool. Keeping a pool after its loop is gone would keep the loop and its sockets alive.
``asyncio.run``, ``asyncio.Runner`` and pytest-asyncio call ``loop.shutdown_asyncgens()`` before
closing a loop; a small async generator registered with the loop is finalised there, while the
loop still runs, and closes that loop's object in its own loop. A loop closed without that step
(a bare ``loop.close()``) is found on the next call and its object dropped unclosed: nothing can
run on a closed loop, so its sockets close when it is collected.

Used by :class:`~dashscope_embed._async_client.AsyncDashScopeClient` for its connection pools,
so one client (and one adapter instance) serves any number of event loops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["PerLoop"]

T = TypeVar("T")


class PerLoop(Generic[T]):
    """The objects of the event loops that currently use one owner (made on first use)."""

    def __init__(self, make: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        self._items: dict[asyncio.AbstractEventLoop, tuple[T, AsyncGenerator[None, None]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    async def get(self) -> T:
        """The running loop's object, created (and registered for closing) on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [lp for lp in self._items if lp.is_closed()]:
                del self._items[stale]
            entry = self._items.get(loop)
        if entry is not None:
            return entry[0]
        item = self._make()
        guard = self._close_at_shutdown(loop, item)
        # The first step runs to the ``yield`` without suspending, so no other task of this loop
        # can interleave; it registers the generator with the loop's shutdown_asyncgens().
        await guard.asend(None)
        with self._lock:
            self._items[loop] = (item, guard)
        return item

    async def aclose(self) -> None:
        """Close the running loop's object now (the guard's ``finally`` does the closing)."""
        with self._lock:
            entry = self._items.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()

    async def _close_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, item: T
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if loop in self._items and self._items[loop][0] is item:
                    del self._items[loop]
            await self._close(item)
