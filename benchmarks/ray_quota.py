"""Benchmark: 4 Ray Data workers under one account quota, with and without sharing it.

DashScope limits are per account (API reference §7). Every scenario embeds the same corpus with
4 workers (``DashScopeEmbedder`` in an actor pool) against an emulator enforcing one RPM quota
(per second, like the real service), and counts at the server:

1. shared quota: one ``SharedQuota(rpm=QUOTA)`` actor, workers lease permits from it;
2. each worker told the account limit (``rpm=QUOTA`` per worker): 4x too much;
3. each worker adaptive only (no limit given): every worker discovers the quota by 429s;
4. static split (``rpm=QUOTA/4`` per worker): right only while every worker stays busy.

Achieved rate = successful requests / (last answer - first request), from the emulator's
counters sampled every 50 ms. Every returned row is checked against the emulator's vector.

Run: ``python -m benchmarks.ray_quota [--n 6000] [--rpm 1200] [--workers 4] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

import numpy as np

from benchmarks._harness import corpus, table
from dashscope_embed.emulator import EmulatorConfig, serve, text_vector

MODEL = "text-embedding-v4"
DIM = 256
LATENCY = 0.05


class _Sampler:
    """Samples the emulator's counters until stopped: when work started and finished."""

    def __init__(self, emulator: Any, rows: int) -> None:
        self.emulator, self.rows = emulator, rows
        self.first: float | None = None
        self.last: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            st = self.emulator.stats
            now = time.perf_counter()
            if self.first is None and st.requests:
                self.first = now
            if self.last is None and st.rows >= self.rows:
                self.last = now

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        end = self.last if self.last is not None else time.perf_counter()
        return end - (self.first if self.first is not None else end)


def _scenario(
    name: str, texts: list[str], rpm: int, workers: int, options: dict[str, object]
) -> dict[str, object]:
    import ray.data

    from dashscope_embed.ray import DashScopeEmbedder

    rows = [{"id": i, "text": t} for i, t in enumerate(texts)]
    with serve(config=EmulatorConfig(rpm=rpm, latency=LATENCY)) as server:
        ds = ray.data.from_items(rows, override_num_blocks=workers * 4).map_batches(
            DashScopeEmbedder,
            fn_constructor_kwargs={
                "base_url": server.url,
                "api_key": "sk-bench",
                "model": MODEL,
                "dimension": DIM,
                "on_error": "column",
                **options,
            },
            batch_format="pyarrow",
            batch_size=200,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=0.25,
        )
        sampler = _Sampler(server.emulator, len(texts))
        out = ds.take_all()
        active = sampler.stop()
        st = server.emulator.stats
    ok_requests = st.by_status.get(200, 0)
    failed = sum(1 for r in out if r["embedding_error"] is not None)
    sample = out[:: max(1, len(out) // 200)]
    correct = len(out) == len(texts) and all(
        r["embedding_error"] is not None
        or np.allclose(r["embedding"], text_vector(MODEL, r["text"], dimension=DIM), atol=1e-5)
        for r in sample
    )
    achieved = ok_requests / active * 60 if active else 0.0
    return {
        "scenario": name,
        "requests": st.requests,
        "429s": st.throttled,
        "429 share": f"{st.throttled / max(1, st.requests):.1%}",
        "achieved RPM": f"{achieved:.0f}",
        "vs quota": f"{achieved / rpm:.2f}",
        "time s": f"{active:.1f}",
        "rows failed": failed,
        "vectors correct": correct,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=6_000, help="texts to embed per scenario")
    parser.add_argument("--rpm", type=int, default=1_200, help="the account's RPM quota")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a smaller run (2,000 texts)")
    ns = parser.parse_args()
    n = 2_000 if ns.quick else ns.n
    rpm, workers = ns.rpm, ns.workers

    # Loopback-only cluster, no usage report (read by Ray at import time).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import ray.data

    from dashscope_embed.ray import SharedQuota

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    texts = corpus(n, seed=9)
    runs = [
        ("1. shared quota (SharedQuota actor)", lambda: {"quota": SharedQuota(rpm=rpm)}),
        (f"2. each worker rpm={rpm} (the account limit)", lambda: {"rpm": rpm}),
        ("3. each worker adaptive only (no limit)", lambda: {}),
        (f"4. static split, each worker rpm={rpm // workers}", lambda: {"rpm": rpm / workers}),
    ]
    rows = [_scenario(name, texts, rpm, workers, make()) for name, make in runs]
    ray.shutdown()
    print(
        f"## Ray Data, {workers} workers, one account quota of {rpm} RPM\n\n"
        f"{n:,} texts, {MODEL} {DIM}-d, 10 rows/request, emulator latency "
        f"{LATENCY * 1000:.0f} ms, quota enforced per second (RPM/60 per s, burst RPM/60)\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
