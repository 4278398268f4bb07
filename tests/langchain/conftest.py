"""LangChain adapter fixtures: embeddings wired to the emulator, a sync/async caller, and VCR.

Unit tests run with sockets disabled and reach the emulator through its in-process httpx
transport; tests marked ``integration`` or ``vcr`` may use loopback sockets.

VCR (pytest-recording): cassettes live in ``tests/cassettes/langchain/<module>/``. Without
``--record-mode`` they are replayed (mode ``none``) and the embeddings point at a closed port,
so no emulator and no key are needed. With ``--record-mode=rewrite`` (``make record``) they are
re-recorded against the emulator on loopback, or against the real service when
``DASHSCOPE_API_KEY`` is set in the environment pytest was started from. Recorded requests keep
only ``Content-Type``; responses keep only ``Content-Type`` plus an ``X-Recorded-From`` label;
requests are matched on method, path and JSON body (never the host, so any region replays).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import pytest_socket
from langchain_tests.conftest import base_vcr_config

from dashscope_embed.emulator import Emulator, EmulatorConfig, serve
from langchain_dashscope_embed import DashScopeEmbeddings
from tests.conftest import TEST_KEY

EMU_URL = "http://emulator.test"
CASSETTES = Path(__file__).resolve().parents[1] / "cassettes" / "langchain"
EMULATOR_LABEL = "recorded from the dashscope-embed emulator (not the real DashScope service)"
LIVE_LABEL = "recorded from the real DashScope service"
JSON_MATCHER = "dashscope_langchain_json_body"
RECORDED_HOST = "dashscope.invalid"
#: Captured before the autouse fixture in tests/conftest.py clears DASHSCOPE_* for each test.
LIVE_ENV = {k: v for k, v in os.environ.items() if k.startswith("DASHSCOPE_") and v}


@pytest.fixture(autouse=True)
def _sockets(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit tests never open a socket; integration, VCR and live tests may."""
    if not any(request.node.get_closest_marker(m) for m in ("integration", "vcr", "live")):
        pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


@pytest.fixture
def make_emb(emulator: Emulator) -> Callable[..., DashScopeEmbeddings]:
    """Build ``DashScopeEmbeddings`` on the in-process emulator (sync and async transports)."""

    def _make(**kwargs: Any) -> DashScopeEmbeddings:
        kwargs.setdefault("api_key", TEST_KEY)
        kwargs.setdefault("base_url", EMU_URL)
        kwargs.setdefault("http_client", httpx.Client(transport=emulator.transport()))
        kwargs.setdefault("http_async_client", httpx.AsyncClient(transport=emulator.transport()))
        return DashScopeEmbeddings(**kwargs)

    return _make


@dataclass(frozen=True)
class Caller:
    """Calls ``obj.<name>(...)`` (sync) or runs ``obj.a<name>(...)`` in a fresh event loop."""

    mode: str

    def __call__(self, obj: Any, name: str, *args: Any) -> Any:
        if self.mode == "sync":
            return getattr(obj, name)(*args)
        return asyncio.run(getattr(obj, "a" + name)(*args))


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Caller:
    """The same scenario through the sync hooks and the native async hooks."""
    return Caller(request.param)


def wire_params(emulator: Emulator) -> list[dict[str, Any]]:
    """The ``parameters`` object of every request the emulator received, in order."""
    return [r.json.get("parameters", {}) for r in emulator.requests]


def wire_rows(emulator: Emulator) -> list[int]:
    """How many texts each request carried."""
    return [len(r.json["input"]["texts"]) for r in emulator.requests]


# --- VCR ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VcrTarget:
    """Where VCR tests send requests: replay-only, the emulator, or the real service."""

    source: str  # "replay", "emulator" or "live"
    params: dict[str, Any]


@pytest.fixture(scope="module")
def vcr_target(record_mode: str) -> Iterator[VcrTarget]:
    """Replay: a closed port and a dummy key; recording: the real service if a key is set,
    else the emulator on loopback."""
    base = {"max_retries": 0, "dimension": 64}
    if record_mode == "none":
        yield VcrTarget(
            "replay", {**base, "api_key": "sk-replay-only", "base_url": "http://127.0.0.1:9"}
        )
    elif "DASHSCOPE_API_KEY" in LIVE_ENV:
        live = {
            "api_key": LIVE_ENV["DASHSCOPE_API_KEY"],
            "base_url": LIVE_ENV.get("DASHSCOPE_BASE_URL"),
            "region": LIVE_ENV.get("DASHSCOPE_REGION"),
            "workspace": LIVE_ENV.get("DASHSCOPE_WORKSPACE"),
        }
        yield VcrTarget("live", {**base, **live, "max_retries": 3})
    else:
        with serve(config=EmulatorConfig()) as server:
            yield VcrTarget("emulator", {**base, "api_key": TEST_KEY, "base_url": server.url})


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """Cassettes of this folder live in tests/cassettes/langchain/<test module>/."""
    return str(CASSETTES / Path(str(request.node.fspath)).stem)


@pytest.fixture(scope="module")
def vcr_config(vcr_target: VcrTarget) -> dict[str, Any]:
    """langchain-tests' base config, scrubbed harder and matched on the JSON body."""
    config = base_vcr_config()
    for key in ("record_mode", "cassette_library_dir", "path_transformer"):
        config.pop(key)  # --record-mode, vcr_cassette_dir and pytest-recording decide these
    label = LIVE_LABEL if vcr_target.source == "live" else EMULATOR_LABEL
    config["filter_headers"] = [*config["filter_headers"], ("user-agent", "PLACEHOLDER")]
    config["before_record_request"] = _scrub_request
    config["before_record_response"] = lambda response: _scrub_response(response, label)
    config["match_on"] = ["method", "path", JSON_MATCHER]
    return config


def _scrub_request(request: Any) -> Any:
    """Keep only Content-Type (no Authorization, X-DashScope-*, User-Agent...) and the path:
    the host (a region, a workspace id, an emulator port) is neither kept nor matched."""
    for name in list(request.headers):
        if name.lower() != "content-type":
            del request.headers[name]
    parts = urlsplit(request.uri)
    request.uri = urlunsplit(("https", RECORDED_HOST, parts.path, parts.query, ""))
    return request


def _scrub_response(response: dict[str, Any], label: str) -> dict[str, Any]:
    """Drop every response header but Content-Type, and label where the answer came from."""
    headers = response.get("headers", {})
    kept = {k: v for k, v in headers.items() if k.lower() == "content-type"}
    response["headers"] = {**kept, "X-Recorded-From": [label]}
    return response


def _json_body(r1: Any, r2: Any) -> None:
    """VCR matcher: equal parsed JSON bodies (key order and whitespace do not matter)."""
    assert json.loads(r1.body or b"null") == json.loads(r2.body or b"null")


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Register the JSON body matcher on every VCR instance pytest-recording builds."""
    vcr.register_matcher(JSON_MATCHER, _json_body)
