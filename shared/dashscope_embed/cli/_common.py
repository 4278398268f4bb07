"""Pieces shared by the ``embed`` and ``batch`` commands: client options, progress, exports."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dashscope_embed._client import DashScopeClient

from ._io import CliError

__all__ = [
    "EMULATOR_HINT",
    "EXIT_API",
    "EXIT_FAILED_ROWS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PENDING",
    "EXIT_USAGE",
    "add_client_args",
    "make_bar",
    "make_client",
    "say",
]

EXIT_OK = 0
EXIT_API = 1  # the service (or the network) failed
EXIT_USAGE = 2  # bad options, bad input, missing key: fix and run again
EXIT_FAILED_ROWS = 3  # a batch job finished, but some rows have no vector
EXIT_PENDING = 4  # a batch job has not finished: nothing final yet, run again later
EXIT_INTERRUPTED = 130

EMULATOR_HINT = (
    "No key at hand? Try everything locally: run `dashscope-embed emulator` in another terminal, "
    "then `export DASHSCOPE_API_KEY=sk-local` and add `--base-url http://127.0.0.1:8123`."
)


def say(message: str) -> None:
    """A status line on stderr (stdout stays free for data)."""
    print(message, file=sys.stderr, flush=True)


def add_client_args(parser: argparse.ArgumentParser) -> None:
    """``--base-url`` and ``--region`` (the key comes from ``DASHSCOPE_API_KEY`` only)."""
    group = parser.add_argument_group("service (the API key is read from DASHSCOPE_API_KEY)")
    group.add_argument(
        "--base-url",
        default=None,
        help="host to call, e.g. http://127.0.0.1:8123 for the emulator (env DASHSCOPE_BASE_URL)",
    )
    group.add_argument(
        "--region",
        default=None,
        help="cn-beijing (default), ap-southeast-1/intl, us-east-1, cn-hongkong, ... "
        "(env DASHSCOPE_REGION)",
    )


def make_client(args: argparse.Namespace, *, concurrency: int | None = None) -> DashScopeClient:
    """The core client from ``--base-url`` / ``--region`` and the environment.

    Raises:
        ConfigurationError: no key, bad region or URL (the caller prints it with the hint).
    """
    return DashScopeClient(base_url=args.base_url, region=args.region, max_concurrency=concurrency)


def make_bar(mode: bool | None, total: int | None, *, unit: str = "text") -> Any:
    """A tqdm bar on stderr, or ``None``.

    ``mode``: ``True`` (``--progress``: tqdm required), ``False`` (``--no-progress``), ``None``
    (automatic: a bar when stderr is a terminal and tqdm is installed).
    """
    if mode is False or (mode is None and not sys.stderr.isatty()):
        return None
    from dashscope_embed.io._stream import progress_bar

    try:
        return progress_bar(total, unit=unit)
    except ImportError as exc:
        if mode:
            raise CliError(str(exc)) from None
        return None
