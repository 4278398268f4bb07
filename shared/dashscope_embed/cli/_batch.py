"""``dashscope-embed batch status|cancel|list|download``: look after Batch API jobs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from dashscope_embed._client import DashScopeClient
from dashscope_embed.batch._api import list_batches
from dashscope_embed.batch._job import BatchJob, BatchStatus
from dashscope_embed.batch._state import TERMINAL
from dashscope_embed.io._sinks import partial_path

from ._common import (
    EXIT_FAILED_ROWS,
    EXIT_OK,
    EXIT_PENDING,
    add_client_args,
    make_client,
    say,
)
from ._io import CliError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``batch`` sub-commands."""
    p = argparse.ArgumentParser(
        prog="dashscope-embed batch",
        description="Inspect, cancel, list and collect Batch API jobs started with "
        "`dashscope-embed embed --batch`.",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = sub.add_parser("status", help="refresh and show a job's batches")
    status.add_argument("state", type=Path, help="the job's state file")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cancel = sub.add_parser("cancel", help="cancel a job's unfinished batches")
    cancel.add_argument("state", type=Path, help="the job's state file")
    listing = sub.add_parser("list", help="the account's recent batches (last 30 days)")
    listing.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    listing.add_argument("--status", default=None, help="comma-separated statuses to keep")
    download = sub.add_parser(
        "download",
        help="write the results of finished batches (exit 4 while the job is still running)",
    )
    download.add_argument("state", type=Path, help="the job's state file")
    download.add_argument("--wait", action="store_true", help="poll until every batch has ended")
    download.add_argument("--poll-interval", type=float, default=5.0, help="first poll delay (5 s)")
    for sp in (status, cancel, listing, download):
        add_client_args(sp)
    return p


def _job(args: argparse.Namespace) -> tuple[BatchJob, DashScopeClient]:
    state: Path = args.state
    if not state.exists():
        raise CliError(f"no job state file at {state}")
    client = make_client(args)
    try:
        return BatchJob.resume(client, state), client
    except ValueError as exc:
        client.close()
        raise CliError(str(exc)) from None


def _print_status(status: BatchStatus, *, as_json: bool) -> None:
    if as_json:
        doc = {
            "job_id": status.job_id,
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
        f"{status.failed_rows} failed, {'finished' if status.finished else 'running'}"
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
    job, client = _job(args)
    with client:
        if args.action == "status":
            _print_status(job.status(), as_json=args.json)
            return EXIT_OK
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
        if args.wait:
            report = job.wait(poll_interval=args.poll_interval)
        else:
            job.poll()
            report = job.report()
    if not report.finished:
        say(
            f"job {report.job_id} is still running: {report.succeeded - _pending(job)} of "
            f"{report.total_rows} rows so far in {partial_path(report.output)} (rows not yet "
            f"downloaded are NaN); {report.output} appears when every batch has ended. Run "
            "this again later, or add --wait"
        )
        return EXIT_PENDING
    say(
        f"job {report.job_id} finished: {report.succeeded} rows written to {report.output}, "
        f"{report.failed_count} failed"
    )
    return EXIT_FAILED_ROWS if report.failures else EXIT_OK


def _pending(job: BatchJob) -> int:
    return sum(p.row_count for p in job.state.parts if not p.downloaded and p.rows is None)
