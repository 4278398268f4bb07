"""Exporting a finished Batch job: its ``.npy`` → the requested ``.npy``/``.jsonl``/``.parquet``,
``<output>.errors.jsonl`` (one line per failed row) and the row ids.

What to export is recorded in the job's state file (:attr:`~._state.JobState.target`,
``target_ids``), so ``dashscope-embed batch download`` writes exactly the files a foreground
``embed --batch`` run writes, from the state file alone. Memory stays bounded: the job's
``.npy`` is read in chunks (no memory map) and the failures are walked range by range.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from dashscope_embed.io._sinks import (
    commit,
    ids_path,
    iter_npy_chunks,
    npy_shape,
    open_sink,
    partial_path,
)

from ._files import BatchFailure
from ._report import BatchReport
from ._state import JobState

__all__ = ["errors_path", "export_batch", "export_job", "read_ids", "write_errors", "write_ids"]


def errors_path(output: str | os.PathLike[str]) -> Path:
    """Where the failed rows of ``output`` are listed: ``<output>.errors.jsonl``."""
    p = Path(output)
    return p.with_name(p.name + ".errors.jsonl")


def write_ids(path: str | os.PathLike[str], ids: Iterable[str | None]) -> int:
    """Write row ids, one JSON string per line (``.partial`` first, then moved). Returns how
    many."""
    target = Path(path)
    n = 0
    with open(partial_path(target), "w", encoding="utf-8") as fh:
        for row_id in ids:
            fh.write(json.dumps(row_id, ensure_ascii=False) + "\n")
            n += 1
    commit(partial_path(target), target)
    return n


def read_ids(path: str | os.PathLike[str]) -> Iterator[str | None]:
    """The ids :func:`write_ids` wrote, streamed."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            value = json.loads(line)
            yield None if value is None else str(value)


def export_job(
    state: JobState,
    report: BatchReport,
    *,
    lines: Mapping[int, int] | None = None,
    chunk: int = 4096,
) -> Path | None:
    """Export a finished job to its recorded target (or just its ids beside its ``.npy``).

    Returns:
        ``<target>.errors.jsonl`` when some row has no vector, else ``None``.
    """
    target = Path(state.target) if state.target else Path(state.output)
    ids = read_ids(state.target_ids) if state.target_ids else None
    export_batch(report, target, ids, chunk=chunk, write_errors_file=False)
    return write_errors(target, report.failures, lines=lines)


def export_batch(
    report: BatchReport,
    output: Path,
    ids: Iterable[str | None] | None,
    *,
    chunk: int = 4096,
    write_errors_file: bool = True,
) -> Path | None:
    """Write a finished batch job's vectors to ``output`` and its failures to
    ``<output>.errors.jsonl`` (returned, or ``None`` when every row has a vector).

    The job's ``.npy`` is read in chunks (no memory map); ``.jsonl``/``.parquet`` rows of failed
    inputs carry ``error`` instead of a vector, ``.npy`` rows hold NaN. Every file is written as
    ``.partial`` and moved in place when complete; an empty job still gets its (empty) file.
    """
    id_iter = iter(ids) if ids is not None else None
    if output.suffix.lower() == ".npy" and output.resolve() == report.output.resolve():
        if id_iter is not None:
            write_ids(ids_path(output), id_iter)
    else:
        _, dim = npy_shape(report.output)
        sink = open_sink(output, dim=dim, rows=report.total_rows, with_ids=id_iter is not None)
        try:
            failures = iter(report.failures)
            failure = next(failures, None)
            for start, block in iter_npy_chunks(report.output, chunk):
                rows = range(start, start + block.shape[0])
                chunk_ids = [str(next(id_iter)) for _ in rows] if id_iter is not None else None
                chunk_errors: list[str | None] = [None] * len(rows)
                while failure is not None and failure.start < rows.stop:
                    for row in range(max(failure.start, start), min(failure.stop, rows.stop)):
                        chunk_errors[row - start] = f"{failure.code}: {failure.message}"
                    if failure.stop > rows.stop:
                        break  # it goes on in the next chunk
                    failure = next(failures, None)
                sink.write(chunk_ids, block, None, chunk_errors if any(chunk_errors) else None)
        except BaseException:
            sink.abort()
            raise
        sink.close()
    return write_errors(output, report.failures) if write_errors_file else None


def write_errors(
    output: str | os.PathLike[str],
    failures: Iterable[BatchFailure],
    *,
    lines: Mapping[int, int] | None = None,
) -> Path | None:
    """Write ``<output>.errors.jsonl``: ``{"row", "line"?, "code", "message"}`` per failed row
    (``line``: the input file's line, when ``lines`` maps rows to them). With no failures an
    old list is removed and ``None`` returned."""
    path = errors_path(output)
    wrote = False
    with open(partial_path(path), "w", encoding="utf-8") as fh:
        for f in failures:
            for row in f.rows():
                doc: dict[str, object] = {"row": row}
                if lines is not None and row in lines:
                    doc["line"] = lines[row]
                doc.update(code=f.code, message=f.message)
                fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
                wrote = True
    if not wrote:
        partial_path(path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)  # an earlier run's list, before a retry fixed it
        return None
    commit(partial_path(path), path)
    return path
