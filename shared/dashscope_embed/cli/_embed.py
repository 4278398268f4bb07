"""``dashscope-embed embed``: a file of texts → a file of vectors, real time or Batch API.

Real time: a text the service rejects on its own (too long, moderation) fails only its row —
NaN in ``.npy``, an ``error`` in ``.jsonl``/``.parquet``, listed in ``OUTPUT.errors.jsonl`` —
and the command exits 3; ``--fail-fast`` stops at the first one instead (exit 2). ``--dry-run``
checks every row and prints rows, requests, estimated tokens and price, sending nothing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from dashscope_embed._config import normalize_region
from dashscope_embed._errors import APIStatusError, DashScopeError, InvalidInputError
from dashscope_embed._models import DEFAULT_TEXT_MODEL
from dashscope_embed._types import OutputType
from dashscope_embed.batch import estimate_cost
from dashscope_embed.batch._export import write_errors
from dashscope_embed.batch._files import MAX_LINES_PER_FILE
from dashscope_embed.io._sinks import FORMATS, partial_path
from dashscope_embed.io._stream import DEFAULT_CHUNK_SIZE, embed_to_file

from ._common import (
    EXIT_FAILED_ROWS,
    EXIT_OK,
    add_client_args,
    add_lock_arg,
    make_bar,
    make_client,
    say,
)
from ._io import CliError, InputSpec, iter_records, line_numbers, line_of, scan

__all__ = ["build_parser", "main"]


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The ``embed`` options (separate from :func:`main` for tests and ``--help``)."""
    p = argparse.ArgumentParser(
        prog="dashscope-embed embed",
        description="Embed every text of a .txt (one per line), .jsonl or .csv file into "
        ".npy / .jsonl / .parquet, in real time (default) or with the half-price Batch API. "
        "A row the service rejects on its own fails alone (exit 3, OUTPUT.errors.jsonl). "
        "Batch jobs clean up after themselves: temporary input files are removed (also on "
        "--resume after a kill) and the job's files are deleted from the account once the "
        "results are on disk (--keep-remote-files to keep them).",
    )
    p.add_argument("input", type=Path, help="a .txt, .jsonl or .csv file")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="a .npy, .jsonl or .parquet file"
    )
    src = p.add_argument_group("input")
    src.add_argument("--field", default="text", help="JSONL key or CSV column of the text (text)")
    src.add_argument(
        "--id-field", default=None, help="JSONL key / CSV column of ids (id if present)"
    )
    src.add_argument(
        "--skip-empty", action="store_true", help="skip empty texts instead of failing"
    )
    emb = p.add_argument_group("embedding")
    emb.add_argument("--model", default=None, help=f"model id ({DEFAULT_TEXT_MODEL})")
    emb.add_argument(
        "--dimension", type=_positive, default=None, help="vector size (model default)"
    )
    emb.add_argument(
        "--text-type",
        choices=("document", "query"),
        default=None,
        help="document (default) or query",
    )
    emb.add_argument("--instruct", default=None, help="task instruction (with --text-type query)")
    emb.add_argument(
        "--output-type",
        choices=("dense", "sparse", "dense&sparse"),
        default=None,
        help="dense (default)",
    )
    emb.add_argument("--concurrency", type=_positive, default=None, help="requests in flight (16)")
    emb.add_argument(
        "--chunk-size",
        type=_positive,
        default=DEFAULT_CHUNK_SIZE,
        help="rows held in memory (%(default)s)",
    )
    bar = emb.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (needs tqdm)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    emb.add_argument(
        "--fail-fast",
        action="store_true",
        help="real time: stop at the first text the service rejects (default: fail only its "
        "row, list it in OUTPUT.errors.jsonl, exit 3)",
    )
    emb.add_argument(
        "--dry-run",
        action="store_true",
        help="check every row and print rows, requests, estimated tokens and the estimated "
        "price (real time vs batch) without sending anything",
    )
    bat = p.add_argument_group("batch API (half price, results within the completion window)")
    bat.add_argument(
        "--batch", action="store_true", help="use the Batch API instead of real-time calls"
    )
    bat.add_argument("--resume", action="store_true", help="continue the job of --state")
    bat.add_argument("--state", type=Path, default=None, help="job state file (OUTPUT.batch.json)")
    bat.add_argument(
        "--no-wait", action="store_true", help="submit and exit; collect later with --resume"
    )
    bat.add_argument(
        "--poll-interval", type=float, default=5.0, help="first poll delay in seconds (5)"
    )
    bat.add_argument(
        "--max-lines-per-file",
        type=_positive,
        default=MAX_LINES_PER_FILE,
        help="requests per input file (%(default)s)",
    )
    bat.add_argument("--completion-window", default="24h", help="24h (default) to 336h")
    bat.add_argument(
        "--keep-remote-files",
        action="store_true",
        help="keep the job's input/output files on the account (default: each part's files are "
        "deleted once its rows are on disk; the account holds at most 10,000 files)",
    )
    add_lock_arg(bat)
    add_client_args(p)
    return p


def main(argv: Sequence[str]) -> int:
    """Run ``embed``; errors propagate to :func:`dashscope_embed.cli.main` for exit codes."""
    args = build_parser().parse_args(list(argv))
    suffix = args.output.suffix.lower()
    if suffix not in FORMATS:
        raise CliError(f"unsupported output {args.output.name!r}: use one of {', '.join(FORMATS)}")
    spec = InputSpec(args.input, args.field, args.id_field, args.skip_empty)
    if args.dry_run:
        return _dry_run(args, spec)
    if args.batch:
        from ._batch import run_batch

        return run_batch(args, spec)
    if args.resume or args.state or args.no_wait:
        raise CliError("--resume, --state and --no-wait only apply with --batch")
    output_type: OutputType = args.output_type or "dense"
    if suffix == ".npy" and output_type != "dense":
        raise CliError(".npy holds dense vectors only: write sparse output to .jsonl or .parquet")
    if args.instruct and args.text_type != "query":
        raise CliError("--instruct applies to queries only: add --text-type query")
    found = scan(spec)
    if found.skipped:
        say(f"skipping {found.skipped} empty text(s)")
    client = make_client(args, concurrency=args.concurrency)
    bar = make_bar(args.progress, found.rows)
    try:
        with client:
            ids = None
            if found.id_field:
                line_ids = found.id_field == "line"
                ids = (str(row_id) for row_id, _ in iter_records(spec, line_ids=line_ids))
            summary = embed_to_file(
                client,
                (t for _, t in iter_records(spec)),
                args.output,
                ids=ids,
                n=found.rows,
                chunk_size=args.chunk_size,
                progress=bar.update if bar is not None else False,
                model=args.model or DEFAULT_TEXT_MODEL,
                text_type=args.text_type or "document",
                dimension=args.dimension,
                output_type=output_type,
                instruct=args.instruct,
                on_error="raise" if args.fail_fast else "isolate",
            )
    except DashScopeError as exc:
        _explain(exc, spec, args.output)
        raise
    finally:
        if bar is not None:
            bar.close()
    dim = f"{summary.dimension}-d " if summary.dimension else ""
    failed = {r for f in summary.failures for r in f.rows()}
    errors = write_errors(args.output, summary.failures, lines=line_numbers(spec, failed))
    ok = summary.rows - summary.failed_count
    say(
        f"wrote {ok} {dim}{output_type} vectors to {args.output} "
        f"({summary.usage.total_tokens} tokens, {summary.usage.requests} requests)"
    )
    if errors is not None:
        say(
            f"{summary.failed_count} row(s) were rejected by the service and have no vector; "
            f"see {errors} (row, file line, code and message)"
        )
        return EXIT_FAILED_ROWS
    return EXIT_OK


def _dry_run(args: argparse.Namespace, spec: InputSpec) -> int:
    """``--dry-run``: check every row, print the estimate; no client, no request."""
    found = scan(spec)
    model = args.model or DEFAULT_TEXT_MODEL
    if args.instruct and args.text_type != "query":
        raise CliError("--instruct applies to queries only: add --text-type query")
    region = args.region or os.environ.get("DASHSCOPE_REGION") or None
    estimate = estimate_cost(
        (t for _, t in iter_records(spec)),
        model=model,
        dimension=args.dimension,
        region=normalize_region(region) if region else None,
        max_lines_per_file=args.max_lines_per_file,
    )
    if found.skipped:
        say(f"skipping {found.skipped} empty text(s)")
    for line in estimate.describe():
        print(line)
    return EXIT_OK


def _explain(exc: DashScopeError, spec: InputSpec, output: Path) -> None:
    """Before a real-time error is printed: the file line of the input it names, and where the
    rows written so far are (the output itself is only created by a complete run)."""
    rows = exc.input_indices if isinstance(exc, APIStatusError) else ()
    if isinstance(exc, InvalidInputError) and exc.index is not None:
        rows = (exc.index,)
    if len(rows) == 1:
        line = line_of(spec, rows[0])
        if line is not None:
            say(f"input {rows[0]} is {spec.path}:{line}")
    if partial_path(output).exists():
        say(f"{output} was not written; the rows embedded so far are in {partial_path(output)}")
