"""One runtime under both adapters: one throttle per instance, shared limits, model checks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dashscope_embed.emulator import Emulator, EmulatorConfig
from langchain_dashscope_embed import DashScopeEmbeddings
from llama_index_dashscope_embed import DashScopeEmbedding, DashScopeSparseEmbedding

KEY = "sk-adapters-test-key"
URL = "http://emulator.test"


class Counting(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The emulator's transport, counting requests in flight across threads and loops."""

    def __init__(self, emulator: Emulator) -> None:
        self.inner = emulator.transport()
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def _enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def _leave(self) -> None:
        with self.lock:
            self.now -= 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            return self.inner.handle_request(request)
        finally:
            self._leave()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self._leave()


def langchain(transport: Counting, **kw: Any) -> tuple[Any, Callable[..., Any], Any]:
    emb = DashScopeEmbeddings(
        api_key=KEY,
        base_url=URL,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        **kw,
    )
    return emb, emb.embed_documents, emb.aembed_documents


def llama_index(transport: Counting, **kw: Any) -> tuple[Any, Callable[..., Any], Any]:
    emb = DashScopeEmbedding(
        api_key=KEY,
        base_url=URL,
        http_client=httpx.Client(transport=transport),
        async_http_client=httpx.AsyncClient(transport=transport),
        **kw,
    )
    return emb, emb.get_text_embedding_batch, emb.aget_text_embedding_batch


@pytest.mark.parametrize("build", [langchain, llama_index])
def test_max_concurrency_bounds_sync_and_every_event_loop_together(build: Any) -> None:
    """One sync call plus two threads each running asyncio.run keep <= max_concurrency in flight."""
    emu = Emulator(EmulatorConfig(latency=0.05))
    transport = Counting(emu)
    _, sync_call, async_call = build(transport, max_concurrency=2)
    texts = [f"text number {i}" for i in range(60)]
    results: dict[str, list[list[float]]] = {}

    def in_loop(name: str) -> None:
        results[name] = asyncio.run(async_call(texts))

    threads = [threading.Thread(target=in_loop, args=(f"loop{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    results["sync"] = sync_call(texts)
    for t in threads:
        t.join()
    assert transport.peak == 2  # before: 6 (one throttle per client)
    assert len(emu.requests) == 18
    assert results["sync"] == results["loop0"] == results["loop1"]
    assert len(results["sync"]) == 60


@pytest.mark.parametrize("build", [langchain, llama_index])
def test_a_row_limit_learned_in_sync_is_used_by_a_new_event_loop(build: Any) -> None:
    """The server's "not larger than 6" answer, seen once in sync, shapes the async batches."""
    emu = Emulator(EmulatorConfig(row_limits={"text-embedding-v4": 6}))
    transport = Counting(emu)
    _, sync_call, async_call = build(transport)
    sync_call([f"a {i}" for i in range(10)])
    seen = len(emu.requests)
    asyncio.run(async_call([f"b {i}" for i in range(12)]))
    assert sorted(len(r.json["input"]["texts"]) for r in emu.requests[seen:]) == [6, 6]


@pytest.mark.parametrize(
    ("make", "use"),
    [
        (lambda m: DashScopeEmbeddings(api_key=KEY, model=m), "DashScopeMultimodalEmbeddings"),
        (lambda m: DashScopeEmbedding(api_key=KEY, model_name=m), "DashScopeMultiModalEmbedding"),
        (
            lambda m: DashScopeSparseEmbedding(api_key=KEY, model_name=m),
            "DashScopeMultiModalEmbedding",
        ),
    ],
)
@pytest.mark.parametrize("model", ["qwen3-vl-embedding", "tongyi-embedding-vision-plus"])
def test_text_classes_refuse_multimodal_models_at_construction(
    make: Callable[[str], Any], use: str, model: str
) -> None:
    """A multimodal model on a text class fails at construction, naming the class to use."""
    with pytest.raises(ValueError, match=f"'{model}' is a multimodal model.*Use {use}"):
        make(model)


def test_every_unknown_argument_is_reported_at_once() -> None:
    """model= and dimensions= on the LlamaIndex class: one TypeError naming both, with hints."""
    with pytest.raises(TypeError) as info:
        DashScopeEmbedding(api_key=KEY, model="text-embedding-v3", dimensions=512)
    msg = str(info.value)
    assert "'dimensions' (did you mean 'dimension'?)" in msg
    assert "'model' (did you mean 'model_name'?)" in msg
    assert "got 2 unknown arguments" in msg
    assert "512" not in msg.split("It accepts")[0]  # names only, never values
