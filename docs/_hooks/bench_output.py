"""mkdocs hook: the benchmarks page shows the recorded output of ``make bench``.

``<!-- bench-output: NAME -->`` is replaced by ``benchmarks/results/NAME.md``, which
``python -m benchmarks --write benchmarks/results`` (``make bench``) rewrites on every run; the
numbers on the page are therefore the benchmark's own output, never retyped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
MARKER = re.compile(r"<!--\s*bench-output:\s*(?P<name>[\w-]+)\s*-->")
RECORDED = re.compile(r"^<!--\s*(?P<what>.*?)\s*-->\n")


def output(name: str) -> str:
    """The recorded output of one benchmark, as Markdown for the page."""
    path = RESULTS / f"{name}.md"
    if not path.exists():
        return f"*`benchmarks.{name}` has no recorded output in this checkout: run `make bench`.*"
    text = path.read_text(encoding="utf-8")
    note = ""
    match = RECORDED.match(text)
    if match:
        note = f"*`{match.group('what')}`*\n\n"
        text = text[match.end() :]
    text = re.sub(r"^## ", "#### ", text, flags=re.M)  # inside the page's own sections
    return note + text.strip()


def render(markdown: str) -> str:
    return MARKER.sub(lambda m: output(m.group("name")), markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return render(markdown)
