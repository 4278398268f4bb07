"""The core clients against the emulator: in-process transport and a real loopback socket."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed import (
    AsyncDashScopeClient,
    AuthenticationError,
    DashScopeClient,
    EmbeddingResult,
    InputTooLongError,
    RateLimitError,
    Throttle,
)
from dashscope_embed.emulator import Emulator, EmulatorConfig, serve, sparse_vector, text_vector

KEY = "sk-integration-0001"
pytestmark = pytest.mark.integration


def _run(kind: str, client: Any, texts: Any, **kwargs: Any) -> EmbeddingResult:
    if kind == "sync":
        return client.embed_texts(texts, **kwargs)  # type: ignore[no-any-return]
    return asyncio.run(client.embed_texts(texts, **kwargs))  # type: ignore[no-any-return]


def _make(kind: str, emulator: Emulator, **kwargs: Any) -> DashScopeClient | AsyncDashScopeClient:
    transport = emulator.transport()
    if kind == "sync":
        c: Any = DashScopeClient(
            KEY, base_url="http://emu.test", http_client=httpx.Client(transport=transport), **kwargs
        )
        c._sleep = lambda s: None
    else:
        c = AsyncDashScopeClient(
            KEY,
            base_url="http://emu.test",
            http_client=httpx.AsyncClient(transport=transport),
            **kwargs,
        )

        async def nosleep(s: float) -> None:
            return None

        c._sleep = nosleep
    return c  # type: ignore[no-any-return]


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_vectors_match_the_emulator_function_in_order(kind: str) -> None:
    """Every returned row is the emulator's vector for that text, at its input position."""
    emu = Emulator(EmulatorConfig())
    texts = [f"text number {i} about topic {i % 3}" for i in range(37)]
    res = _run(
        kind,
        _make(kind, emu),
        texts,
        dimension=512,
        text_type="query",
        instruct="Given a query, retrieve passages",
    )
    expected = np.stack(
        [
            text_vector(
                "text-embedding-v4",
                t,
                dimension=512,
                text_type="query",
                instruct="Given a query, retrieve passages",
            )
            for t in texts
        ]
    )
    assert res.embeddings.shape == (37, 512)
    np.testing.assert_allclose(res.embeddings, expected, atol=1e-6)
    assert [len(r.json["input"]["texts"]) for r in emu.requests] == [10, 10, 10, 7] or sorted(
        len(r.json["input"]["texts"]) for r in emu.requests
    ) == [7, 10, 10, 10]
    assert res.usage.requests == 4
    assert res.usage.total_tokens > 0


def test_sparse_and_dense_in_one_call(kind: str) -> None:
    """dense&sparse returns the emulator's dense and sparse vectors in one request per batch."""
    emu = Emulator(EmulatorConfig())
    texts = ["the cat sat on the cat mat", "dogs bark"]
    res = _run(kind, _make(kind, emu), texts, output_type="dense&sparse")
    assert len(emu.requests) == 1
    assert res.sparse is not None
    want = sparse_vector(texts[0])
    assert list(res.sparse[0].indices) == [e["index"] for e in want]
    merged = res.sparse[0].merged()
    assert len(set(merged.indices)) == len(merged.indices) < len(res.sparse[0].indices)


def test_server_row_limit_is_learned(kind: str) -> None:
    """A server limit of 6 rows re-splits the first oversize batch and is kept for later calls."""
    emu = Emulator(EmulatorConfig(row_limits={"text-embedding-v4": 6}))
    c = _make(kind, emu, max_concurrency=1)
    res = _run(kind, c, [f"t {i}" for i in range(10)])
    assert [len(r.json["input"]["texts"]) for r in emu.requests] == [10, 6, 4]
    assert [r.status for r in emu.requests] == [400, 200, 200]
    assert res.embeddings.shape[0] == 10
    assert c.learned_limits == {"text-embedding-v4": 6}


def test_faults_are_retried_and_nothing_is_resent(kind: str) -> None:
    """Under 5xx and dropped connections every vector arrives and no finished batch is re-sent."""
    emu = Emulator(EmulatorConfig(error_rate=0.2, drop_rate=0.1, seed=3))
    texts = [f"fault test {i}" for i in range(100)]
    c = _make(kind, emu, max_retries=10)
    res = _run(kind, c, texts, dimension=128)
    expected = np.stack([text_vector("text-embedding-v4", t, dimension=128) for t in texts])
    np.testing.assert_allclose(res.embeddings, expected, atol=1e-6)
    ok_batches = [tuple(r.json["input"]["texts"]) for r in emu.requests if r.status == 200]
    assert len(ok_batches) == len(set(ok_batches)) == 10
    assert c.stats.retries  # some retries happened


def test_quota_429s_are_retried(kind: str) -> None:
    """A scripted 429 burst is retried and the call still returns every vector."""
    emu = Emulator(EmulatorConfig())
    emu.enqueue_fault(
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded, please try again later.",
        count=2,
    )
    c = _make(kind, emu, throttle=Throttle(adaptive=False))
    res = _run(kind, c, ["a b", "c d"])
    assert res.embeddings.shape[0] == 2
    assert c.stats.throttled == 2
    assert c.stats.retries == {"Throttling.RateQuota": 2}


def test_retries_exhausted_on_429_raise_rate_limit_error(kind: str) -> None:
    """Persistent throttling ends in RateLimitError carrying the code and request id."""
    emu = Emulator(EmulatorConfig())
    emu.enqueue_fault(
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded, please try again later.",
        count=5,
    )
    with pytest.raises(RateLimitError) as exc:
        _run(kind, _make(kind, emu, max_retries=2, throttle=Throttle(adaptive=False)), ["x"])
    assert exc.value.code == "Throttling.RateQuota"
    assert exc.value.request_id


def test_over_long_text_is_named(kind: str) -> None:
    """An over-long text in a batch of ten is identified by index."""
    emu = Emulator(EmulatorConfig())
    texts = ["short text"] * 10
    texts[6] = "word " * 9000
    with pytest.raises(InputTooLongError) as exc:
        _run(kind, _make(kind, emu, max_concurrency=1), texts)
    assert exc.value.input_indices == (6,)


def test_bad_key_gives_authentication_error_without_the_key() -> None:
    """A key the emulator rejects raises AuthenticationError that never contains the key."""
    emu = Emulator(EmulatorConfig(api_keys=frozenset({"sk-the-only-good-one"})))
    c = _make("sync", emu)
    with pytest.raises(AuthenticationError) as exc:
        _run("sync", c, ["x"])
    assert exc.value.status == 401
    assert exc.value.code == "InvalidApiKey"
    assert KEY not in str(exc.value)


def test_loopback_socket_sync_and_async() -> None:
    """Over a real loopback socket both shells get the emulator's vectors."""
    texts = ["loopback one", "loopback two", "loopback three"]
    expected = np.stack([text_vector("text-embedding-v4", t) for t in texts])
    with serve(config=EmulatorConfig(latency=0.01)) as server:
        with DashScopeClient(KEY, base_url=server.url) as c:
            np.testing.assert_allclose(c.embed_texts(texts).embeddings, expected, atol=1e-6)

        async def go() -> np.ndarray:
            async with AsyncDashScopeClient(KEY, base_url=server.url) as a:
                return (await a.embed_texts(texts)).embeddings

        np.testing.assert_allclose(asyncio.run(go()), expected, atol=1e-6)
        assert server.emulator.stats.requests >= 2
