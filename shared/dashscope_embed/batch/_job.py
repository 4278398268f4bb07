"""Large jobs through the OpenAI-compatible Batch File API: half the real-time price, resumable.

Flow (``../shared/docs/dashscope-api.md`` §5a): texts → JSONL input files (one line per request
of up to the model's row limit; ≤ 50,000 lines and ≤ 500 MB per file, one model per file) →
``POST /files`` → ``POST /batches`` (endpoint ``/v1/embeddings``) → poll with backoff → stream the
output and error files → every vector written to its input row of an ``.npy`` file.

Every step is recorded in a local state file (:mod:`._batch_state`) before the next one starts,
so a process that dies can be restarted with the same state file and input: it re-uploads nothing
that was uploaded, creates no batch twice, and re-downloads only results not yet written.

The Batch path uses the OpenAI-compatible embeddings body, which has no ``text_type``,
``instruct`` or ``output_type``: every row is embedded as a *document*, dense only (the server
defaults). Use the real-time path (:mod:`._stream`) for query vectors or sparse output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from dashscope_embed._client import DashScopeClient
from dashscope_embed._errors import (
    BadRequestError,
    ConfigurationError,
    DashScopeError,
    InvalidInputError,
)
from dashscope_embed._models import DEFAULT_TEXT_MODEL

from ._api import CompatApi
from ._files import ENDPOINT, MAX_FILE_BYTES, MAX_LINES_PER_FILE, chunk_rows, verify_input
from ._input import InputFile, check_text, pack_files, verified
from ._report import BatchPartStatus, BatchReport, BatchStatus
from ._results import ResultWriter
from ._state import JobState, Part, load_state, new_state, save_state

__all__ = ["BatchJob", "BatchPartStatus", "BatchReport", "BatchStatus", "EventHook", "embed_batch"]

logger = logging.getLogger("dashscope_embed")


EventHook = Callable[[str, BatchPartStatus], None]


class BatchJob:
    """A resumable embedding job on the Batch File API. Build with :meth:`create` / :meth:`resume`.

    Example::

        job = BatchJob.create(client, "job.json", "vectors.npy", dimension=512)
        job.submit(texts)           # build, upload, create (nothing twice, even after a crash)
        report = job.wait()         # poll with backoff, download, write rows
        report.failures             # rows without a vector, with the server's reason

    Args:
        client: A sync client (its host, key, connection pool and retry policy are used).
        state_path: The JSON state file.
        state: The loaded state.
        on_event: Called with ``("uploaded" | "created" | "status" | "downloaded", part)``.
        sleep: How to wait between polls (defaults to the client's sleep).
    """

    def __init__(
        self,
        client: DashScopeClient,
        state_path: str | Path,
        state: JobState,
        *,
        on_event: EventHook | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._client = client
        self._path = Path(state_path)
        self._state = state
        self._api = CompatApi(client, sleep=sleep)
        self._sleep = sleep or client._sleep
        self._on_event = on_event
        self._results = ResultWriter(state, self._api, self._save)

    @classmethod
    def create(
        cls,
        client: DashScopeClient,
        state_path: str | Path,
        output: str | Path,
        *,
        model: str = DEFAULT_TEXT_MODEL,
        dimension: int | None = None,
        rows_per_line: int | None = None,
        max_lines_per_file: int = MAX_LINES_PER_FILE,
        max_file_bytes: int = MAX_FILE_BYTES,
        completion_window: str = "24h",
        on_event: EventHook | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> BatchJob:
        """Start a new job (writes the state file; refuses to overwrite one).

        Args:
            model: One model per job (the Batch API allows one model per file).
            dimension: Sent as ``dimensions`` on every line; default: the model's.
            rows_per_line: Texts per request; default: the model's row limit (10 for v4).
            max_lines_per_file: Requests per input file (≤ 50,000; lower it to split more).
            max_file_bytes: Bytes per input file (≤ 500 MB).
            completion_window: ``"24h"`` … ``"336h"`` (or ``"1d"`` … ``"14d"``).

        Raises:
            InvalidInputError: a bad option (checked before the state file is written).
            FileExistsError: the state file exists (resume it instead).
        """
        path = Path(state_path)
        if path.exists():
            raise FileExistsError(f"{path} exists: resume that job or choose another state file")
        if client.config.region not in (None, "cn-beijing"):
            logger.warning(
                "Batch embeddings are documented for cn-beijing only; region %s may reject them",
                client.config.region,
            )
        state = new_state(
            model=model,
            dimension=dimension,
            rows_per_line=rows_per_line,
            max_lines_per_file=max_lines_per_file,
            max_file_bytes=max_file_bytes,
            completion_window=completion_window,
            output=str(Path(output).resolve()),
            base_url=client.config.base_url,
        )
        save_state(path, state)
        return cls(client, path, state, on_event=on_event, sleep=sleep)

    @classmethod
    def resume(
        cls,
        client: DashScopeClient,
        state_path: str | Path,
        *,
        on_event: EventHook | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> BatchJob:
        """Continue a job from its state file (any process, any time within the server's 30 days).

        Raises:
            FileNotFoundError: no state file.
            ConfigurationError: the client points at another host than the job's.
        """
        state = load_state(state_path)
        if state.base_url != client.config.base_url:
            raise ConfigurationError(
                f"this job was created on {state.base_url}; the client points at "
                f"{client.config.base_url} (batch and file ids exist only on the original host)"
            )
        return cls(client, state_path, state, on_event=on_event, sleep=sleep)

    @property
    def job_id(self) -> str:
        return self._state.job_id

    @property
    def state_path(self) -> Path:
        return self._path

    @property
    def output(self) -> Path:
        return Path(self._state.output)

    @property
    def state(self) -> JobState:
        """The live state (read it; do not modify it)."""
        return self._state

    # -- submission ------------------------------------------------------------------------

    def submit(self, texts: Iterable[str]) -> None:
        """Build, upload and create every input file not yet created.

        On a resumed job the input must be the same texts in the same order: the rows of files
        already uploaded are skipped after checking their digest, so nothing is sent twice.

        Raises:
            InvalidInputError: an empty / non-string text (checked up front for a sequence,
                as it is read for an iterator), or different texts than the ones already sent
                (also: more rows than a fully submitted job has).
        """
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

    def retry_failed(self, texts: Iterable[str]) -> int:
        """Submit the failed rows again, one row per request, as more batches of this job.

        A row that fails again (e.g. a text over the model's token limit) stays in the failures
        with its new reason; the others get their vectors in the same output. Call
        :meth:`wait` afterwards.

        Args:
            texts: The job's input again, all of it: it is checked against the digests of the
                files sent, and the retry files are built on disk before any is uploaded.

        Returns:
            How many rows were submitted.

        Raises:
            InvalidInputError: ``texts`` is not the job's input (``rule="resume_mismatch"``);
                nothing is uploaded then.
        """
        st = self._state
        if not st.planned:
            raise DashScopeError("submit the job's input before retrying its failed rows")
        want = st.retry_rows()
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

    # -- polling and results --------------------------------------------------------------------

    def poll(self) -> BatchStatus:
        """Refresh every open batch once; download the results of those that have ended. Once
        every batch is written the ``.partial`` output is moved onto the output path."""
        for part in self._state.parts:
            if part.downloaded:
                continue
            self._ensure_batch(part, adopt=True)
            if part.batch_id is None:
                continue
            info = self._api.get_batch(part.batch_id)
            changed = info.status != part.status
            part.update(info)
            if changed:
                self._save()
                self._emit("status", part)
            if part.terminal and self._state.planned:
                self._results.download(
                    part,
                    info,
                    attempts=self._client.config.max_retries + 1,
                    backoff=self._client._policy.delay,
                    sleep=self._sleep,
                )
                self._emit("downloaded", part)
        if self._state.planned and all(p.downloaded for p in self._state.parts):
            self._results.finish()  # (an empty job gets its (0, dim) file here)
        return self.status(refresh=False)

    def wait(
        self,
        *,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float | None = None,
        on_progress: Callable[[BatchStatus], None] | None = None,
    ) -> BatchReport:
        """Poll with backoff (interval × 1.5 per quiet round, capped) until every batch is done.

        Raises:
            DashScopeError: the job was interrupted while submitting (call :meth:`submit` again).
            TimeoutError: ``timeout`` seconds passed; the job keeps running — resume later.
        """
        if not self._state.planned:
            raise DashScopeError(
                "the job's input is not fully submitted: call submit(texts) (CLI: --resume with "
                "the same input) first"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_interval
        try:
            while True:
                before = self.status(refresh=False)
                status = self.poll()
                if on_progress is not None:
                    on_progress(status)
                if status.finished:
                    break
                if all(p.terminal for p in self._state.parts):
                    continue  # the output had been deleted: download everything again now
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {self.job_id} is still running; resume it later")
                quiet = status.processed_rows == before.processed_rows
                interval = min(interval * 1.5, max_poll_interval) if quiet else poll_interval
                self._sleep(interval)
        finally:
            self._results.close()
        return self.report()

    def run(
        self,
        texts: Iterable[str],
        *,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float | None = None,
        on_progress: Callable[[BatchStatus], None] | None = None,
    ) -> BatchReport:
        """:meth:`submit` then :meth:`wait`."""
        self.submit(texts)
        return self.wait(
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            timeout=timeout,
            on_progress=on_progress,
        )

    def status(self, *, refresh: bool = True) -> BatchStatus:
        """The job's progress (``refresh=True`` asks the server for every open batch first)."""
        st = self._state
        if refresh:
            for part in st.parts:
                if part.batch_id is not None and not part.terminal:
                    part.update(self._api.get_batch(part.batch_id))
            self._save()
        return BatchStatus(
            st.job_id,
            st.total_rows,
            st.done_rows,
            st.failed_rows,
            tuple(BatchPartStatus.of(p) for p in st.parts),
            st.finished,
        )

    def cancel(self) -> BatchStatus:
        """Cancel every batch that has not ended. Lines already processed stay billed and their
        results are still downloaded by :meth:`wait`; the rest are reported as failed."""
        for part in self._state.parts:
            if part.batch_id is not None and not part.terminal:
                try:
                    info = self._api.cancel_batch(part.batch_id)
                except BadRequestError:  # it ended meanwhile: nothing left to cancel
                    info = self._api.get_batch(part.batch_id)
                part.update(info)
        self._save()
        return self.status(refresh=False)

    def report(self) -> BatchReport:
        """What is known now (see :attr:`BatchReport.finished`)."""
        st = self._state
        return BatchReport(
            st.job_id,
            Path(st.output),
            st.total_rows or 0,
            tuple(st.failures),
            sum(p.tokens for p in st.parts),
            st.finished,
        )

    def _save(self) -> None:
        save_state(self._path, self._state)

    def _emit(self, event: str, part: Part) -> None:
        if self._on_event is not None:
            self._on_event(event, BatchPartStatus.of(part))


def embed_batch(
    client: DashScopeClient,
    texts: Iterable[str],
    output: str | Path,
    *,
    state_path: str | Path,
    model: str = DEFAULT_TEXT_MODEL,
    dimension: int | None = None,
    max_lines_per_file: int = MAX_LINES_PER_FILE,
    poll_interval: float = 5.0,
    max_poll_interval: float = 60.0,
    on_progress: Callable[[BatchStatus], None] | None = None,
) -> BatchReport:
    """Embed ``texts`` into ``output`` (``.npy``) with the Batch API; resume if the state exists.

    Rows come back as document vectors, dense (the compatible endpoint's defaults). Failed rows
    are NaN in the array and listed in :attr:`BatchReport.failures`.

    Raises:
        InvalidInputError: a bad text/option, or a state file of another job (model, dimension
            or output differ).
    """
    path = Path(state_path)
    if path.exists():
        job = BatchJob.resume(client, path)
        st = job.state
        if (st.model, st.dimension, st.output) != (model, dimension, str(Path(output).resolve())):
            raise InvalidInputError(
                f"{path} belongs to another job (model={st.model}, dimension={st.dimension}, "
                f"output={st.output})",
                rule="resume_mismatch",
            )
    else:
        job = BatchJob.create(
            client,
            path,
            output,
            model=model,
            dimension=dimension,
            max_lines_per_file=max_lines_per_file,
        )
    job.submit(texts)
    return job.wait(
        poll_interval=poll_interval, max_poll_interval=max_poll_interval, on_progress=on_progress
    )
