"""``python -m dashscope_embed.emulator`` / ``dashscope-embed emulator``: serve until Ctrl-C.

``--print-env`` prints the ``export`` lines that point our client, the dashscope SDK and the
openai SDK at an emulator on ``--host``/``--port`` and exits, so a whole app runs against it
with no code change: ``eval "$(dashscope-embed emulator --print-env)"``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dashscope_embed.emulator._app import Emulator, EmulatorConfig
from dashscope_embed.emulator._chaos import ChaosRule, parse_rule
from dashscope_embed.emulator._quota import QUOTA_MODELS
from dashscope_embed.emulator._server import EmulatorServer
from dashscope_embed.emulator._switch import TEST_KEY, client_env, export_lines

__all__ = ["build_parser", "config_from_args", "env_for", "main"]

BANNER = (
    "DashScope emulator listening on {url} (NOT the real service: vectors are deterministic hashes)"
)


def _row_limit(value: str) -> tuple[str, int]:
    model, sep, number = value.rpartition("=")
    if not sep or not model:
        raise argparse.ArgumentTypeError(f"expected MODEL=N, got {value!r}")
    try:
        limit = int(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"N must be an integer in {value!r}") from None
    if limit < 1:
        raise argparse.ArgumentTypeError(f"N must be at least 1 in {value!r}")
    return model, limit


def _chaos(value: str) -> ChaosRule:
    try:
        return parse_rule(value)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {value!r}")
    return rate


def build_parser(prog: str = "python -m dashscope_embed.emulator") -> argparse.ArgumentParser:
    """The argument parser (separate from :func:`main` so it can be tested without serving)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a local DashScope-compatible embedding API. Its vectors are "
        "deterministic lexical hashes, NOT the real model's vectors.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=_port, default=8123, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument(
        "--latency-jitter", type=float, default=0.0, help="extra random seconds, 0..N"
    )
    parser.add_argument("--rpm", type=int, default=None, help="requests per minute per model")
    parser.add_argument("--tpm", type=int, default=None, help="tokens per minute per model")
    parser.add_argument(
        "--quota-model",
        choices=QUOTA_MODELS,
        default="bucket",
        help="how --rpm/--tpm are enforced: per-second token bucket, sliding one-second "
        "window, or per-minute window (default: %(default)s)",
    )
    parser.add_argument(
        "--error-rate", type=_rate, default=0.0, help="share answered 500 InternalError"
    )
    parser.add_argument("--drop-rate", type=_rate, default=0.0, help="share of dropped connections")
    parser.add_argument(
        "--retry-after", type=float, default=None, help="Retry-After seconds on 429"
    )
    parser.add_argument(
        "--row-limit",
        type=_row_limit,
        action="append",
        default=[],
        metavar="MODEL=N",
        help="override a model's rows per request (repeatable)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept only these keys (repeatable; default: any key starting with sk-)",
    )
    parser.add_argument(
        "--chaos",
        type=_chaos,
        action="append",
        default=[],
        metavar="RULE",
        help="a fault rule by endpoint (repeatable), e.g. 'compat:p=0.3,status=429' or "
        "'multimodal:status=none,latency=2'; endpoints: text, multimodal, compat, files, "
        "batches, uploads, *; also JSON",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for random faults (default: 0)")
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="print the export lines that point every client at this host/port, then exit",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Turn parsed arguments into an :class:`EmulatorConfig`."""
    return EmulatorConfig(
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        rpm=args.rpm,
        tpm=args.tpm,
        quota_model=args.quota_model,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        retry_after=args.retry_after,
        row_limits=dict(args.row_limit),
        api_keys=frozenset(args.api_key) if args.api_key else None,
        seed=args.seed,
        chaos=tuple(args.chaos),
    )


def _port(value: str) -> int:
    """A TCP port, 0..65535 (0: a free one); argparse turns the ValueError into a usage error."""
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def env_for(args: argparse.Namespace, port: int | None = None) -> dict[str, str]:
    """The client environment for the emulator these arguments describe."""
    host = "127.0.0.1" if args.host in ("0.0.0.0", "", "::") else args.host
    key = sorted(args.api_key)[0] if args.api_key else TEST_KEY
    return client_env(f"http://{host}:{args.port if port is None else port}", key)


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Serve the emulator in the foreground until Ctrl-C.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if ``None``.
        prog: Program name for usage messages (``dashscope-embed emulator`` passes its own).

    Returns:
        The process exit code (0 after Ctrl-C).
    """
    args = (build_parser(prog) if prog else build_parser()).parse_args(argv)
    if args.print_env:
        sys.stdout.write(export_lines(env_for(args)))
        return 0
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    server = EmulatorServer(
        Emulator(config_from_args(args)), host=args.host, port=args.port, verbose=args.verbose
    )
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:  # from here on, Ctrl-C at any moment stops the server and exits 0
        print(BANNER.format(url=server.url), flush=True)
        hint = f"{prog or 'dashscope-embed emulator'} --print-env --port {server.port}"
        print(f'point every client at it: eval "$({hint})"', file=sys.stderr, flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
