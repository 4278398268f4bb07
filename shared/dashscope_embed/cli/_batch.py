"""``dashscope-embed embed --batch`` and ``batch status|cancel|list|download|retry-failed``.

Every action on a job needs only its state file: it records the host (``--base-url`` is not
needed again), the output path and format, the ids and the input file. ``download`` writes
exactly the files a foreground ``embed --batch`` run writes. One process per job: a second one
exits 5 having sent nothing (``--lock-timeout`` waits instead); ``status`` of a job another
process is running is shown read-only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from dashscope_embed._client import DashScopeClient
from dashscope_embed._models import DEFAULT_TEXT_MODEL
from dashscope_embed.batch._api import list_batches
from dashscope_embed.batch._collect import Collected, collect, record_target
from dashscope_embed.batch._export import write_errors, write_ids
from dashscope_embed.batch._job import BatchJob, BatchStatus, JobBusyError
from dashscope_embed.batch._state import TERMINAL, check_window, load_state
from dashscope_embed.io._sinks import partial_path

from ._common import (
    EXIT_FAILED_ROWS,
    EXIT_OK,
    EXIT_PENDING,
    add_client_args,
    add_lock_arg,
    make_bar,
    make_client,
    say,
)
from ._io import CliError, InputSpec, iter_records, line_numbers, scan

__all__ = ["build_parser", "main", "run_batch"]

_PHASES = {
    "submitting": "interrupted while submitting: run the same `embed ... --batch --resume`",
    "running": "running",
    "downloading": "every batch has ended; results not all written: run `batch download`",
    "finished": "finished",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``batch`` sub-commands."""
    p = argparse.ArgumentParser(
        prog="dashscope-embed batch",
        description="Inspect, cancel, list, collect and retry Batch API jobs started with "
        "`dashscope-embed embed --batch`. The state file is all a job needs (host, output, ids "
        "and input are recorded in it). Collecting a job deletes its files from the account "
        "once the rows are on disk, unless it was started with --keep-remote-files. Exit "
        "codes: 0 done, 3 some rows failed, 4 still running, 5 another process runs the job.",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = sub.add_parser("status", help="refresh and show a job's batches")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cancel = sub.add_parser("cancel", help="cancel a job's unfinished batches")
    listing = sub.add_parser("list", help="the account's recent batches (last 30 days)")
    listing.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    listing.add_argument("--status", default=None, help="comma-separated statuses to keep")
    download = sub.add_parser(
        "download",
        help="write the results of finished batches and export the output, OUTPUT.errors.jsonl "
        "and ids like the foreground run (exit 4 while the job is still running)",
    )
    retry = sub.add_parser(
        "retry-failed",
        help="submit the job's failed rows again, one per request, then collect (reads the "
        "input file recorded in the state file)",
    )
    for sp in (download, retry):
        sp.add_argument("--wait", action="store_true", help="poll until every batch has ended")
        sp.add_argument("--poll-interval", type=float, default=5.0, help="first poll delay (5 s)")
    for sp in (status, cancel, download, retry):
        sp.add_argument("state", type=Path, help="the job's state file (OUTPUT.batch.json)")
        add_lock_arg(sp)
    for sp in (status, cancel, download, retry):
        add_client_args(sp, recorded=True)
    add_client_args(listing)
    return p


def _open(args: argparse.Namespace, *, readonly: bool = False) -> tuple[BatchJob, DashScopeClient]:
    """The job of ``args.state`` on its recorded host (unless --base-url/--region say else)."""
    state: Path = args.state
    if not state.exists():
        raise CliError(f"no job state file at {state}")
    try:
        recorded = load_state(state)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    client = make_client(args, base_url=recorded.base_url)
    try:
        job = BatchJob.resume(client, state, lock_timeout=args.lock_timeout or 0, readonly=readonly)
    except BaseException:
        client.close()
        raise
    return job, client


def _texts(job: BatchJob) -> Callable[[], Iterable[str]] | None:
    """Reads the job's recorded input again, or ``None`` (not recorded, or the file is gone)."""
    spec = _spec(job)
    if spec is None:
        return None
    return lambda: (t for _, t in iter_records(spec))


def _spec(job: BatchJob) -> InputSpec | None:
    src = job.state.source
    if not src or not Path(src["path"]).is_file():
        return None
    return InputSpec(Path(src["path"]), src["field"], src["id_field"], bool(src["skip_empty"]))


def _print_status(status: BatchStatus, *, as_json: bool) -> None:
    if as_json:
        doc = {
            "job_id": status.job_id,
            "phase": status.phase,
            "total_rows": status.total_rows,
            "done_rows": status.done_rows,
            "failed_rows": status.failed_rows,
            "finished": status.finished,
            "parts": [p.__dict__ for p in status.parts],
        }
        print(json.dumps(doc, indent=1))
        return
    print(
        f"job {status.job_id}: {status.total_rows} rows, {status.done_rows} written, "
        f"{status.failed_rows} failed, {_PHASES.get(status.phase, status.phase)}"
    )
    print(f"{'part':>4}  {'rows':>7}  {'status':<11}  {'lines done/failed/total':<24}  batch")
    for p in status.parts:
        counts = f"{p.completed_lines}/{p.failed_lines}/{p.lines}"
        tag = " (retry)" if p.retry else ""
        written = " written" if p.downloaded else ""
        print(
            f"{p.index:>4}  {p.rows:>7}  {p.status:<11}  {counts:<24}  {p.batch_id}{tag}{written}"
        )


def main(argv: Sequence[str]) -> int:
    """Run a ``batch`` action; errors propagate to :func:`dashscope_embed.cli.main`."""
    args = build_parser().parse_args(list(argv))
    if args.action == "list":
        if not 1 <= args.limit <= 100:
            raise CliError("--limit must be between 1 and 100")
        with make_client(args) as client:
            batches = list_batches(client, limit=args.limit, status=args.status)
        for b in batches:
            when = dt.datetime.fromtimestamp(b.created_at).isoformat(sep=" ", timespec="seconds")
            name = b.metadata.get("ds_name", "")
            print(f"{b.id}  {b.status:<11}  {b.completed}/{b.failed}/{b.total}  {when}  {name}")
        if not batches:
            say("no batches")
        return EXIT_OK
    if args.action == "status":
        try:
            job, client = _open(args)
        except JobBusyError:
            job, client = _open(args, readonly=True)
            say("(another process is running this job: showing it read-only)")
        with client, job:
            _print_status(job.status(), as_json=args.json)
        return EXIT_OK
    job, client = _open(args)
    with client, job:
        if args.action == "cancel":
            open_parts = [p for p in job.status().parts if p.status not in TERMINAL]
            status = job.cancel()
            if open_parts:
                say(f"cancel requested for job {status.job_id}; finished lines keep their results")
            else:
                say(f"nothing to cancel: every batch of job {status.job_id} has ended")
            _print_status(status, as_json=False)
            return EXIT_OK
        if not job.state.planned:
            raise CliError(
                "this job was interrupted while submitting its input: run the same "
                "`dashscope-embed embed ... --batch --resume` command to finish it"
            )
        texts = _texts(job)
        if args.action == "retry-failed":
            if texts is None:
                raise CliError(
                    "the state file records no readable input file: re-run the original "
                    "`embed ... --batch --resume` command, or BatchJob.retry_failed(texts)"
                )
            sent = job.retry_failed(texts())
            say(f"re-submitted {sent} failed row(s) of job {job.job_id}, one per request")
        elif texts is None and job.needs_follow_up:
            say("the input file is not readable: failed multi-row lines are not narrowed down")
        done = collect(job, texts=texts, wait=args.wait, poll_interval=args.poll_interval)
        return _finish(job, done, args.state)


def _finish(job: BatchJob, done: Collected, state: Path) -> int:
    """The closing message and exit code, the same for every way of collecting a job."""
    report = done.report
    if done.followed_up:
        say(f"sent {done.followed_up} row(s) of failed lines again, one per request")
    if not report.finished:
        pending = sum(p.row_count for p in job.state.parts if not p.downloaded and p.rows is None)
        say(
            f"job {report.job_id} is still running: {report.succeeded - pending} of "
            f"{report.total_rows} rows so far in {partial_path(report.output)} (rows not yet "
            f"downloaded are NaN); {done.target} appears when every batch has ended. Run "
            f"`dashscope-embed batch download {state}` again later, or add --wait"
        )
        return EXIT_PENDING
    say(
        f"job {report.job_id} finished: {report.succeeded} rows written to {done.target}, "
        f"{report.failed_count} failed, of {report.total_rows} ({report.total_tokens} tokens at "
        "the Batch price)"
    )
    if done.errors is not None:
        spec = _spec(job)
        failed = {r for f in report.failures for r in f.rows()}
        if spec is not None and len(failed) <= 100_000:  # their file lines, in one more pass
            write_errors(done.target, report.failures, lines=line_numbers(spec, failed))
        say(
            f"{report.failed_count} row(s) failed; see {done.errors} (code and message per row). "
            f"Re-submit only them with `dashscope-embed batch retry-failed {state}`"
        )
        return EXIT_FAILED_ROWS
    return EXIT_OK


def run_batch(args: argparse.Namespace, spec: InputSpec) -> int:
    """``embed --batch``: create or resume a job, submit, wait, follow up, export."""
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
            job = BatchJob.resume(client, state, lock_timeout=args.lock_timeout or 0)
            st = job.state
            for flag, given, kept in (
                ("--model", args.model, st.model),
                ("--dimension", args.dimension, st.dimension),
            ):
                if given is not None and given != kept:
                    job.close()
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
                keep_remote_files=args.keep_remote_files,
                lock_timeout=args.lock_timeout or 0,
            )
            say(f"started batch job {job.job_id}; state in {state}")
        with job:
            return _submit_and_collect(args, spec, job, found.id_field, state)


def _submit_and_collect(
    args: argparse.Namespace, spec: InputSpec, job: BatchJob, id_field: str | None, state: Path
) -> int:
    ids_file = None
    if id_field:
        ids_file = args.output.with_name(args.output.name + ".batch.ids.jsonl")
    source = {
        "path": str(spec.path.resolve()),
        "field": spec.field,
        "id_field": spec.id_field,
        "skip_empty": spec.skip_empty,
    }
    record_target(job, args.output, ids=ids_file, source=source)
    job.submit(text for _, text in iter_records(spec))
    if ids_file is not None:  # after submit: the input is proven to be the job's
        write_ids(ids_file, (i for i, _ in iter_records(spec, line_ids=id_field == "line")))
    if args.no_wait:
        say(
            f"submitted {job.state.total_rows} texts in {len(job.state.parts)} batch(es). Collect "
            f"the results later with `dashscope-embed batch download {state} [--wait]` (or the "
            "same command plus --resume)"
        )
        return EXIT_OK
    bar = make_bar(args.progress, job.state.total_rows)

    def progress(status: BatchStatus) -> None:
        if bar is not None:
            bar.n = status.processed_rows
            bar.refresh()

    try:
        done = collect(
            job,
            texts=lambda: (t for _, t in iter_records(spec)),
            wait=True,
            poll_interval=args.poll_interval,
            on_progress=progress,
        )
    except KeyboardInterrupt:
        say(
            f"interrupted: the batches keep running on the server. Continue with --resume, or "
            f"`dashscope-embed batch status {state}` / `batch download {state}`"
        )
        raise
    finally:
        if bar is not None:
            bar.close()
    return _finish(job, done, state)
