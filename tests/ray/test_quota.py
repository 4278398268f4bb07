"""LeasedThrottle and QuotaState in one process: bulk leases, bulk reports, 429s, expiry.

The quota state runs in-process behind ``_LocalBackend`` (the Ray actor runs the same class; see
``test_cluster.py``), with a fake clock so every wait is exact.
"""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from dashscope_embed import AsyncDashScopeClient, DashScopeClient
from dashscope_embed.emulator import Emulator, EmulatorConfig, text_vector
from dashscope_embed.ray import LeasedThrottle, QuotaState
from dashscope_embed.ray._quota import _LocalBackend

MODEL = "text-embedding-v4"


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingBackend(_LocalBackend):
    """The in-process backend, counting round trips to the quota."""

    def __init__(self, state: QuotaState) -> None:
        super().__init__(state)
        self.lease_calls: list[int] = []
        self.report_calls: list[list[tuple[str, float | None]]] = []

    def request_lease(self, model: str, want: int, tokens: int, owner: str) -> object:
        self.lease_calls.append(want)
        return super().request_lease(model, want, tokens, owner)

    def report(self, model: str, outcomes: list[tuple[str, float | None]], owner: str) -> None:
        self.report_calls.append(list(outcomes))
        super().report(model, outcomes, owner)


def _setup(
    *,
    rpm: float | None = 600,
    lease_size: int = 4,
    max_concurrency: int = 8,
    adaptive: bool = False,
) -> tuple[Clock, QuotaState, CountingBackend, LeasedThrottle]:
    """A quota and one worker; not adaptive unless asked (the lease mechanics on a bucket)."""
    clock = Clock()
    state = QuotaState(
        rpm=rpm, max_concurrency=64, initial_concurrency=64, adaptive=adaptive, clock=clock
    )
    backend = CountingBackend(state)
    throttle = LeasedThrottle(
        backend, lease_size=lease_size, max_concurrency=max_concurrency, clock=clock
    )
    return clock, state, backend, throttle


def test_permits_are_leased_in_bulk() -> None:
    """Four admissions cost one round trip to the quota, which granted four permits."""
    _, state, backend, throttle = _setup(lease_size=4)
    assert [throttle.acquire(MODEL, 10) for _ in range(4)] == [0.0] * 4
    assert backend.lease_calls == [4]
    st = state.stats()
    assert (st.leases, st.granted) == (1, 4)
    assert st.models[MODEL].in_flight == 4


def test_workers_share_one_bucket() -> None:
    """Two workers together get no more than the account's per-second budget (rpm/60)."""
    clock, state, _, first = _setup(rpm=600, lease_size=8)  # 10 requests per second
    second = LeasedThrottle(first._backend, lease_size=8, max_concurrency=8, clock=clock)
    admitted = 0
    for throttle in (first, second) * 8:
        if throttle.acquire(MODEL) == 0.0:
            admitted += 1
    assert admitted == 10
    assert state.stats().granted == 10
    wait = second.acquire(MODEL)
    assert wait == pytest.approx(0.1)
    clock.now += wait + 1e-9
    assert second.acquire(MODEL) == 0.0


def test_outcomes_are_reported_in_bulk() -> None:
    """Successes are buffered and sent together once lease_size of them have finished."""
    _, state, backend, throttle = _setup(lease_size=4)
    for _ in range(4):
        throttle.acquire(MODEL)
    for _ in range(3):
        throttle.release(MODEL, "ok")
    assert backend.report_calls == []
    throttle.release(MODEL, "ok")
    assert backend.report_calls == [[("ok", None)] * 4]
    assert state.stats().ok == 4


def test_buffered_outcomes_are_flushed_after_the_interval() -> None:
    """A lone success is reported once flush_interval has passed (no waiting for a full buffer)."""
    clock, state, _, throttle = _setup(lease_size=8)
    throttle.acquire(MODEL)
    throttle.acquire(MODEL)
    throttle.release(MODEL, "ok")
    assert state.stats().ok == 0
    clock.now += throttle.flush_interval + 1e-6
    throttle.release(MODEL, "ok")
    assert state.stats().ok == 2


def test_a_429_is_reported_at_once_and_drops_held_permits() -> None:
    """A 429 reaches the quota at once, returns the unused permits and starts the pacing."""
    clock, state, backend, throttle = _setup(rpm=None, lease_size=4, adaptive=True)
    for _ in range(5):  # recent successes, answered in 10 ms: the pacing rate starts from them
        clock.now += 0.2  # the slow start paces the first requests
        assert throttle.acquire(MODEL) == 0.0
        clock.now += 0.01
        throttle.release(MODEL, "ok")
        throttle.flush(give_back=True)  # reported at once: the quota sees 10 ms round trips
    unused_before = state.stats().unused
    clock.now += 1.6  # the start pace: 16 + 5 / 0.01 s per second, under 16 × 2**(2.65/0.3)
    assert throttle.acquire(MODEL) == 0.0  # a fresh lease of 4: holds 3 more permits
    assert backend.lease_calls[-1] == 4
    throttle.release(MODEL, "throttled", retry_after=2.0)
    st = state.stats()
    assert (st.throttled, st.unused - unused_before) == (1, 3)  # the 3 held are dropped
    assert st.models[MODEL].rate_per_second is not None  # shared pacing is now on
    assert backend.report_calls[-1] == [("throttled", 2.0), *[("unused", None)] * 3]
    assert throttle.acquire(MODEL) == pytest.approx(2.0)  # Retry-After honoured locally
    clock.now += 2.0
    assert throttle.acquire(MODEL) == 0.0


def test_expired_permits_are_given_back() -> None:
    """Permits unused after lease_ttl go back to the quota and a fresh lease is taken."""
    clock, state, backend, throttle = _setup(lease_size=4)
    throttle.acquire(MODEL)
    clock.now += throttle.lease_ttl + 0.01
    assert throttle.acquire(MODEL) == 0.0
    throttle.flush()
    assert state.stats().unused == 3
    assert len(backend.lease_calls) == 2


def test_local_concurrency_cap() -> None:
    """A worker never has more than max_concurrency requests in flight, however many permits."""
    _, _, backend, throttle = _setup(lease_size=4, max_concurrency=2)
    assert throttle.acquire(MODEL) == 0.0
    assert throttle.acquire(MODEL) == 0.0
    assert throttle.acquire(MODEL) > 0
    assert backend.lease_calls == [2]  # never asks for more than it may send
    throttle.release(MODEL, "ok")
    assert throttle.acquire(MODEL) == 0.0  # a slot is free again: one more permit is leased
    assert backend.lease_calls == [2, 1]
    assert throttle.snapshot(MODEL).in_flight == 2


def test_refusal_carries_the_quota_wait() -> None:
    """When the quota grants nothing, the worker waits as long as the quota said."""
    clock, _, backend, throttle = _setup(rpm=60, lease_size=4)  # 1 request per second
    assert throttle.acquire(MODEL) == 0.0
    assert throttle.acquire(MODEL) == pytest.approx(1.0)
    assert throttle.acquire(MODEL) == pytest.approx(1.0)  # no new round trip before then
    assert len(backend.lease_calls) == 2
    clock.now += 1.0
    assert throttle.acquire(MODEL) == 0.0


def test_lease_size_is_validated() -> None:
    """A lease of zero permits is refused at construction."""
    state = QuotaState()
    with pytest.raises(ValueError, match="lease_size"):
        LeasedThrottle(_LocalBackend(state), lease_size=0)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_clients_admit_through_the_leased_throttle(kind: str) -> None:
    """Sync and async clients send every request on a leased permit and report each outcome."""
    emulator = Emulator(EmulatorConfig())
    state = QuotaState(rpm=6000)
    throttle = LeasedThrottle(_LocalBackend(state), lease_size=3)
    texts = [f"text number {i}" for i in range(25)]
    if kind == "sync":
        with DashScopeClient(
            "sk-test",
            base_url="http://emulator.test",
            throttle=throttle,
            http_client=httpx.Client(transport=emulator.transport()),
        ) as client:
            result = client.embed_texts(texts, dimension=64)
    else:

        async def run() -> np.ndarray:
            client = AsyncDashScopeClient(
                "sk-test",
                base_url="http://emulator.test",
                throttle=throttle,
                http_client=httpx.AsyncClient(transport=emulator.transport()),
            )
            res = await client.embed_texts(texts, dimension=64)
            return res.embeddings

        result_embeddings = asyncio.run(run())
    embeddings = result.embeddings if kind == "sync" else result_embeddings
    throttle.flush(give_back=True)
    expected = np.stack([text_vector(MODEL, t, dimension=64) for t in texts])
    np.testing.assert_allclose(embeddings, expected, atol=1e-6)
    sent = emulator.requests
    assert len(sent) == 3  # 10 + 10 + 5 rows
    assert [r.json["parameters"]["dimension"] for r in sent] == [64] * 3
    st = state.stats()
    assert st.ok == 3
    assert st.granted == st.ok + st.unused
    assert st.models[MODEL].in_flight == 0


class SlowBackend(_LocalBackend):
    """An in-process quota whose lease answers arrive only when the test says so."""

    def __init__(self, state: QuotaState) -> None:
        super().__init__(state)
        self.arrived = False

    def poll_lease(self, ticket: object) -> tuple[int, float] | None:
        return super().poll_lease(ticket) if self.arrived else None


def test_a_late_lease_is_given_back_when_idle() -> None:
    """Permits granted after the worker stopped asking are returned, not held against the window."""
    clock = Clock()
    state = QuotaState(max_concurrency=64, initial_concurrency=64, adaptive=False, clock=clock)
    backend = SlowBackend(state)
    throttle = LeasedThrottle(backend, lease_size=4, clock=clock)
    assert throttle.acquire(MODEL) == pytest.approx(0.005)  # lease in flight
    throttle.flush(give_back=True)  # the batch ended before the answer came
    assert state.stats().models[MODEL].in_flight == 4
    backend.arrived = True
    throttle.flush(give_back=True)
    st = state.stats()
    assert (st.granted, st.unused, st.models[MODEL].in_flight) == (4, 4, 0)
