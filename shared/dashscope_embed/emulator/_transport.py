"""An httpx transport that answers from an :class:`Emulator` in-process (no sockets).

One object serves both ``httpx.Client(transport=...)`` and ``httpx.AsyncClient(transport=...)``;
the two methods differ only in how they read the body and how they sleep, so unit tests of the
sync and async clients see identical behaviour, including latency and dropped connections.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl

import httpx

from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse

__all__ = ["EmulatorTransport"]


def _to_emu(request: httpx.Request, body: bytes) -> EmuRequest:
    query = dict(parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True))
    headers = {
        name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers.raw
    }
    return EmuRequest(request.method, request.url.path, headers, body, query)


def _to_httpx(request: httpx.Request, response: EmuResponse) -> httpx.Response:
    if response.drop:
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    return httpx.Response(
        response.status, headers=response.headers, content=response.body, request=request
    )


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Route httpx requests to ``emulator``; waits its latency and raises on dropped connections.

    Args:
        emulator: The emulator that answers.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a sync request (blocks for the emulated latency)."""
        response = self.emulator.handle(_to_emu(request, request.read()))
        if response.delay > 0:
            time.sleep(response.delay)
        return _to_httpx(request, response)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer an async request (awaits the emulated latency).

        The emulator's work is pure CPU for a few milliseconds at most, with no I/O, so it runs
        inline rather than in a thread: that keeps fault and quota order deterministic in tests.
        """
        body = await request.aread()
        response = self.emulator.handle(_to_emu(request, body))
        if response.delay > 0:
            await asyncio.sleep(response.delay)
        return _to_httpx(request, response)
