"""The CPU figures quoted in the README and on the benchmarks page match the recorded output."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _cpu_rows() -> dict[tuple[str, str], float]:
    rows = {}
    for line in (RESULTS / "cpu.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"[\d.]+", cells[2]):
            rows[(cells[0], cells[1])] = float(cells[2])
    return rows


def test_fast_extra_claims_follow_the_recorded_cpu_benchmark() -> None:
    """ "60 vs 720 µs" and "about 6× less CPU on the whole path" are what benchmarks.cpu printed:
    the whole-path ratio is the stdlib parse plus the rest of the client path, over the fast
    path."""
    rows = _cpu_rows()
    fast = rows[("parse only", "pysimdjson")]
    stdlib = rows[("parse only", "stdlib json")]
    whole_fast = rows[("whole client path, one batch at a time (max_concurrency=1)", "pysimdjson")]
    whole_ratio = (stdlib + whole_fast - fast) / whole_fast
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert f"{fast:.0f} vs {stdlib:.0f} µs per 1024-d vector" in readme
    assert f"about {whole_ratio:.0f}× less CPU on the whole client path" in readme
    start = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert f"about {whole_ratio:.0f}× less client CPU" in start
    assert f"parses {stdlib / fast:.0f}× faster" in page
    assert f"**about {whole_ratio:.0f}× less client CPU on the whole path**" in page
