"""The local state file of a Batch job: small JSON, written atomically after every step.

It records what has been paid for or sent, so a restarted process never repeats it: each input
file's rows and digest, its ``file_id`` once uploaded, its ``batch_id`` once created, the last
seen status, and whether its results are already in the output. Rows that failed are kept as
ranges (:class:`~._batch_files.BatchFailure`), so a job of millions of rows stays a few KB.

Writes go to a temporary file in the same directory, are fsynced, then renamed over the old file
(``os.replace`` is atomic on POSIX and Windows): a crash leaves the old state or the new one,
never half of one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashscope_embed._errors import InvalidInputError
from dashscope_embed._models import get_model
from dashscope_embed.text._options import TextOptions, validate_text_options

from ._files import MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_LINES_PER_FILE, BatchFailure

if TYPE_CHECKING:
    from ._api import BatchInfo

__all__ = [
    "STATE_VERSION",
    "TERMINAL",
    "JobState",
    "Part",
    "check_window",
    "load_state",
    "new_state",
    "save_state",
]

STATE_VERSION = 1
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_WINDOW = re.compile(r"(\d+)([hd])")  # §5a.3: whole hours or days, 24h … 336h


def check_window(window: object) -> str:
    """A valid ``completion_window`` (``"24h"`` … ``"336h"``, or ``"1d"`` … ``"14d"``).

    Raises:
        InvalidInputError: anything else (``rule="completion_window"``), before any upload.
    """
    match = _WINDOW.fullmatch(window) if isinstance(window, str) else None
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1) if match else 0
    if not 24 <= hours <= 336:
        raise InvalidInputError(
            f"completion_window {window!r} is not allowed: use whole hours or days from 24h to "
            "336h (1d to 14d)",
            rule="completion_window",
        )
    return str(window)


@dataclass
class Part:
    """One input file and the batch that processes it.

    Attributes:
        index: Position in the job (files are built in input order).
        start: First row (contiguous parts).
        stop: One past the last row (contiguous parts).
        rows: Explicit rows of a retry part (one row per line); ``None`` for contiguous parts.
        lines: Requests (JSONL lines) in the file.
        sha256: Digest of the part's texts (a resumed job must read the same input).
        file_id: Input file id once uploaded.
        batch_id: Batch id once created.
        status: Last status seen from the server.
        output_file_id: Output file id (set when the batch ends).
        error_file_id: Error file id (set when the batch ends).
        downloaded: Results are written to the output and recorded here.
        tokens: ``total_tokens`` summed over the part's successful lines.
        completed_lines: ``request_counts.completed`` last seen.
        failed_lines: ``request_counts.failed`` last seen.
        remote_deleted: Its input, output and error files were deleted from the account (after
            its results were written), so they cannot be downloaded again.
    """

    index: int
    start: int
    stop: int
    rows: list[int] | None = None
    lines: int = 0
    sha256: str = ""
    file_id: str | None = None
    batch_id: str | None = None
    status: str = "new"
    output_file_id: str | None = None
    error_file_id: str | None = None
    downloaded: bool = False
    tokens: int = 0
    completed_lines: int = 0
    failed_lines: int = 0
    remote_deleted: bool = False

    @property
    def row_count(self) -> int:
        return len(self.rows) if self.rows is not None else self.stop - self.start

    def row_iter(self) -> range | list[int]:
        return self.rows if self.rows is not None else range(self.start, self.stop)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def update(self, info: BatchInfo) -> None:
        """Record what the server last said about the part's batch."""
        self.status = info.status
        self.output_file_id = info.output_file_id
        self.error_file_id = info.error_file_id
        self.completed_lines = info.completed
        self.failed_lines = info.failed


@dataclass
class JobState:
    """Everything needed to continue a job in another process.

    Attributes:
        job_id: Local id (also in each batch's ``metadata.ds_name``).
        model: Embedding model (one per job, as one model per file is required).
        dimension: ``dimensions`` sent on every line, or ``None`` for the model default.
        rows_per_line: Texts per request line.
        max_lines_per_file: Lines per input file (≤ 50,000).
        max_file_bytes: Bytes per input file (≤ 500 MB).
        completion_window: ``completion_window`` of each batch (``"24h"`` … ``"336h"``).
        output: The ``.npy`` results go to.
        base_url: Host the job was created on (a job cannot move between hosts).
        total_rows: Input rows, known once every part is built.
        planned: Every part is uploaded and created.
        dimension_out: Dimension of the vectors written (known from the first result).
        parts: Input files in order (retry parts last).
        failures: Rows without a vector after the latest attempt, as ranges.
        retry_of: How many retry rounds were added.
        auto_rounds: How many of those :meth:`~._job.BatchJob.settle` added by itself.
        delete_remote: Delete each part's files from the account once its results are written
            (the account holds at most 10,000 files).
        target: The file the results are finally exported to (the CLI's ``-o``), if not
            ``output`` itself.
        target_format: Its suffix (``.npy``, ``.jsonl`` or ``.parquet``).
        target_ids: A JSONL file of row ids (one JSON string per line) to export with the rows.
        source: How to read the job's input again (``path``, ``field``, ``id_field``,
            ``skip_empty``), for narrowing failures and ``batch retry-failed``.
    """

    job_id: str
    model: str
    dimension: int | None
    rows_per_line: int
    max_lines_per_file: int
    max_file_bytes: int
    completion_window: str
    output: str
    base_url: str
    total_rows: int | None = None
    planned: bool = False
    dimension_out: int | None = None
    parts: list[Part] = field(default_factory=list)
    failures: list[BatchFailure] = field(default_factory=list)
    retry_of: int = 0
    auto_rounds: int = 0
    delete_remote: bool = True
    target: str | None = None
    target_format: str | None = None
    target_ids: str | None = None
    source: dict[str, Any] | None = None
    version: int = STATE_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [f.as_list() for f in self.failures]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported batch state version {data.get('version')!r}")
        parts = [Part(**p) for p in data.pop("parts", [])]
        failures = [BatchFailure.from_list(f) for f in data.pop("failures", [])]
        return cls(**data, parts=parts, failures=failures)

    @property
    def done_rows(self) -> int:
        """Rows whose part has been downloaded (succeeded or failed)."""
        return sum(p.row_count for p in self.parts if p.downloaded and p.rows is None)

    @property
    def failed_rows(self) -> int:
        return sum(f.stop - f.start for f in self.failures)

    @property
    def finished(self) -> bool:
        return self.planned and all(p.downloaded for p in self.parts)

    @property
    def phase(self) -> str:
        """One word for where the job is: ``submitting`` (input not fully sent), ``running``
        (some batch has not ended), ``downloading`` (every batch ended, results not all written
        yet) or ``finished``."""
        if not self.planned:
            return "submitting"
        if self.finished:
            return "finished"
        if all(p.terminal for p in self.parts):
            return "downloading"
        return "running"

    def retry_rows(self, kinds: frozenset[str] | None = None) -> set[int]:
        """Failed rows that are not already in a retry still running (only failures whose
        ``retry`` is in ``kinds``, if given)."""
        pending = {r for p in self.parts if p.rows is not None and not p.downloaded for r in p.rows}
        failed = {r for f in self.failures if kinds is None or f.retry in kinds for r in f.rows()}
        return failed - pending

    def spans(self) -> list[tuple[int, int, str]]:
        """``(start, stop, sha256)`` of the contiguous parts: the proof of the job's input."""
        return [(p.start, p.stop, p.sha256) for p in self.parts if p.rows is None]


def new_state(
    *,
    model: str,
    dimension: int | None,
    rows_per_line: int | None,
    max_lines_per_file: int,
    max_file_bytes: int,
    completion_window: str,
    output: str,
    base_url: str,
) -> JobState:
    """The state of a new job, after checking every option against the model and the limits.

    Raises:
        InvalidInputError: a dimension the model does not offer, a limit out of range, or a
            completion window outside 24h … 336h.
    """
    check_window(completion_window)
    spec = get_model(model, kind="text")
    validate_text_options(TextOptions(model, "document", dimension, "dense"), spec, region=None)
    size = rows_per_line or spec.max_batch_size
    if size < 1 or (spec.known and size > spec.max_batch_size):
        raise InvalidInputError(
            f"rows_per_line must be 1..{spec.max_batch_size} for {model}", rule="rows_per_line"
        )
    if not 1 <= max_lines_per_file <= MAX_LINES_PER_FILE:
        raise InvalidInputError(
            f"max_lines_per_file must be 1..{MAX_LINES_PER_FILE}", rule="max_lines_per_file"
        )
    if not MAX_LINE_BYTES <= max_file_bytes <= MAX_FILE_BYTES:
        raise InvalidInputError(
            f"max_file_bytes must be {MAX_LINE_BYTES}..{MAX_FILE_BYTES}", rule="max_file_bytes"
        )
    return JobState(
        job_id=f"dse-{uuid.uuid4().hex[:12]}",
        model=model,
        dimension=dimension,
        rows_per_line=size,
        max_lines_per_file=max_lines_per_file,
        max_file_bytes=max_file_bytes,
        completion_window=completion_window,
        output=output,
        base_url=base_url,
    )


def load_state(path: str | os.PathLike[str]) -> JobState:
    """Read a state file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a dashscope-embed batch state file (or a newer version).
    """
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not a batch state file: {exc}") from None
    if not isinstance(data, dict) or "job_id" not in data:
        raise ValueError(f"{path} is not a dashscope-embed batch state file")
    try:
        return JobState.from_json(data)
    except TypeError as exc:
        raise ValueError(f"{path} is not a dashscope-embed batch state file: {exc}") from None


def save_state(path: str | os.PathLike[str], state: JobState) -> None:
    """Write the state atomically (temporary file, fsync, rename)."""
    target = Path(path)
    payload = json.dumps(state.to_json(), ensure_ascii=False, indent=1).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(target.parent, os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
