"""Benchmark: saturate a quota without throttle storms, against baselines.

Scenarios (emulator in its own process, text-embedding-v4, 256-d vectors):

1. no quota, 100 ms latency: throughput vs the ideal for the concurrency cap;
2. 600 RPM quota, 150 ms latency: achieved request rate vs the quota, share of 429s;
3. a TPM quota with long texts: achieved token rate vs the quota, share of 429s;
4. our client vs a sequential client (one request at a time, like the existing integrations)
   on scenario 1.

Every run checks that every vector is the emulator's vector for its text, in input order.
Also: client CPU per vector and peak RSS for 100,000 vectors (no latency), measured in a fresh
child process so the earlier scenarios do not set its high-water mark.

Run: ``python -m benchmarks.quota [--n 20000] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np

from benchmarks._harness import EmulatorProcess, corpus, peak_rss_mb, table, timer
from dashscope_embed import DashScopeClient, Throttle
from dashscope_embed._config import DEFAULT_MAX_CONCURRENCY
from dashscope_embed.emulator import count_tokens, text_vector

MODEL = "text-embedding-v4"
DIM = 256
ROWS = 10


def _check(texts: list[str], vectors: np.ndarray) -> bool:
    step = max(1, len(texts) // 300)
    idx = list(range(0, len(texts), step))
    expected = np.stack([text_vector(MODEL, texts[i], dimension=DIM) for i in idx])
    return len(vectors) == len(texts) and bool(np.allclose(vectors[idx], expected, atol=1e-5))


def _embed(url: str, texts: list[str], **client_kwargs: object) -> dict[str, float | int | bool]:
    with DashScopeClient("sk-bench", base_url=url, **client_kwargs) as client:  # type: ignore[arg-type]
        with timer() as t:
            res = client.embed_texts(texts, model=MODEL, dimension=DIM)
        st = client.stats
    return {
        "wall": t["wall"],
        "cpu": t["cpu"],
        "requests": st.requests,
        "throttled": st.throttled,
        "tokens": res.usage.total_tokens,
        "ok": _check(texts, res.embeddings),
    }


def no_quota(n: int) -> list[dict[str, object]]:
    texts = corpus(n)
    rows = []
    with EmulatorProcess(["--latency", "0.1"]) as emu:
        _embed(emu.url, texts)  # untimed: warms the emulator's vocabulary cache (see throughput.py)
        ours = _embed(emu.url, texts)
        seq_n = max(ROWS, n // 10)
        seq = _embed(emu.url, texts[:seq_n], throttle=Throttle(max_concurrency=1, adaptive=False))
    ideal = math.ceil(n / ROWS) / DEFAULT_MAX_CONCURRENCY * 0.1
    seq_rate = seq_n / seq["wall"]
    rows.append(
        {
            "scenario": f"1. no quota, 100 ms, cap {DEFAULT_MAX_CONCURRENCY}",
            "texts": n,
            "wall s": f"{ours['wall']:.1f}",
            "rate": f"{n / ours['wall']:.0f} texts/s",
            "vs target": f"{ideal / ours['wall']:.2f} of ideal",
            "429 share": f"{ours['throttled'] / ours['requests']:.1%}",
            "correct": ours["ok"],
        }
    )
    rows.append(
        {
            "scenario": "4. sequential client (1 in flight), same server",
            "texts": seq_n,
            "wall s": f"{seq['wall']:.1f}",
            "rate": f"{seq_rate:.0f} texts/s",
            "vs target": f"ours is {n / ours['wall'] / seq_rate:.1f}x faster",
            "429 share": f"{seq['throttled'] / seq['requests']:.1%}",
            "correct": seq["ok"],
        }
    )
    return rows


def rpm_quota(n: int, rpm: int = 600) -> dict[str, object]:
    texts = corpus(n, seed=1)
    with EmulatorProcess(["--latency", "0.15", "--rpm", str(rpm)]) as emu:
        r = _embed(emu.url, texts)
    achieved = r["requests"] - r["throttled"]
    rate = achieved / r["wall"] * 60
    return {
        "scenario": f"2. {rpm} RPM quota, 150 ms",
        "texts": n,
        "wall s": f"{r['wall']:.1f}",
        "rate": f"{rate:.0f} RPM",
        "vs target": f"{rate / rpm:.2f} of quota",
        "429 share": f"{r['throttled'] / r['requests']:.1%}",
        "correct": r["ok"],
    }


def tpm_quota(n: int) -> dict[str, object]:
    texts = corpus(n, words=120, seed=2)
    per_request = sum(count_tokens(t) for t in texts[:ROWS])
    tpm = per_request * 600  # ~10 requests per second worth of tokens
    with EmulatorProcess(["--latency", "0.15", "--tpm", str(tpm)]) as emu:
        r = _embed(emu.url, texts)
    rate = r["tokens"] / r["wall"] * 60
    return {
        "scenario": f"3. {tpm:,} TPM quota, long texts, 150 ms",
        "texts": n,
        "wall s": f"{r['wall']:.1f}",
        "rate": f"{rate:,.0f} TPM",
        "vs target": f"{rate / tpm:.2f} of quota",
        "429 share": f"{r['throttled'] / r['requests']:.1%}",
        "correct": r["ok"],
    }


def cpu_and_memory(n: int) -> dict[str, object]:
    texts = corpus(n, seed=3)
    with EmulatorProcess([]) as emu:
        r = _embed(emu.url, texts)
    return {
        "scenario": f"client CPU and peak RSS, {n:,} vectors, no latency",
        "texts": n,
        "wall s": f"{r['wall']:.1f}",
        "rate": f"{n / r['wall']:.0f} texts/s",
        "vs target": f"{r['cpu'] / n * 1e6:.0f} µs CPU/vector, peak RSS {peak_rss_mb():.0f} MiB",
        "429 share": "-",
        "correct": r["ok"],
    }


def _in_fresh_process(n: int) -> dict[str, object]:
    """The CPU and memory row, measured in a child process: peak RSS is a process-wide high-water
    mark, which the earlier scenarios of this process would otherwise set."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.quota", "--memory-only", str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    row: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="a smaller run (2,000 texts)")
    parser.add_argument("--memory-only", type=int, metavar="N", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.memory_only:  # the child process of the memory row: print it as JSON
        print(json.dumps(cpu_and_memory(ns.memory_only)))
        return
    n = 2_000 if ns.quick else ns.n
    rows = [*no_quota(n), rpm_quota(n), tpm_quota(n), _in_fresh_process(5 * n)]
    print(f"## Throughput under quotas: {MODEL}, {DIM}-d, emulator in its own process\n")
    print(table(rows))


if __name__ == "__main__":
    main()
