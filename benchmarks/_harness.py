"""Benchmark plumbing: the emulator in its own process, timing and memory helpers.

The emulator runs in a separate process so its JSON encoding does not share the client's GIL
(the machine has 2 cores: one for the emulator, one for the client).
"""

from __future__ import annotations

import contextlib
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["EmulatorProcess", "corpus", "cpu_seconds", "peak_rss_mb", "table"]


@dataclass
class EmulatorProcess:
    """`python -m dashscope_embed.emulator` on a free loopback port."""

    args: list[str]
    module: str = "dashscope_embed.emulator"
    url: str = ""
    proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> EmulatorProcess:
        cmd = [sys.executable, "-m", self.module, "--port", "0", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if match:
                self.url = match.group(1)
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"emulator did not start: {cmd}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)


def corpus(n: int, *, words: int = 8, seed: int = 0) -> list[str]:
    """n distinct short texts (deterministic)."""
    import random

    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    return [f"doc {i} " + " ".join(rng.choice(vocab) for _ in range(words)) for i in range(n)]


def cpu_seconds() -> float:
    """User + system CPU of this process (``time.process_time``: ns resolution, not 10 ms ticks)."""
    return time.process_time()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows: list[dict[str, object]]) -> str:
    """A Markdown table from dict rows (same keys)."""
    if not rows:
        return ""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        out.append("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return "\n".join(out)


@contextlib.contextmanager
def timer() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    t0, c0 = time.perf_counter(), cpu_seconds()
    yield box
    box["wall"] = time.perf_counter() - t0
    box["cpu"] = cpu_seconds() - c0
