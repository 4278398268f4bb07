"""A local Ray cluster (2 CPUs, in-process driver, loopback) against the loopback emulator.

One ``ray.init`` serves the whole module; each Ray Data pipeline starts its own actor pool.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
import ray.data

from dashscope_embed import get_model
from dashscope_embed.emulator import EmulatorConfig, serve, text_vector
from dashscope_embed.ray import DashScopeEmbedder, SharedQuota, embed_files
from tests.ray.conftest import start_local_ray

KEY = "sk-test"
MODEL = "text-embedding-v4"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """A 2-CPU local Ray cluster for this module, with ordered Ray Data output."""
    start_local_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    yield
    ray.shutdown()


def test_four_workers_share_one_quota() -> None:
    """4 workers under one SharedQuota give each row its vector, in order, with ≤ 3 % of 429s."""
    rpm, n = 2400, 800
    texts = [f"document {i} on topic {i % 13} and shelf {i % 7}" for i in range(n)]
    with serve(config=EmulatorConfig(rpm=rpm, latency=0.02)) as server:
        quota = SharedQuota(rpm=rpm)
        ds = ray.data.from_items(
            [{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=8
        ).map_batches(
            DashScopeEmbedder,
            fn_constructor_kwargs={
                "base_url": server.url,
                "api_key": KEY,
                "quota": quota,
                "dimension": 64,
                "max_batch_size": 4,
                "on_error": "column",
            },
            batch_format="pyarrow",
            batch_size=50,
            compute=ray.data.ActorPoolStrategy(size=4),
            num_cpus=0.25,
        )
        rows = ds.take_all()
        stats = server.emulator.stats
        sent = server.emulator.requests
        shared = quota.stats()
    assert [r["id"] for r in rows] == list(range(n))
    assert [r["embedding_error"] for r in rows] == [None] * n
    got = np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])
    want = np.stack([text_vector(MODEL, t, dimension=64) for t in texts])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert stats.rows == n  # rows of successful requests: each row was paid for once
    assert stats.throttled <= 0.03 * stats.requests, stats
    assert {r.json["parameters"]["dimension"] for r in sent} == {64}
    assert shared.ok == stats.by_status[200]  # every success was reported to the one shared quota
    assert shared.throttled == stats.throttled
    assert shared.models[MODEL].in_flight == 0  # no permit leaked


def test_embed_files_writes_failed_rows_and_resumes(tmp_path: Path) -> None:
    """A run writes vectors and failed rows apart; the next run embeds only what is missing."""
    source = tmp_path / "docs.jsonl"
    texts = {i: f"note {i} about {['tea', 'rain', 'maps', 'jazz'][i % 4]}" for i in range(40)}
    texts[7] = " ".join(f"word{i}" for i in range(60))  # over the first server's 40-token limit
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in texts.items()))
    output = tmp_path / "vectors"
    small = replace(get_model(MODEL), max_tokens=40)

    with serve(config=EmulatorConfig(extra_models={MODEL: small})) as server:
        first = embed_files(
            str(source), str(output), base_url=server.url, api_key=KEY, dimension=64,
            workers=2, batch_size=8,
        )  # fmt: skip
    assert (first.already_done, first.embedded, first.failed, first.total) == (0, 39, 1, 40 - 1)
    failed = pq.read_table(first.failed_path).to_pylist()
    assert [(r["id"], r["embedding"]) for r in failed] == [(7, None)]
    assert failed[0]["embedding_error"].startswith("InputTooLongError: HTTP 400")

    with serve(config=EmulatorConfig()) as server:
        second = embed_files(
            str(source), str(output), base_url=server.url, api_key=KEY, dimension=64,
            workers=2, batch_size=8,
        )  # fmt: skip
        resent = [t for r in server.emulator.requests for t in r.json["input"]["texts"]]
    assert resent == [texts[7]]  # nothing already embedded was paid for twice
    assert (second.already_done, second.embedded, second.failed, second.total) == (39, 1, 0, 40)
    assert not Path(second.failed_path).exists()
    table = pq.read_table(second.vectors_path)
    assert sorted(table.column("id").to_pylist()) == list(range(40))  # no duplicate ids
    for row in table.to_pylist():
        assert row["embedding_error"] is None
        want = text_vector(MODEL, texts[row["id"]], dimension=64)
        np.testing.assert_allclose(row["embedding"], want, atol=1e-6)


def test_shared_quota_actor_leases_and_learns_from_429s() -> None:
    """Through the actor, a worker leases permits in bulk and its 429 starts the shared pacing."""
    quota = SharedQuota(  # a high known quota: paced 1 ms apart, so a lease can take five
        rpm=60_000, initial_concurrency=8, name="test-quota", namespace="dashscope-embed-tests"
    )
    joined = SharedQuota.connect("test-quota", namespace="dashscope-embed-tests")
    first, second = quota.throttle(lease_size=5), joined.throttle(lease_size=5)
    admitted = 0
    deadline = time.monotonic() + 10
    while admitted < 5 and time.monotonic() < deadline:
        if first.acquire(MODEL) == 0.0:
            admitted += 1
        else:
            time.sleep(0.005)
    assert admitted == 5
    for _ in range(4):
        first.release(MODEL, "ok")
    first.release(MODEL, "throttled")
    second.flush()
    stats = joined.stats()  # the same actor, found by name
    assert (stats.granted, stats.ok, stats.throttled) == (5, 4, 1)
    assert stats.leases <= 3  # five permits in (nearly) one round trip
    rate = stats.models[MODEL].rate_per_second
    assert rate is not None
    assert rate < 0.98 * 1000  # the 429 cut the shared pacing below the given quota
    with pytest.raises(ValueError, match="rpm/tpm"):
        DashScopeEmbedder(quota=quota, rpm=100, base_url="http://127.0.0.1:9", api_key=KEY)
    quota.kill()


def test_a_dead_workers_permits_come_back_and_the_job_finishes() -> None:
    """A task takes all 8 permits and calls os._exit(1): within the lease timeout the quota
    takes them back (in_flight returns to 0) and a job through the same quota completes."""
    import os

    quota = SharedQuota(max_concurrency=8, initial_concurrency=8, lease_timeout=2.0)

    @ray.remote(max_retries=0)
    def hog(shared: SharedQuota) -> None:
        throttle = shared.throttle(lease_size=8, max_concurrency=8)
        held, deadline = 0, time.monotonic() + 20
        while held < 8 and time.monotonic() < deadline:
            if throttle.acquire(MODEL) == 0.0:
                held += 1
            else:
                time.sleep(0.005)
        time.sleep(0.5)  # a heartbeat or two: the lease was alive
        os._exit(1)

    with pytest.raises(ray.exceptions.RayError):
        ray.get(hog.remote(quota), timeout=60)
    assert quota.stats().granted == 8
    deadline = time.monotonic() + 15
    while quota.stats().models[MODEL].in_flight and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = quota.stats()
    assert (stats.models[MODEL].in_flight, stats.expired) == (0, 8)
    texts = [f"after the crash {i}" for i in range(30)]
    with serve(config=EmulatorConfig(latency=0.01)) as server:
        from dashscope_embed import DashScopeClient

        with DashScopeClient(KEY, base_url=server.url, throttle=quota.throttle()) as client:
            result = client.embed_texts(texts, dimension=64)
    want = np.stack([text_vector(MODEL, t, dimension=64) for t in texts])
    np.testing.assert_allclose(result.embeddings, want, atol=1e-6)
    quota.kill()
