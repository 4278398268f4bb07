"""`make bench`: every benchmark, one after the other, printing Markdown tables.

``--write DIR`` also saves each benchmark's output as ``DIR/<name>.md`` (``make bench`` writes
``benchmarks/results/``); the documentation's benchmarks page includes those files, so the site
shows the output of the last recorded run, not numbers copied by hand.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from pathlib import Path

SUITES = [
    "benchmarks.cpu",
    "benchmarks.throughput",
    "benchmarks.quota",
    "benchmarks.quota_matrix",
    "benchmarks.adapter_paths",
    "benchmarks.frontier",
]
OPTIONAL = ["benchmarks.batch_memory", "benchmarks.batch_cpu", "benchmarks.ray_quota"]


def _run(name: str, args: list[str], out_dir: Path | None) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", name, *args], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    status = proc.wait()
    if out_dir is not None and status == 0:
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        header = (
            f"<!-- python -m {name} {' '.join(args)}: recorded {when} on {platform.machine()} "
            f"Python {platform.python_version()} -->\n"
        )
        target = out_dir / f"{name.rsplit('.', 1)[-1]}.md"
        target.write_text(header + "".join(lines).strip() + "\n", encoding="utf-8")
    return status


def main() -> int:
    import importlib.util

    args = sys.argv[1:]
    out_dir = None
    if "--write" in args:
        i = args.index("--write")
        out_dir = Path(args[i + 1])
        out_dir.mkdir(parents=True, exist_ok=True)
        del args[i : i + 2]
    status = 0
    for name in SUITES + [m for m in OPTIONAL if importlib.util.find_spec(m) is not None]:
        print(f"\n<!-- {name} -->", flush=True)
        status |= _run(name, args, out_dir)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
