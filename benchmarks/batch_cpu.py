"""Benchmark: client CPU per vector of the Batch API path (and of real time, for scale).

The emulator runs in its own process (``python -m dashscope_embed.emulator``: Batch lines are
processed there, at its default 1,000 lines/s), so only the client's work is counted: building
the JSONL input, uploading it, polling, streaming the output file, parsing every result line and
writing the rows into the ``.npy``. CPU is user + system time of this process
(``os.times()``), split into the two phases; waiting for the server costs no CPU.

Run: ``python -m benchmarks.batch_cpu`` (``--n 2000`` for a quick check).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from benchmarks._harness import EmulatorProcess, corpus, cpu_seconds, table
from dashscope_embed import DashScopeClient
from dashscope_embed.batch._job import BatchJob
from dashscope_embed.io._stream import embed_to_npy


def batch_run(url: str, texts: list[str], dim: int, folder: str) -> dict[str, float]:
    client = DashScopeClient("sk-bench", base_url=url)
    job = BatchJob.create(
        client, os.path.join(folder, "job.json"), os.path.join(folder, "b.npy"), dimension=dim
    )
    c0, t0 = cpu_seconds(), time.perf_counter()
    job.submit(texts)
    c1 = cpu_seconds()
    report = job.wait(poll_interval=0.2, max_poll_interval=1.0)
    c2, t2 = cpu_seconds(), time.perf_counter()
    if not report.finished or report.failures:
        raise RuntimeError(f"the batch job did not finish cleanly: {report}")
    assert np.load(os.path.join(folder, "b.npy"), mmap_mode="r").shape == (len(texts), dim)
    client.close()
    return {"submit": c1 - c0, "collect": c2 - c1, "wall": t2 - t0}


def realtime_run(url: str, texts: list[str], dim: int, folder: str) -> dict[str, float]:
    client = DashScopeClient("sk-bench", base_url=url)
    c0, t0 = cpu_seconds(), time.perf_counter()
    embed_to_npy(client, texts, os.path.join(folder, "r.npy"), dimension=dim)
    c1, t1 = cpu_seconds(), time.perf_counter()
    client.close()
    return {"cpu": c1 - c0, "wall": t1 - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1024)
    args = parser.parse_args()
    texts = corpus(args.n)
    with EmulatorProcess([]) as emulator, tempfile.TemporaryDirectory() as folder:
        batch_run(emulator.url, texts[:200], args.dim, os.path.join(folder))  # warm up imports
        os.remove(os.path.join(folder, "job.json"))
        b = batch_run(emulator.url, texts, args.dim, folder)
        r = realtime_run(emulator.url, texts, args.dim, folder)
    n = args.n
    per = lambda seconds: f"{seconds / n * 1e6:.1f}"  # noqa: E731
    print(f"### Client CPU per {args.dim}-d vector, {n:,} texts (emulator in another process)\n")
    print(
        table(
            [
                {
                    "path": "Batch API: build JSONL + upload + create",
                    "client CPU (s)": f"{b['submit']:.2f}",
                    "µs / vector": per(b["submit"]),
                    "wall (s)": "",
                },
                {
                    "path": "Batch API: poll + download + parse + write .npy",
                    "client CPU (s)": f"{b['collect']:.2f}",
                    "µs / vector": per(b["collect"]),
                    "wall (s)": "",
                },
                {
                    "path": "Batch API total",
                    "client CPU (s)": f"{b['submit'] + b['collect']:.2f}",
                    "µs / vector": per(b["submit"] + b["collect"]),
                    "wall (s)": f"{b['wall']:.1f}",
                },
                {
                    "path": "real time (embed_to_npy), for scale",
                    "client CPU (s)": f"{r['cpu']:.2f}",
                    "µs / vector": per(r["cpu"]),
                    "wall (s)": f"{r['wall']:.1f}",
                },
            ]
        )
    )
    print(
        "\nCPU = user + system time of the client process (os.times). Batch wall time is the "
        "emulator's processing speed (1,000 lines/s by default), not the client's."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
