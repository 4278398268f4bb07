"""Benchmark: peak memory of streaming 200,000 texts to a 1024-d ``.npy`` in real time.

Three processes: the emulator (``python -m dashscope_embed.emulator``), this script, and a fresh
child that does the embedding and measures itself, so the number is the client's alone:

* ``peak RSS`` — ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child at the end (the
  kernel's high-water mark of resident memory, KiB on Linux), cross-checked by sampling
  ``/proc/self/statm`` every 20 ms while it runs;
* ``baseline RSS`` — the child's RSS after imports and client creation, before the first text.

The vectors alone would take 200,000 × 1024 × 4 B = 781 MiB; the target is < 300 MiB.

Run: ``python -m benchmarks.batch_memory`` (``--n 20000`` for a quick check).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks._harness import EmulatorProcess, table

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def child(url: str, n: int, dim: int, chunk: int, concurrency: int) -> dict[str, float]:
    """Embed n generated texts to a .npy and report memory and time (runs in a fresh process)."""
    import resource

    import numpy as np

    from dashscope_embed import DashScopeClient
    from dashscope_embed.io._stream import embed_to_npy

    client = DashScopeClient("sk-bench", base_url=url, max_concurrency=concurrency)
    baseline = rss_mb()
    sampled = [baseline]
    running = True

    def sample() -> None:
        while running:
            sampled.append(rss_mb())
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    texts = (
        f"document {i} about topic {i % 1000} with words w{i % 7919} w{i % 104729}"
        for i in range(n)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vectors.npy")
        t0 = time.perf_counter()
        summary = embed_to_npy(client, texts, path, n=n, chunk_size=chunk, dimension=dim)
        seconds = time.perf_counter() - t0
        running = False
        thread.join()
        arr = np.load(path, mmap_mode="r")
        assert arr.shape == (n, dim), arr.shape
        size_mb = os.path.getsize(path) / 2**20
    client.close()
    return {
        "rows": summary.rows,
        "seconds": seconds,
        "baseline_mb": baseline,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sampled_peak_mb": max(sampled),
        "file_mb": size_mb,
        "requests": summary.usage.requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--malloc-arena-max",
        type=int,
        default=None,
        help="set MALLOC_ARENA_MAX for the child (glibc): 2 keeps the RSS flat (see the docs)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.n, args.dim, args.chunk, args.concurrency)
        print(json.dumps(result))
        return 0
    with EmulatorProcess([]) as emulator:
        cmd = [sys.executable, "-m", "benchmarks.batch_memory", "--child", emulator.url]
        cmd += ["--n", str(args.n), "--dim", str(args.dim), "--chunk", str(args.chunk)]
        cmd += ["--concurrency", str(args.concurrency)]
        env = dict(os.environ)
        if args.malloc_arena_max:
            env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    vectors_mb = args.n * args.dim * 4 / 2**20
    arenas = f", MALLOC_ARENA_MAX={args.malloc_arena_max}" if args.malloc_arena_max else ""
    setup = f"real time, chunk {args.chunk}{arenas}"
    print(f"### Streaming {args.n:,} texts to a {args.dim}-d .npy ({setup})\n")
    print(
        table(
            [
                {
                    "rows": f"{int(r['rows']):,}",
                    "vectors (MiB)": f"{vectors_mb:.0f}",
                    ".npy on disk (MiB)": f"{r['file_mb']:.0f}",
                    "baseline RSS (MiB)": f"{r['baseline_mb']:.0f}",
                    "peak RSS, ru_maxrss (MiB)": f"{r['peak_rss_mb']:.0f}",
                    "peak RSS, sampled (MiB)": f"{r['sampled_peak_mb']:.0f}",
                    "time (s)": f"{r['seconds']:.1f}",
                    "texts/s": f"{r['rows'] / r['seconds']:,.0f}",
                }
            ]
        )
    )
    print(
        "\nMeasured in a fresh child process (the emulator runs in a third process): peak RSS is "
        "the kernel's ru_maxrss high-water mark, checked against /proc/self/statm samples."
    )
    return 0 if r["peak_rss_mb"] < 300 else 1


if __name__ == "__main__":
    raise SystemExit(main())
