"""`make bench`: every benchmark, one after the other, printing Markdown tables."""

from __future__ import annotations

import subprocess
import sys

SUITES = ["benchmarks.cpu", "benchmarks.throughput", "benchmarks.quota", "benchmarks.quota_matrix"]
OPTIONAL = ["benchmarks.batch_memory", "benchmarks.batch_cpu", "benchmarks.ray_quota"]


def main() -> int:
    import importlib.util

    status = 0
    for name in SUITES + [m for m in OPTIONAL if importlib.util.find_spec(m) is not None]:
        print(f"\n<!-- {name} -->", flush=True)
        status |= subprocess.call([sys.executable, "-m", name, *sys.argv[1:]])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
