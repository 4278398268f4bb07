"""The ``dashscope-embed`` command line: ``emulator`` (and, later, ``embed`` / ``batch``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """usage: dashscope-embed COMMAND [options]

commands:
  emulator   run the local DashScope-compatible emulator (not the real model)
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "emulator":
        from .emulator._cli import main as emulator_main

        return int(emulator_main(rest))
    print(f"dashscope-embed: unknown command {command!r}\n{_USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
