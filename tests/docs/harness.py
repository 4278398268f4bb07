"""Find the code blocks of a Markdown page and decide which ones the suite runs.

Pure: parsing and classification only; ``test_pages.py`` executes what this returns.

- ````python`` blocks run, in page order, in one namespace per page.
- ````console`` blocks (commands after ``$ ``) and ````bash`` / ````sh`` / ````shell`` blocks
  run when they invoke ``dashscope-embed``: those show CLI runs. Other shell blocks (``pip
  install``, ``make demo``) are set-up instructions and are reported, not run.
- A block preceded (blank lines aside) by ``<!-- no-run: REASON -->`` is not run. A ``no-run``
  without a reason is an error: every exception has to say why.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "DocError", "Page", "ShellCommand", "parse_page", "shell_commands"]

PYTHON = frozenset({"python", "py", "python3", "pycon-run"})
SHELL = frozenset({"bash", "sh", "shell", "console", "zsh"})
CLI = "dashscope-embed"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_NO_RUN = re.compile(r"^<!--\s*no-run\s*(?::\s*(?P<reason>.*?))?\s*-->$")


class DocError(ValueError):
    """A page breaks the rules of the harness (say, a ``no-run`` with no reason)."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # 1-based line of the first line of code (the one after the fence)
    lang: str
    source: str
    no_run: str | None = None  # the reason, when the block is marked no-run

    @property
    def kind(self) -> str:
        """``python``, ``cli`` (a shell block running dashscope-embed), ``shell`` or ``other``."""
        if self.lang in PYTHON:
            return "python"
        if self.lang in SHELL:
            return "cli" if any(c.argv[:1] == [CLI] for c in shell_commands(self)) else "shell"
        return "other"

    @property
    def runs(self) -> bool:
        return self.no_run is None and self.kind in ("python", "cli")

    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Page:
    path: str
    blocks: list[Block] = field(default_factory=list)

    def count(self) -> dict[str, int]:
        """How many blocks run, are marked no-run (python and CLI ones), or are other shell."""
        return {
            "run": sum(b.runs for b in self.blocks),
            "no-run": sum(
                b.no_run is not None and b.kind in ("python", "cli") for b in self.blocks
            ),
            "shell (set-up, not run)": sum(
                b.kind == "shell" and b.no_run is None for b in self.blocks
            ),
        }


def parse_page(path: Path, *, name: str | None = None) -> Page:
    """Split ``path`` into its fenced blocks, with the no-run marker that precedes each one.

    Raises:
        DocError: a ``no-run`` marker without a reason, a marker followed by no block, or an
            unclosed fence.
    """
    page = Page(name or path.name)
    lines = path.read_text(encoding="utf-8").splitlines()
    pending: tuple[int, str | None] | None = None  # (line, reason) of a no-run marker
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        marker = _NO_RUN.match(text)
        if marker:
            reason = (marker.group("reason") or "").strip()
            if not reason:
                raise DocError(
                    f"{page.path}:{i + 1}: <!-- no-run --> needs a reason: "
                    "<!-- no-run: why this block cannot run offline -->"
                )
            pending = (i + 1, reason)
            i += 1
            continue
        fence = _FENCE.match(lines[i])
        if fence:
            mark = fence.group("fence")
            lang = (fence.group("info").split() or [""])[0].lower()
            start = i + 1
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(mark):
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise DocError(f"{page.path}:{start}: unclosed code fence")
            no_run = pending[1] if pending else None
            page.blocks.append(Block(page.path, start + 1, lang, "\n".join(body) + "\n", no_run))
            pending = None
            i += 1
            continue
        if text and pending is not None:
            raise DocError(
                f"{page.path}:{pending[0]}: <!-- no-run --> must come right before a code block"
            )
        i += 1
    if pending is not None:
        raise DocError(f"{page.path}:{pending[0]}: <!-- no-run --> is followed by no code block")
    return page


@dataclass(frozen=True)
class ShellCommand:
    line: int
    argv: list[str]


def shell_commands(block: Block) -> list[ShellCommand]:
    """The commands of a shell block: ``$ `` lines of a console block, every line of a script.

    A trailing ``\\`` continues a command on the next line; ``# comments`` are dropped.
    """
    out: list[ShellCommand] = []
    console = block.lang == "console"
    lines = block.source.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        first = i
        i += 1
        if console:
            if not raw.startswith("$ "):
                continue  # output shown in the page
            raw = raw[2:]
        while raw.rstrip().endswith("\\") and i < len(lines):
            raw = raw.rstrip()[:-1] + " " + lines[i].lstrip()
            i += 1
        argv = shlex.split(raw, comments=True)
        if argv:
            out.append(ShellCommand(block.line + first, argv))
    return out
