"""What a Batch job reports: per-file status, progress, and the final report with its failures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._files import BatchFailure
from ._state import Part

__all__ = ["BatchPartStatus", "BatchReport", "BatchStatus"]


@dataclass(frozen=True)
class BatchPartStatus:
    """One input file of a job and its batch, as last seen."""

    index: int
    rows: int
    lines: int
    file_id: str | None
    batch_id: str | None
    status: str
    completed_lines: int
    failed_lines: int
    downloaded: bool
    retry: bool

    @classmethod
    def of(cls, part: Part) -> BatchPartStatus:
        return cls(
            part.index,
            part.row_count,
            part.lines,
            part.file_id,
            part.batch_id,
            part.status,
            part.completed_lines,
            part.failed_lines,
            part.downloaded,
            part.rows is not None,
        )


@dataclass(frozen=True)
class BatchStatus:
    """Progress of a job: rows written so far and the state of every batch.

    ``phase`` is one word for the whole job: ``submitting``, ``running``, ``downloading``
    (every batch ended; results not all written yet: ``batch download`` writes them) or
    ``finished``.
    """

    job_id: str
    total_rows: int | None
    done_rows: int
    failed_rows: int
    parts: tuple[BatchPartStatus, ...]
    finished: bool
    phase: str = ""

    @property
    def processed_rows(self) -> int:
        """Rows done or reported done by the server (for a progress bar)."""
        total = 0
        for p in self.parts:
            if p.retry:
                continue
            if p.downloaded:
                total += p.rows
            elif p.lines:
                total += min(p.rows, p.rows * (p.completed_lines + p.failed_lines) // p.lines)
        return total


@dataclass(frozen=True)
class BatchReport:
    """The outcome of a job. Rows without a vector are in ``failures`` — never silently missing.

    Attributes:
        job_id: Local job id.
        output: The ``.npy`` file (failed rows hold NaN).
        total_rows: Input rows.
        failures: Failed rows as ranges with the server's code and message.
        total_tokens: Tokens billed (successful lines only; Batch bills half the real-time price).
        finished: Every batch ended and its results are written.
    """

    job_id: str
    output: Path
    total_rows: int
    failures: tuple[BatchFailure, ...]
    total_tokens: int
    finished: bool

    @property
    def failed_count(self) -> int:
        return sum(f.stop - f.start for f in self.failures)

    @property
    def succeeded(self) -> int:
        return self.total_rows - self.failed_count

    @property
    def failed_rows(self) -> list[int]:
        """Every failed input row, ascending."""
        return [row for f in self.failures for row in f.rows()]

    def errors_by_row(self) -> Iterator[tuple[int, str, str]]:
        """``(row, code, message)`` for every failed row."""
        for f in self.failures:
            for row in f.rows():
                yield row, f.code, f.message
