"""The ``dashscope-embed`` command line: ``embed``, ``batch`` and ``emulator``.

Exit codes: 0 success; 1 the service or the network failed; 2 a problem to fix first (bad option,
bad input file, a text the model rejects as too long, missing API key); 3 a batch job finished but
some rows have no vector (listed in ``OUTPUT.errors.jsonl``); 4 a batch job has not finished yet
(nothing final written: run the command again later); 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """usage: dashscope-embed COMMAND [options]

commands:
  embed      embed a .txt/.jsonl/.csv file into .npy/.jsonl/.parquet (real time or --batch)
  batch      status | cancel | list | download for Batch API jobs
  emulator   run the local DashScope-compatible emulator (not the real model)

Run `dashscope-embed COMMAND --help` for a command's options. The API key is read from
DASHSCOPE_API_KEY.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "emulator":
        from dashscope_embed.emulator._cli import main as emulator_main

        return int(emulator_main(rest))
    if command in ("embed", "batch"):
        return _run(command, rest)
    print(f"dashscope-embed: unknown command {command!r}\n{_USAGE}", file=sys.stderr, end="")
    return 2


def _run(command: str, rest: list[str]) -> int:
    """Run ``embed``/``batch``, turning every expected failure into a message and an exit code."""
    from dashscope_embed._errors import (
        APIConnectionError,
        APIStatusError,
        ConfigurationError,
        DashScopeError,
        InputTooLongError,
    )

    from ._common import EMULATOR_HINT, EXIT_API, EXIT_INTERRUPTED, EXIT_USAGE, say
    from ._io import CliError

    prog = f"dashscope-embed {command}"
    try:
        if command == "embed":
            from ._embed import main as run
        else:
            from ._batch import main as run
        return run(rest)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except ConfigurationError as exc:
        say(f"{prog}: {exc}\n{EMULATOR_HINT}")
        return EXIT_USAGE
    except (CliError, ValueError, FileExistsError, ImportError, InputTooLongError) as exc:
        # InvalidInputError is a ValueError: a bad option or text, found before any request;
        # a text over the model's token limit is bad input too, though the server finds it
        say(f"{prog}: {exc}")
        return EXIT_USAGE
    except (APIStatusError, APIConnectionError, DashScopeError, TimeoutError) as exc:
        say(f"{prog}: {exc}")
        return EXIT_API
    except KeyboardInterrupt:
        say(f"{prog}: interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:
        say(f"{prog}: {exc}")
        return EXIT_USAGE

