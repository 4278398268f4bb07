"""The sync client's connection pools and admission gate (no sockets: pools are never used to
connect here, and the fake server is an httpx MockTransport)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from dashscope_embed import AsyncDashScopeClient, DashScopeClient
from dashscope_embed._engine._throttle import Throttle

from .conftest import KEY, Server

URL = "http://fake.test"


def _pools_seen(client: DashScopeClient, threads: int) -> list[httpx.Client]:
    seen: list[httpx.Client] = []
    for _ in range(threads):  # one after another: the assignment order is the thread order
        t = threading.Thread(target=lambda: seen.append(client._thread_http()))
        t.start()
        t.join()
    return seen


def test_every_24_worker_threads_share_one_of_our_pools_and_close_closes_them_all() -> None:
    client = DashScopeClient(KEY, base_url=URL, max_concurrency=100)
    seen = _pools_seen(client, 60)
    assert seen[0] is client._http  # the first pool is the one batch/file calls use
    assert [id(p) for p in seen] == [id(seen[0])] * 24 + [id(seen[24])] * 24 + [id(seen[48])] * 12
    assert len({id(p) for p in seen}) == 3
    assert all(not p.is_closed for p in seen)
    client.close()
    assert all(p.is_closed for p in seen)


def test_pools_are_bounded_by_twice_the_cap_and_wrap_around() -> None:
    """max_concurrency=12: at most 24 workers, so one pool however many threads come."""
    with DashScopeClient(KEY, base_url=URL, max_concurrency=12) as client:
        assert {id(p) for p in _pools_seen(client, 50)} == {id(client._http)}
    with DashScopeClient(KEY, base_url=URL, max_concurrency=30) as client:  # 60 workers: 3
        seen = _pools_seen(client, 100)
        assert len({id(p) for p in seen}) == 3
        assert seen[72] is seen[0]  # thread 72 is in group 3, which wraps to the first pool


def test_an_injected_http_client_is_the_only_pool_and_stays_open() -> None:
    http = httpx.Client(transport=httpx.MockTransport(Server().handle))
    client = DashScopeClient(KEY, base_url=URL, http_client=http, max_concurrency=100)
    assert {id(p) for p in _pools_seen(client, 60)} == {id(http)}
    client.close()
    assert not http.is_closed


class _CountingThrottle(Throttle):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.asked = 0
        self.count_lock = threading.Lock()

    def acquire(self, model: str, tokens: int = 0) -> float:
        with self.count_lock:
            self.asked += 1
        return super().acquire(model, tokens)


def _slow_server(delay: float) -> httpx.MockTransport:
    server = Server(order="forward")

    def handle(request: httpx.Request) -> httpx.Response:
        time.sleep(delay)
        return server.handle(request)

    return httpx.MockTransport(handle)


def test_waiting_batches_queue_at_a_gate_instead_of_all_asking_the_throttle() -> None:
    """200 batches, 20 in flight and 20 more workers waiting: a release wakes the one waiter
    at the gate, so the throttle is asked about twice per batch (admitted, woken by a release),
    not once per waiting batch per release (about 20 per release without the gate)."""
    throttle = _CountingThrottle(max_concurrency=20, adaptive=False)
    http = httpx.Client(transport=_slow_server(0.01))
    with DashScopeClient(KEY, base_url=URL, http_client=http, throttle=throttle) as client:
        res = client.embed_texts([f"text {i}" for i in range(2000)], model="text-embedding-v4")
    assert res.embeddings.shape[0] == 2000
    assert [v[0] for v in res.embeddings[:3]] == [6.0, 6.0, 6.0]  # len("text 0")
    assert 200 <= throttle.asked <= 3 * 200


def test_async_waiting_batches_queue_at_a_gate_too() -> None:
    throttle = _CountingThrottle(max_concurrency=20, adaptive=False)

    async def run() -> int:
        server = Server(order="forward")

        async def handle(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.01)
            return server.handle(request)

        http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        async with AsyncDashScopeClient(
            KEY, base_url=URL, http_client=http, throttle=throttle
        ) as client:
            res = await client.embed_texts([f"t {i}" for i in range(2000)])
        return int(res.embeddings.shape[0])

    assert asyncio.run(run()) == 2000
    assert 200 <= throttle.asked <= 300  # without the gate: about 500


def test_async_pools_open_on_demand_one_per_24_requests_in_flight() -> None:
    """A loop starts with one pool; a 25th request in flight opens a second, up to
    ceil(max_concurrency / 24); a request takes the least busy pool; all are closed."""
    from dashscope_embed._async_client import _Shards

    made: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        made.append(httpx.AsyncClient())
        return made[-1]

    shards = _Shards(make, max_concurrency=50)  # at most 3 pools
    taken = [shards.take() for _ in range(24)]
    assert len(made) == 1
    assert all(p is made[0] for p in taken)
    taken += [shards.take() for _ in range(24)]
    assert len(made) == 2
    assert taken[24] is made[1]
    taken += [shards.take() for _ in range(30)]  # 3 pools at most, then shared evenly
    assert len(made) == 3
    shards.give_back(made[0])
    assert shards.take() is made[0]  # the least busy
    for pool in taken:
        shards.give_back(pool)
    asyncio.run(shards.aclose())
    assert all(p.is_closed for p in made)


def test_our_pools_share_one_tls_context() -> None:
    client = DashScopeClient(KEY, base_url=URL, max_concurrency=100)
    first, second = client._pool_options()["verify"], client._pool_options()["verify"]
    assert first is second
    client.close()
