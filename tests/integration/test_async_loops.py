"""One AsyncDashScopeClient across event loops: a pool per loop, or a typed error."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from dashscope_embed import AsyncDashScopeClient, ConfigurationError

KEY = "sk-loops-test-key"


@pytest.mark.integration
def test_one_async_client_serves_two_event_loops_in_a_row(emulator_server: Any) -> None:
    """The same AsyncDashScopeClient works under two asyncio.run calls (one pool per loop)."""
    client = AsyncDashScopeClient(KEY, base_url=emulator_server.url)
    pools: list[object] = []

    async def once() -> list[float]:
        res = await client.embed_texts(["hello"])
        pools.append(await client._http())
        return res.embeddings[0].tolist()

    assert asyncio.run(once()) == asyncio.run(once())
    assert pools[0] is not pools[1]
    assert len(client._pools) == 0  # each loop's pool closed at that loop's shutdown


@pytest.mark.integration
def test_an_injected_pool_of_a_closed_loop_gives_a_typed_error(emulator_server: Any) -> None:
    """An injected AsyncClient reused after its loop closed: ConfigurationError saying why."""
    client = AsyncDashScopeClient(
        KEY, base_url=emulator_server.url, http_client=httpx.AsyncClient(), max_retries=0
    )
    asyncio.run(client.embed_texts(["hello"]))
    with pytest.raises(ConfigurationError, match="event loop that has closed"):
        asyncio.run(client.embed_texts(["again"]))
