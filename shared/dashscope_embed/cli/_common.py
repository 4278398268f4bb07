"""Pieces shared by the ``embed`` and ``batch`` commands: exit codes, client options, progress."""

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
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_PENDING",
    "EXIT_USAGE",
    "add_client_args",
    "add_lock_arg",
    "make_bar",
    "make_client",
    "say",
]

EXIT_OK = 0
EXIT_API = 1  # the service, the network or a local file (not the input) failed
EXIT_USAGE = 2  # bad options, bad input, missing key: fix and run again
EXIT_FAILED_ROWS = 3  # finished, but some rows have no vector (OUTPUT.errors.jsonl lists them)
EXIT_PENDING = 4  # a batch job has not finished: nothing final yet, run again later
EXIT_LOCKED = 5  # another process is running this batch job: nothing was sent
EXIT_INTERRUPTED = 130

EMULATOR_HINT = (
    "No key at hand? Try everything locally: run `dashscope-embed emulator` in another terminal, "
    "then `export DASHSCOPE_API_KEY=sk-local` and add `--base-url http://127.0.0.1:8123`."
)


def say(message: str) -> None:
    """A status line on stderr (stdout stays free for data)."""
    print(message, file=sys.stderr, flush=True)


def add_client_args(parser: argparse.ArgumentParser, *, recorded: bool = False) -> None:
    """``--base-url`` and ``--region`` (the key comes from ``DASHSCOPE_API_KEY`` only);
    ``recorded``: the command acts on a job whose state file records its host."""
    group = parser.add_argument_group("service (the API key is read from DASHSCOPE_API_KEY)")
    where = "default: the host recorded in the state file" if recorded else "env DASHSCOPE_BASE_URL"
    group.add_argument(
        "--base-url",
        default=None,
        help=f"host to call, e.g. http://127.0.0.1:8123 for the emulator ({where})",
    )
    group.add_argument(
        "--region",
        default=None,
        help="cn-beijing (default), ap-southeast-1/intl, us-east-1, cn-hongkong, ... "
        "(env DASHSCOPE_REGION)",
    )


def add_lock_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--lock-timeout``: how long to wait for another process running the same job."""
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another process running the same batch job (default 0: exit "
        "at once with code 5, having sent nothing)",
    )


def make_client(
    args: argparse.Namespace, *, concurrency: int | None = None, base_url: str | None = None
) -> DashScopeClient:
    """The core client from ``--base-url`` / ``--region`` and the environment; ``base_url``
    (a job's recorded host) is used when neither option is given.

    Raises:
        ConfigurationError: no key, bad region or URL (the caller prints it with the hint).
    """
    url = args.base_url
    if url is None and args.region is None:
        url = base_url
    return DashScopeClient(base_url=url, region=args.region, max_concurrency=concurrency)


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
