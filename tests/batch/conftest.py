"""Fixtures for the Batch API, streaming and CLI tests: an emulator with a clock we drive."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dashscope_embed import DashScopeClient
from dashscope_embed.emulator import Emulator, EmulatorConfig, EmulatorServer, serve

KEY = "sk-batch-test-0001"
FILES = "/compatible-mode/v1/files"
BATCHES = "/compatible-mode/v1/batches"


@dataclass
class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_emulator(clock: FakeClock | None = None, **config: object) -> Emulator:
    """An emulator whose batches run at ``batch_speed`` (default: instantly)."""
    config.setdefault("batch_speed", float("inf"))
    cfg = EmulatorConfig(**config)  # type: ignore[arg-type]
    return Emulator(cfg, clock=clock) if clock is not None else Emulator(cfg)


@pytest.fixture
def emu() -> Emulator:
    """An in-process emulator that finishes batches as soon as they are polled."""
    return make_emulator()


def make_client(emulator: Emulator, **kwargs: object) -> DashScopeClient:
    """A sync client on the emulator's in-process transport, retries without sleeping."""
    http = httpx.Client(transport=emulator.transport())
    client = DashScopeClient(KEY, base_url="http://emulator.test", http_client=http, **kwargs)  # type: ignore[arg-type]
    client._sleep = lambda _s: None
    return client


@pytest.fixture
def bclient(emu: Emulator) -> Iterator[DashScopeClient]:
    client = make_client(emu)
    yield client
    client._http.close()


def count(emulator: Emulator, method: str, path: str) -> int:
    """Requests in the emulator's log with this method and exact path."""
    return sum(1 for r in emulator.requests if r.method == method and r.path == path)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    """One loopback emulator per CLI test module; batches finish as soon as they are polled."""
    with serve(config=EmulatorConfig(batch_speed=float("inf"))) as s:
        yield s


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: EmulatorServer) -> Path:
    """A key in the environment, a clean request log, and the test's folder as cwd."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    server.emulator.reset_stats()
    return tmp_path
