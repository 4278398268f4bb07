"""Finishing a Batch job the same way wherever it is collected from.

A foreground ``embed --batch`` run, ``--resume``, ``batch download [--wait]`` and
``batch retry-failed`` all end here: wait (or poll once), follow up the rows of failed
multi-row lines one per line (:meth:`~._wait.Waiter.settle`, when the input can be read
again), then export the recorded target, its ``errors.jsonl`` and ids (:mod:`._export`). So
every way of collecting a job writes the same files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._export import export_job
from ._job import BatchJob
from ._report import BatchReport, BatchStatus

__all__ = ["Collected", "collect", "record_target"]


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` found and wrote.

    Attributes:
        report: The job's report (``finished`` or not).
        target: The file the results go to.
        errors: ``<target>.errors.jsonl`` when some rows have no vector (only once finished).
        followed_up: Rows sent again one per line during this call.
    """

    report: BatchReport
    target: Path
    errors: Path | None
    followed_up: int


def record_target(
    job: BatchJob,
    target: str | Path,
    *,
    ids: str | Path | None = None,
    source: dict[str, Any] | None = None,
) -> None:
    """Record in the state file where the job's results are exported, its ids sidecar and how
    to read its input again (so the state file alone is enough to collect it later)."""
    st = job.state
    path = Path(target).resolve()
    st.target = str(path)
    st.target_format = path.suffix.lower()
    st.target_ids = str(Path(ids).resolve()) if ids is not None else None
    st.source = source
    job._save()


def collect(
    job: BatchJob,
    *,
    texts: Callable[[], Iterable[str]] | None,
    wait: bool,
    poll_interval: float = 5.0,
    on_progress: Callable[[BatchStatus], None] | None = None,
) -> Collected:
    """Wait for (or poll) ``job``, follow up its failed rows, and export it once finished.

    Args:
        texts: Reads the job's input again (for the follow-up), or ``None`` if it cannot be.
        wait: Poll until the job (and its follow-ups) have finished; else poll once and, if a
            follow-up is needed, submit it and return unfinished.
    """
    st = job.state
    target = Path(st.target) if st.target else Path(st.output)
    followed = 0
    if wait:
        report = job.wait(poll_interval=poll_interval, on_progress=on_progress)
        if texts is not None:
            before = len(st.parts)
            report = job.settle(texts, poll_interval=poll_interval, on_progress=on_progress)
            followed = sum(p.row_count for p in st.parts[before:])
    else:
        job.poll()
        report = job.report()
        if report.finished and texts is not None and job.needs_follow_up:
            followed = job.follow_up(texts)
            job.poll()
            report = job.report()
    errors = export_job(st, report) if report.finished else None
    return Collected(report, target, errors, followed)
