"""``dashscope-embed embed``: a file of texts → a file of vectors, real time or Batch API."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dashscope_embed._errors import APIStatusError, DashScopeError, InvalidInputError
from dashscope_embed._models import DEFAULT_TEXT_MODEL
from dashscope_embed._types import OutputType
from dashscope_embed.batch._files import MAX_LINES_PER_FILE
from dashscope_embed.batch._job import BatchJob, BatchStatus
from dashscope_embed.batch._state import check_window
from dashscope_embed.io._sinks import FORMATS, partial_path
from dashscope_embed.io._stream import DEFAULT_CHUNK_SIZE, embed_to_file

from ._common import (
    EXIT_FAILED_ROWS,
    EXIT_OK,
    add_client_args,
    export_batch,
    make_bar,
    make_client,
    say,
)
from ._io import CliError, InputSpec, iter_records, line_of, scan

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
        ".npy / .jsonl / .parquet, in real time (default) or with the half-price Batch API.",
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
    add_client_args(p)
    return p


def main(argv: Sequence[str]) -> int:
    """Run ``embed``; errors propagate to :func:`dashscope_embed.cli.main` for exit codes."""
    args = build_parser().parse_args(list(argv))
    suffix = args.output.suffix.lower()
    if suffix not in FORMATS:
        raise CliError(f"unsupported output {args.output.name!r}: use one of {', '.join(FORMATS)}")
    spec = InputSpec(args.input, args.field, args.id_field, args.skip_empty)
    if args.batch:
        return _batch(args, spec)
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
            )
    except DashScopeError as exc:
        _explain(exc, spec, args.output)
        raise
    finally:
        if bar is not None:
            bar.close()
    dim = f"{summary.dimension}-d " if summary.dimension else ""
    say(
        f"wrote {summary.rows} {dim}{output_type} vectors to {args.output} "
        f"({summary.usage.total_tokens} tokens, {summary.usage.requests} requests)"
    )
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


def _batch(args: argparse.Namespace, spec: InputSpec) -> int:
    """``embed --batch``: create or resume a job, wait, export."""
    rejected = [
        name
        for name, value, default in (
            ("--text-type", args.text_type, "document"),
            ("--output-type", args.output_type, "dense"),
            ("--instruct", args.instruct, None),
        )
        if value not in (None, default)
    ]
    if rejected:
        raise CliError(
            f"{', '.join(rejected)} cannot be used with --batch: the Batch API embeds through the "
            "OpenAI-compatible endpoint, which has no text_type/instruct/output_type and returns "
            "dense document vectors. Drop the option(s), or embed in real time (without --batch)."
        )
    if not args.resume:
        check_window(args.completion_window)  # before anything is uploaded or saved
    state = args.state or args.output.with_name(args.output.name + ".batch.json")
    vectors = (
        args.output
        if args.output.suffix.lower() == ".npy"
        else args.output.with_name(args.output.name + ".batch.npy")
    )
    if state.exists() and not args.resume:
        raise CliError(
            f"{state} exists (a job already started): pass --resume to continue it, or delete "
            "it to start over (batches already created keep running and billing)"
        )
    if args.resume and not state.exists():
        raise CliError(f"nothing to resume: {state} does not exist (drop --resume to start a job)")
    found = scan(spec)
    client = make_client(args)
    with client:
        if args.resume:
            job = BatchJob.resume(client, state)
            st = job.state
            for flag, given, kept in (
                ("--model", args.model, st.model),
                ("--dimension", args.dimension, st.dimension),
            ):
                if given is not None and given != kept:
                    raise CliError(f"{state} is a job with {flag} {kept}; resume it with the same")
            say(f"resuming batch job {job.job_id} from {state}")
        else:
            job = BatchJob.create(
                client,
                state,
                vectors,
                model=args.model or DEFAULT_TEXT_MODEL,
                dimension=args.dimension,
                max_lines_per_file=args.max_lines_per_file,
                completion_window=args.completion_window,
            )
            say(f"started batch job {job.job_id}; state in {state}")
        job.submit(text for _, text in iter_records(spec))
        parts = len(job.state.parts)
        if args.no_wait:
            say(
                f"submitted {found.rows} texts in {parts} batch(es). Collect the results later "
                f"with the same command plus --resume (or `dashscope-embed batch status {state}`)"
            )
            return EXIT_OK
        bar = make_bar(args.progress, found.rows)

        def progress(status: BatchStatus) -> None:
            if bar is not None:
                bar.n = status.processed_rows
                bar.refresh()

        try:
            report = job.wait(poll_interval=args.poll_interval, on_progress=progress)
        except KeyboardInterrupt:
            say(
                f"interrupted: the batches keep running on the server. Continue with --resume, or "
                f"`dashscope-embed batch status {state}` / `batch cancel {state}`"
            )
            raise
        finally:
            if bar is not None:
                bar.close()
    ids = None
    if found.id_field:
        ids = (row_id for row_id, _ in iter_records(spec, line_ids=found.id_field == "line"))
    errors_path = export_batch(report, args.output, ids)
    say(
        f"batch job {report.job_id}: {report.succeeded} of {report.total_rows} rows embedded to "
        f"{args.output} ({report.total_tokens} tokens at the Batch price)"
    )
    if errors_path is not None:
        say(f"{report.failed_count} row(s) failed; see {errors_path} (code and message per row)")
        return EXIT_FAILED_ROWS
    return EXIT_OK
