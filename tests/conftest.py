"""Fixtures shared by every test folder: the emulator in-process and on loopback.

Unit tests (``tests/core``) run with sockets disabled and talk to the emulator through its httpx
transport; integration tests start the emulator on 127.0.0.1 and use real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from dashscope_embed import AsyncDashScopeClient, DashScopeClient
from dashscope_embed.emulator import Emulator, EmulatorConfig, EmulatorServer, serve

TEST_KEY = "sk-test-0000"


@pytest.fixture(autouse=True)
def _clean_dashscope_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's real DashScope settings."""
    for name in (
        "DASHSCOPE_API_KEY",
        "DASHSCOPE_REGION",
        "DASHSCOPE_API_REGION",
        "DASHSCOPE_BASE_URL",
        "DASHSCOPE_HTTP_BASE_URL",
        "DASHSCOPE_WORKSPACE",
        "DASHSCOPE_WORKSPACE_ID",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Emulator:
    """A fresh in-process emulator with default settings (no latency, no faults)."""
    return Emulator(EmulatorConfig())


@pytest.fixture
def client(emulator: Emulator) -> Iterator[DashScopeClient]:
    """A sync client wired to the in-process emulator (no sockets), with instant retries."""
    http = httpx.Client(transport=emulator.transport())
    c = DashScopeClient(TEST_KEY, base_url="http://emulator.test", http_client=http)
    c._sleep = lambda _s: None
    yield c
    http.close()


@pytest.fixture
async def aclient(emulator: Emulator) -> AsyncIterator[AsyncDashScopeClient]:
    """An async client wired to the in-process emulator (no sockets), with instant retries."""
    http = httpx.AsyncClient(transport=emulator.transport())
    c = AsyncDashScopeClient(TEST_KEY, base_url="http://emulator.test", http_client=http)

    async def _no_sleep(_s: float) -> None:
        return None

    c._sleep = _no_sleep
    yield c
    await http.aclose()


@pytest.fixture
def emulator_server() -> Iterator[EmulatorServer]:
    """The emulator on a real loopback socket (127.0.0.1, a free port)."""
    with serve(config=EmulatorConfig()) as server:
        yield server
