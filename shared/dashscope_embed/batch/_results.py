"""Writing a Batch job's results: each finished batch's output and error files are streamed,
line by line, into the job's ``.npy``; rows without a vector get NaN and a recorded reason.

Until every batch is written the rows go to ``<output>.partial`` (created all NaN, so a row not
yet downloaded reads NaN, never 0.0); :meth:`ResultWriter.finish` moves it onto the output
path once the job is complete. A file at the output path is therefore always a finished job.

Writes are idempotent (a row always lands at its own offset), so a download interrupted by a
lost connection or a killed process is simply done again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dashscope_embed._errors import APIConnectionError, APIStatusError, DashScopeError
from dashscope_embed._models import get_model
from dashscope_embed.io._sinks import NpyWriter, commit, partial_path

from ._api import BatchInfo, CompatApi
from ._files import (
    BatchFailure,
    ResultLineError,
    add_failures,
    parse_result_line,
    retry_kind,
    subtract_rows,
)
from ._state import JobState, Part

__all__ = ["ResultWriter"]

logger = logging.getLogger("dashscope_embed")


class ResultWriter:
    """The job's output file and the bookkeeping of what is in it.

    Args:
        state: The job's state (updated in place: failures, tokens, ``downloaded``).
        api: Files/Batches calls.
        save: Writes the state file.
    """

    def __init__(self, state: JobState, api: CompatApi, save: Callable[[], None]) -> None:
        self._state = state
        self._api = api
        self._save = save
        self._writer: NpyWriter | None = None

    @property
    def job_id(self) -> str:
        return self._state.job_id

    def download(
        self,
        part: Part,
        info: BatchInfo,
        *,
        attempts: int,
        backoff: Callable[[int], float],
        sleep: Callable[[float], None],
    ) -> None:
        """Write the part's results; a lost connection restarts the file (writes are idempotent)."""
        for attempt in range(attempts):
            try:
                failures, tokens, seen = self._read_results(part, info)
                break
            except APIConnectionError:
                if attempt + 1 == attempts:
                    raise
                sleep(backoff(attempt))
        writer = self.open(None)
        missing = _missing_runs(part, seen)
        for f in missing:
            writer.write(f.start, np.full((f.stop - f.start, writer.dim), np.nan, np.float32))
        why = f"batch {info.status}: no result line for these rows"
        if info.status == "failed" and info.errors:
            code, message, line = info.errors[0]
            why = f"{message} (line {line})" if line is not None else message
            missing = [BatchFailure(f.start, f.stop, code or "batch_failed", why) for f in missing]
        else:
            missing = [BatchFailure(f.start, f.stop, "missing_result", why) for f in missing]
        writer.flush()
        st = self._state
        if part.rows is not None:
            st.failures = subtract_rows(st.failures, part.rows)
        st.failures = add_failures(st.failures, [*failures, *missing])
        part.tokens = tokens
        part.downloaded = True
        self._save()
        logger.debug("job %s: part %d written (%d tokens)", st.job_id, part.index, tokens)
        if st.delete_remote:
            self.delete_remote(part)

    def delete_remote(self, part: Part) -> None:
        """Delete the part's input, output and error files from the account (its rows are on
        disk and recorded). A file already gone is fine; any other error is logged and the file
        left in place: cleaning up never fails a job."""
        if part.remote_deleted:
            return
        for file_id in (part.file_id, part.output_file_id, part.error_file_id):
            if not file_id:
                continue
            try:
                self._api.delete_file(file_id)
            except APIStatusError as exc:
                if exc.status != 404:
                    logger.warning("job %s: could not delete %s: %s", self.job_id, file_id, exc)
                    return
            except APIConnectionError as exc:
                logger.warning("job %s: could not delete %s: %s", self.job_id, file_id, exc)
                return
        part.remote_deleted = True
        self._save()

    def _read_results(
        self, part: Part, info: BatchInfo
    ) -> tuple[list[BatchFailure], int, npt.NDArray[np.bool_]]:
        failures: list[BatchFailure] = []
        tokens = 0
        seen = np.zeros(part.row_count, dtype=np.bool_)
        position = {r: i for i, r in enumerate(part.rows)} if part.rows is not None else None
        for file_id in (info.output_file_id, info.error_file_id):
            if not file_id:
                continue
            for raw in self._api.iter_lines(file_id):
                try:
                    res = parse_result_line(raw)
                except ResultLineError as exc:
                    logger.warning("job %s: skipped a line: %s", self._state.job_id, exc)
                    continue
                rows = range(res.start, res.start + res.count)
                if position is not None:
                    where = [position.get(r, -1) for r in rows]
                    inside = min(where) >= 0
                else:
                    where = list(range(res.start - part.start, rows.stop - part.start))
                    inside = part.start <= res.start and rows.stop <= part.stop
                if not inside:
                    logger.warning(
                        "job %s: rows %s are not in part %d", self.job_id, rows, part.index
                    )
                    continue
                if res.vectors is not None:
                    self.open(res.vectors.shape[1]).write(res.start, res.vectors)
                    tokens += res.tokens
                else:
                    writer = self.open(None)
                    writer.write(res.start, np.full((res.count, writer.dim), np.nan, np.float32))
                    kind = retry_kind(res.code, res.count)
                    failures.append(BatchFailure(res.start, rows.stop, res.code, res.message, kind))
                seen[where] = True
        return failures, tokens, seen

    @property
    def partial(self) -> Path:
        """Where rows are written until the job is complete."""
        return partial_path(self._state.output)

    def open(self, dim: int | None) -> NpyWriter:
        """The ``.partial`` output, created (all NaN) on first use, reopened on a resumed job.

        A finished output reopened for more rows (a retry of failed rows) goes back to
        ``.partial`` until the job is complete again. If neither file exists any more, every
        part is downloaded again (downloads are free).
        """
        st = self._state
        if self._writer is None:
            out, partial = Path(st.output), self.partial
            if st.dimension_out is not None and not partial.exists() and out.exists():
                os.replace(out, partial)
            if st.dimension_out is not None and partial.exists():
                self._writer = NpyWriter.reopen(partial)
            else:
                if st.dimension_out is not None:  # output deleted: fetch every result again
                    gone = [p.index for p in st.parts if p.remote_deleted]
                    if gone:
                        raise DashScopeError(
                            f"{out} was deleted, and the results of part(s) {gone[:5]} were "
                            "already deleted from the account after they were written: they "
                            "cannot be downloaded again. Start a new job (keep_remote_files / "
                            "--keep-remote-files keeps them for re-downloads)"
                        )
                    for part in st.parts:
                        part.downloaded = False
                    st.failures = []
                spec = get_model(st.model, kind="text")
                size = dim or st.dimension or spec.default_dimension
                self._writer = NpyWriter(partial, size, rows=st.total_rows or 0)
                st.dimension_out = size
                self._save()
        if dim is not None and dim != self._writer.dim:
            raise DashScopeError(
                f"the server returned {dim}-d vectors; this job's output holds {self._writer.dim}"
            )
        return self._writer

    def finish(self) -> bool:
        """Move the complete ``.partial`` onto the output path (call once every part is
        downloaded). Returns whether the job is finished: ``False`` if the output had been
        deleted and its parts must be downloaded again."""
        st = self._state
        out = Path(st.output)
        written = st.dimension_out is not None  # (else a file at ``out`` is not this job's)
        if written and self._writer is None and out.exists() and not self.partial.exists():
            return st.finished  # already moved in place
        self.open(None)
        if not st.finished:
            return False
        self.close()
        commit(self.partial, out)
        return True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _missing_runs(part: Part, seen: npt.NDArray[np.bool_]) -> list[BatchFailure]:
    """Rows of ``part`` with no result line, as contiguous runs (code/message filled later)."""
    rows = np.asarray(part.row_iter(), dtype=np.int64)[~seen]
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    return [BatchFailure(int(run[0]), int(run[-1]) + 1, "", "") for run in np.split(rows, breaks)]
