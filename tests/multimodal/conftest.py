"""Multimodal fixtures: labelled test images made with pillow, and one call path per shell.

The emulator reads an image's label from a PNG ``tEXt`` chunk named ``label`` (or from a URL's
file name), so a text and an image sharing a label are close. Unit tests run with sockets
disabled on the in-process transport; tests marked ``integration`` use the loopback emulator.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_socket
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from dashscope_embed import AsyncDashScopeClient, DashScopeClient, EmbeddingResult
from dashscope_embed._engine._throttle import Throttle
from dashscope_embed.emulator import Emulator
from tests.conftest import TEST_KEY

EMU_URL = "http://emulator.test"
#: Label and colour of the gallery every search test indexes.
GALLERY = {
    "cat": (200, 40, 40),
    "dog": (40, 40, 200),
    "red car": (40, 200, 40),
    "mountain lake": (240, 240, 240),
    "bicycle": (10, 10, 10),
}


def make_png(
    label: str | None, color: tuple[int, int, int] = (90, 90, 90), size: int = 16
) -> bytes:
    """A small PNG whose ``tEXt`` chunk carries ``label`` (what the emulator reads)."""
    info = PngInfo()
    if label is not None:
        info.add_text("label", label)
    buf = io.BytesIO()
    PILImage.new("RGB", (size, size), color).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _sockets(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit tests never open a socket; integration tests may use loopback."""
    if request.node.get_closest_marker("integration") is None:
        pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


@pytest.fixture
def gallery(tmp_path: Path) -> dict[str, Path]:
    """Five labelled PNG files on disk, keyed by label."""
    out = {}
    for label, color in GALLERY.items():
        path = tmp_path / f"{label.replace(' ', '_')}.png"
        path.write_bytes(make_png(label, color))
        out[label] = path
    return out


@dataclass
class Shell:
    """Runs ``embed_multimodal`` through the sync or the async client; records retry sleeps."""

    kind: str
    emulator: Emulator
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        """Real time plus every recorded (skipped) sleep, so throttle pauses expire at once."""
        return time.monotonic() + sum(self.sleeps)

    def make(self, **kwargs: Any) -> DashScopeClient | AsyncDashScopeClient:
        kwargs.setdefault("base_url", EMU_URL)
        if "throttle" not in kwargs:
            cap = kwargs.pop("max_concurrency", 8)
            kwargs["throttle"] = Throttle(max_concurrency=cap, clock=self.clock)
        transport = self.emulator.transport()
        if self.kind == "sync":
            c = DashScopeClient(TEST_KEY, http_client=httpx.Client(transport=transport), **kwargs)
            c._sleep = self.sleeps.append
            return c
        a = AsyncDashScopeClient(
            TEST_KEY, http_client=httpx.AsyncClient(transport=transport), **kwargs
        )

        async def _sleep(s: float) -> None:
            self.sleeps.append(s)

        a._sleep = _sleep
        return a

    def embed(self, inputs: Any, *, client: Any = None, **kwargs: Any) -> EmbeddingResult:
        c = client or self.make()
        if isinstance(c, DashScopeClient):
            return c.embed_multimodal(inputs, **kwargs)

        async def go() -> EmbeddingResult:
            return await c.embed_multimodal(inputs, **kwargs)

        return asyncio.run(go())


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest, emulator: Emulator) -> Shell:
    """The same scenario through both client shells, on the in-process emulator."""
    return Shell(request.param, emulator)


def contents(emulator: Emulator) -> list[list[dict[str, Any]]]:
    """The ``input.contents`` of every request the emulator received, in order."""
    return [r.json["input"]["contents"] for r in emulator.requests]
