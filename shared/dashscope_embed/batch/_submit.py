"""Submitting a Batch job's input: JSONL files built on disk, uploaded, one batch each.

Every step is recorded in the state file before the next one starts (upload → ``file_id``
saved → create → ``batch_id`` saved), so a process killed anywhere re-uploads nothing that was
uploaded and creates no batch twice; a batch whose create answer was lost is adopted by its
input file id. Input files are deleted as soon as they are uploaded (or fail to be), and a
resumed job removes those a killed process left behind (:func:`~._input.remove_stale_inputs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from dashscope_embed._errors import DashScopeError, InvalidInputError

from ._api import CompatApi
from ._files import ENDPOINT, chunk_rows, verify_input
from ._input import InputFile, check_text, pack_files, verified
from ._report import BatchPartStatus
from ._state import JobState, Part

__all__ = ["EventHook", "Submitter"]

logger = logging.getLogger("dashscope_embed")

EventHook = Callable[[str, BatchPartStatus], None]


class Submitter:
    """The submission half of :class:`~._job.BatchJob` (it provides the attributes below)."""

    _state: JobState
    _path: Path
    _api: CompatApi
    _on_event: EventHook | None

    def _save(self) -> None:
        raise NotImplementedError

    def _writable(self) -> None:
        raise NotImplementedError

    def submit(self, texts: Iterable[str]) -> None:
        """Build, upload and create every input file not yet created.

        On a resumed job the input must be the same texts in the same order: the rows of files
        already uploaded are skipped after checking their digest, so nothing is sent twice.

        Raises:
            InvalidInputError: an empty / non-string text (checked up front for a sequence,
                as it is read for an iterator), or different texts than the ones already sent
                (also: more rows than a fully submitted job has).
        """
        self._writable()
        st = self._state
        if isinstance(texts, (str, bytes)):
            raise InvalidInputError(
                "texts must be an iterable of strings, got a single string", rule="not_a_list"
            )
        if isinstance(texts, Sequence):
            for row, text in enumerate(texts):
                check_text(row, text)
        rows = enumerate(texts)
        for part in verified(rows, [p for p in st.parts if p.rows is None]):
            self._ensure_batch(part, adopt=True)
        if st.planned and next(rows, None) is not None:
            raise InvalidInputError(
                f"the input has more rows than the {st.total_rows} this job submitted (rows "
                "added since?): resume with the same input, or start a new job for the rest",
                rule="resume_mismatch",
            )
        if not st.planned:
            checked = ((row, check_text(row, text)) for row, text in rows)
            count = self._build_parts(chunk_rows(checked, st.rows_per_line), retry=False)
            last = max((p.stop for p in st.parts if p.rows is None), default=0)
            st.total_rows = max(last, count)
            st.planned = True
            self._save()

    def retry_failed(self, texts: Iterable[str], *, rows: Iterable[int] | None = None) -> int:
        """Submit the failed rows again, one row per request, as more batches of this job.

        A row that fails again (e.g. a text over the model's token limit) stays in the failures
        with its new reason; the others get their vectors in the same output. Call
        :meth:`wait` afterwards.

        Args:
            texts: The job's input again, all of it: it is checked against the digests of the
                files sent, and the retry files are built on disk before any is uploaded.
            rows: Only these failed rows (default: every failed row not already in a retry).

        Returns:
            How many rows were submitted.

        Raises:
            InvalidInputError: ``texts`` is not the job's input (``rule="resume_mismatch"``);
                nothing is uploaded then.
        """
        self._writable()
        st = self._state
        if not st.planned:
            raise DashScopeError("submit the job's input before retrying its failed rows")
        want = st.retry_rows() if rows is None else st.retry_rows() & set(rows)
        if not want:
            return 0
        picked = ((r, check_text(r, t)) for r, t in verify_input(texts, st.spans()) if r in want)
        files: list[InputFile] = []
        try:
            files.extend(self._pack([pair] for pair in picked))  # the whole input is proven here
            st.retry_of += 1
            for built in files:
                self._finish_part(built, retry=True)
        finally:
            for built in files:
                built.path.unlink(missing_ok=True)
        return len(want)

    def _pack(self, lines: Iterator[list[tuple[int, str]]]) -> Iterator[InputFile]:
        st = self._state
        return pack_files(
            lines,
            folder=self._path.parent,
            job_id=st.job_id,
            first_index=len(st.parts),
            model=st.model,
            dimension=st.dimension,
            max_lines=st.max_lines_per_file,
            max_bytes=st.max_file_bytes,
        )

    def _build_parts(self, lines: Iterator[list[tuple[int, str]]], *, retry: bool) -> int:
        """Pack lines into files within the limits; upload and create each. Returns rows seen."""
        seen = 0
        for built in self._pack(lines):
            self._finish_part(built, retry=retry)
            seen = built.stop
        return seen

    def _finish_part(self, built: InputFile, *, retry: bool) -> None:
        st = self._state
        try:
            name = f"{st.job_id}-part{built.index:05d}.jsonl"
            uploaded = self._api.upload(built.path, name)
        finally:
            built.path.unlink(missing_ok=True)
        part = Part(
            index=built.index,
            start=built.start,
            stop=built.stop,
            rows=built.rows if retry else None,
            lines=built.lines,
            sha256=built.digest.hexdigest(),
            file_id=str(uploaded["id"]),
            status="uploaded",
        )
        st.parts.append(part)
        self._save()
        logger.debug("job %s: uploaded part %d as %s", st.job_id, part.index, part.file_id)
        self._emit("uploaded", part)
        self._ensure_batch(part, adopt=False)

    def _ensure_batch(self, part: Part, *, adopt: bool) -> None:
        """Create the part's batch unless it has one. With ``adopt`` (a part loaded from the state
        file) first look for a batch created just before a crash, by its input file id."""
        if part.batch_id is not None or part.file_id is None:
            return
        st = self._state
        meta = {
            "ds_name": f"dashscope-embed {st.job_id} part {part.index}",
            "ds_description": f"{part.row_count} rows of {st.model} from {part.start}",
        }
        info = self._api.create_batch(
            part.file_id, endpoint=ENDPOINT, window=st.completion_window, metadata=meta, adopt=adopt
        )
        part.batch_id = info.id
        part.update(info)
        self._save()
        self._emit("created", part)

    def _emit(self, event: str, part: Part) -> None:
        if self._on_event is not None:
            self._on_event(event, BatchPartStatus.of(part))
