"""Unit-test helpers: sockets are disabled; a scripted httpx transport stands in for the server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_socket

from dashscope_embed import AsyncDashScopeClient, DashScopeClient, EmbeddingResult
from dashscope_embed._engine._throttle import Throttle

KEY = "sk-unit-secret-123456"


@pytest.fixture(autouse=True)
def _no_sockets() -> Iterator[None]:
    """Unit tests never open a socket."""
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


def ok_body(
    texts: list[str], *, dim: int = 4, order: str = "forward", rid: str = "rid"
) -> dict[str, Any]:
    """A native success body whose vector i encodes len(texts[i]) so order can be checked."""
    items = [
        {
            "embedding": [float(len(t)), float(i), 0.5, 0.25][:dim] + [0.0] * (dim - 4),
            "text_index": i,
        }
        for i, t in enumerate(texts)
    ]
    if order == "reverse":
        items.reverse()
    return {
        "output": {"embeddings": items},
        "usage": {"total_tokens": len(texts) * 2},
        "request_id": rid,
    }


@dataclass
class Server:
    """Scripted fake server: answers from `script` first, then a default success."""

    script: list[Callable[[dict[str, Any]], httpx.Response] | httpx.Response | Exception] = field(
        default_factory=list
    )
    requests: list[httpx.Request] = field(default_factory=list)
    order: str = "reverse"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    @property
    def sent_texts(self) -> list[list[str]]:
        return [b["input"]["texts"] for b in self.bodies]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if isinstance(step, httpx.Response):
                return step
            return step(body)
        texts = body["input"]["texts"]
        doc = ok_body(texts, order=self.order, rid=f"rid-{len(self.requests)}")
        if "sparse" in body.get("parameters", {}).get("output_type", ""):
            for item in doc["output"]["embeddings"]:  # the server always sends the key then
                item["sparse_embedding"] = [{"index": 1, "value": 0.5, "token": "t"}]
        return httpx.Response(200, json=doc, headers={"x-request-id": f"rid-{len(self.requests)}"})


def error(
    status: int,
    code: str,
    message: str,
    *,
    rid: str = "err-rid",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.Response(
        status, json={"code": code, "message": message, "request_id": rid}, headers=headers or {}
    )


@dataclass
class Harness:
    """Runs the same call through the sync or the async client; records sleeps."""

    kind: str
    server: Server
    sleeps: list[float] = field(default_factory=list)
    client_kwargs: dict[str, Any] = field(default_factory=dict)

    def clock(self) -> float:
        """Real time plus every recorded (skipped) sleep, so pauses expire as they would."""
        return time.monotonic() + sum(self.sleeps)

    def make(self, **kwargs: Any) -> DashScopeClient | AsyncDashScopeClient:
        kw = {"base_url": "http://fake.test", **self.client_kwargs, **kwargs}
        if "throttle" not in kw:
            kw["throttle"] = Throttle(
                max_concurrency=kw.pop("max_concurrency", 8), clock=self.clock
            )
        transport = httpx.MockTransport(self.server.handle)
        if self.kind == "sync":
            c = DashScopeClient(KEY, http_client=httpx.Client(transport=transport), **kw)
            c._sleep = self.sleeps.append
            return c
        a = AsyncDashScopeClient(KEY, http_client=httpx.AsyncClient(transport=transport), **kw)

        async def _sleep(s: float) -> None:
            self.sleeps.append(s)

        a._sleep = _sleep
        return a

    def embed(self, texts: Any, client: Any = None, **kwargs: Any) -> EmbeddingResult:
        c = client or self.make()
        if isinstance(c, DashScopeClient):
            return c.embed_texts(texts, **kwargs)

        async def go() -> EmbeddingResult:
            return await c.embed_texts(texts, **kwargs)

        return asyncio.run(go())


@pytest.fixture(params=["sync", "async"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """The same scenario through both shells."""
    return Harness(request.param, Server())
