"""One async core client per running event loop, closed while that loop shuts down.

An ``httpx.AsyncClient`` binds its pooled connections to the loop that first used them, and
``asyncio.run`` (or pytest-asyncio) gives every run a fresh loop, so each loop gets its own
client. Keeping a client after its loop is gone would keep the loop, the pool and its sockets
alive. ``asyncio.run``, ``asyncio.Runner`` and pytest-asyncio call ``loop.shutdown_asyncgens()``
before closing a loop; a small async generator registered with the loop is finalised there, while
the loop still runs, and closes that loop's client (and its sockets) in its own loop. A loop
closed without that step (a bare ``loop.close()``) is found on the next call and its client
dropped unclosed: nothing can run on a closed loop, so its sockets close when it is collected.

Used by the LangChain and LlamaIndex adapters, whose instances outlive any one event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable

from dashscope_embed._client import AsyncDashScopeClient

__all__ = ["LoopClients"]

_Entry = tuple[AsyncDashScopeClient, AsyncGenerator[None, None]]


class LoopClients:
    """The async core clients of the event loops that currently use one adapter instance."""

    def __init__(self, make: Callable[[], AsyncDashScopeClient]) -> None:
        self._make = make
        self._clients: dict[asyncio.AbstractEventLoop, _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    async def get(self) -> AsyncDashScopeClient:
        """The running loop's client, created (and registered for closing) on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[stale]
            entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        client = self._make()
        guard = self._close_at_shutdown(loop, client)
        # The first step runs to the ``yield`` without suspending, so no other task of this loop
        # can interleave; it registers the generator with the loop's shutdown_asyncgens().
        await guard.asend(None)
        with self._lock:
            self._clients[loop] = (client, guard)
        return client

    async def aclose(self) -> None:
        """Close the running loop's client now (the guard's ``finally`` does the closing)."""
        with self._lock:
            entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()

    async def _close_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, client: AsyncDashScopeClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if loop in self._clients and self._clients[loop][0] is client:
                    del self._clients[loop]
            await client.aclose()  # only closes a pool the core created (never an injected one)
