"""The one attempt loop and its two drivers: aborts, re-splits, non-JSON answers, dedup, loops."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed import (
    APIConnectionError,
    AsyncDashScopeClient,
    BadRequestError,
    DashScopeClient,
    EmbeddingResult,
    InputTooLongError,
    Throttle,
)

from .conftest import KEY, Harness, error, ok_body

Handler = Callable[[dict[str, Any]], httpx.Response]


class Peak:
    """Requests in flight at once, across threads and event loops."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


def slow_server(answer: Handler, delay: Callable[[dict[str, Any]], float], peak: Peak) -> Any:
    """A transport for either client that waits ``delay(body)`` (really) before ``answer``."""
    import json

    class Transport(httpx.BaseTransport, httpx.AsyncBaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            body = json.loads(request.read())
            peak.enter()
            try:
                time.sleep(delay(body))
                return answer(body)
            finally:
                peak.leave()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = json.loads(await request.aread())
            peak.enter()
            try:
                await asyncio.sleep(delay(body))
                return answer(body)
            finally:
                peak.leave()

    return Transport()


def run_real(kind: str, transport: Any, texts: list[str], **kwargs: Any) -> EmbeddingResult:
    """One embed_texts call through a real-sleeping client of ``kind``."""
    throttle = Throttle(max_concurrency=8, adaptive=False)
    if kind == "sync":
        with DashScopeClient(
            KEY,
            base_url="http://fake.test",
            throttle=throttle,
            http_client=httpx.Client(transport=transport),
        ) as c:
            return c.embed_texts(texts, **kwargs)

    async def go() -> EmbeddingResult:
        c = AsyncDashScopeClient(
            KEY,
            base_url="http://fake.test",
            throttle=throttle,
            http_client=httpx.AsyncClient(transport=transport),
        )
        return await c.embed_texts(texts, **kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_fatal_error_surfaces_while_a_sibling_sleeps_on_retry_after(kind: str) -> None:
    """Batch 0's 400 after 0.3 s is raised at once, not after batch 1's Retry-After: 15 sleep."""

    def answer(body: dict[str, Any]) -> httpx.Response:
        if body["input"]["texts"] == ["fatal"]:
            return error(400, "InvalidParameter", "something is wrong with this one")
        return error(429, "Throttling.RateQuota", "slow down", headers={"Retry-After": "15"})

    def delay(body: dict[str, Any]) -> float:
        return 0.3 if body["input"]["texts"] == ["fatal"] else 0.0

    started = time.monotonic()
    with pytest.raises(BadRequestError) as info:
        run_real(kind, slow_server(answer, delay, Peak()), ["fatal", "throttled"], max_batch_size=1)
    assert time.monotonic() - started < 1.0  # before: 15.0 s for the sync client
    assert info.value.input_indices == (0,)
    assert info.value.status == 400


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_resplit_batch_runs_its_chunks_side_by_side(kind: str) -> None:
    """A 60-row batch answered "not larger than 10" is re-sent as six 10-row requests at once."""
    sizes: list[int] = []
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> httpx.Response:
        texts = body["input"]["texts"]
        with lock:
            sizes.append(len(texts))
        if len(texts) > 10:
            msg = "batch size is invalid, it should not be larger than 10.: input.contents"
            return error(400, "InvalidParameter", msg)
        return httpx.Response(200, json=ok_body(texts))

    def delay(body: dict[str, Any]) -> float:
        return 0.0 if len(body["input"]["texts"]) > 10 else 0.2

    peak = Peak()
    texts = [f"text {i}" for i in range(60)]
    res = run_real(kind, slow_server(answer, delay, peak), texts, max_batch_size=60)
    assert sizes[0] == 60
    assert sorted(sizes[1:]) == [10] * 6
    assert peak.peak == 6  # before: 1 (the worker count was fixed by the first plan)
    assert res.embeddings[:, 0].tolist() == [float(len(t)) for t in texts]


def test_an_html_page_with_status_200_is_retried_like_a_connection_fault(harness: Harness) -> None:
    """A proxy's HTML page answered with 200 is retried; the next (JSON) answer is used."""
    harness.server.script = [httpx.Response(200, text="<html><body>proxy login</body></html>")]
    res = harness.embed(["a", "bb"])
    assert len(harness.server.requests) == 2
    assert len(harness.sleeps) == 1
    assert res.embeddings[:, 0].tolist() == [1.0, 2.0]


def test_html_pages_until_the_retries_run_out_raise_a_connection_error(harness: Harness) -> None:
    """Only HTML pages: after max_retries the call raises APIConnectionError naming the cause."""
    page = httpx.Response(200, text="<html>maintenance</html>")
    harness.server.script = [page] * 3
    with pytest.raises(APIConnectionError, match="non-JSON answer after 3 attempts") as info:
        harness.embed(["a"], harness.make(max_retries=2))
    assert len(harness.server.requests) == 3
    assert info.value.input_indices == (0,)


def test_identical_texts_are_sent_once_and_fanned_out(harness: Harness) -> None:
    """Repeated texts in one call cost one row each; every position still gets its vector."""
    texts = ["a", "bb", "a", "ccc", "bb", "a"]
    res = harness.embed(texts)
    assert sorted(t for batch in harness.server.sent_texts for t in batch) == ["a", "bb", "ccc"]
    assert res.embeddings.shape == (6, 4)
    assert res.embeddings[:, 0].tolist() == [1.0, 2.0, 1.0, 3.0, 2.0, 1.0]
    assert res.usage.requests == 1
    assert res.usage.total_tokens == 6  # what was billed: 3 rows x 2


def test_one_thousand_texts_with_a_hundred_distinct_cost_ten_requests(harness: Harness) -> None:
    """1,000 texts of which 100 are distinct are 10 requests of 10 rows."""
    texts = [f"chunk {i % 100}" for i in range(1000)]
    res = harness.embed(texts)
    assert sorted(len(b) for b in harness.server.sent_texts) == [10] * 10
    assert res.embeddings.shape[0] == 1000
    np.testing.assert_array_equal(res.embeddings[7], res.embeddings[107])


def test_sparse_results_are_fanned_out_too(harness: Harness) -> None:
    """dense&sparse with duplicates: each position gets the sparse vector of its text."""

    def answer(body: dict[str, Any]) -> httpx.Response:
        texts = body["input"]["texts"]
        out = ok_body(texts)
        for i, item in enumerate(out["output"]["embeddings"]):
            item["sparse_embedding"] = [{"index": len(texts[i]), "value": 1.0, "token": "t"}]
        return httpx.Response(200, json=out)

    harness.server.script = [answer]
    res = harness.embed(["x", "yy", "x"], output_type="dense&sparse")
    assert harness.server.sent_texts == [["x", "yy"]]
    assert res.sparse is not None
    assert [v.indices for v in res.sparse] == [(1,), (2,), (1,)]


def test_an_error_names_every_position_of_the_offending_text(harness: Harness) -> None:
    """A too-long text that appears twice is reported at both positions; a good text that
    appears twice is in the partial result at both of its positions."""
    long = "word " * 50

    def answer(body: dict[str, Any]) -> httpx.Response:
        if long in body["input"]["texts"]:
            msg = "Range of input length should be [1, 8192]"
            return error(400, "InvalidParameter", msg)
        return httpx.Response(200, json=ok_body(body["input"]["texts"]))

    harness.server.script = [answer] * 4
    client = harness.make(max_concurrency=1)  # one request at a time: the order is fixed
    with pytest.raises(InputTooLongError, match="input 1 is longer") as info:
        harness.embed(["short", long, "short", long], client)
    assert info.value.input_indices == (1, 3)
    assert info.value.partial is not None
    assert info.value.partial.rows == (0, 2)
    assert info.value.partial.result.embeddings[:, 0].tolist() == [5.0, 5.0]


def test_a_misspelt_model_gets_a_did_you_mean_after_the_400(harness: Harness) -> None:
    """text-embeding-v4 is sent (unknown names work), and the 400 names the catalog's match."""
    harness.server.script = [error(400, "InvalidParameter", "Model not exist.")]
    with pytest.raises(BadRequestError, match=r"did you mean text-embedding-v4\?") as info:
        harness.embed(["a"], model="text-embeding-v4")
    assert harness.server.bodies[0]["model"] == "text-embeding-v4"
    assert info.value.status == 400


def test_a_multimodal_html_page_is_retried_too() -> None:
    """The multimodal endpoint's non-JSON 200 is retried like the text one."""
    from dashscope_embed.emulator import Emulator

    emu = Emulator()
    inner = emu.transport()
    pages = [httpx.Response(200, text="<html>captive portal</html>")]

    def handler(request: httpx.Request) -> httpx.Response:
        return pages.pop() if pages else inner.handle_request(request)

    client = DashScopeClient(
        KEY,
        base_url="http://emulator.test",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    client._sleep = lambda _s: None
    res = client.embed_multimodal(["a cat"])
    assert res.embeddings.shape[0] == 1
    assert len(emu.requests) == 1  # the retry reached the server; the page came first
