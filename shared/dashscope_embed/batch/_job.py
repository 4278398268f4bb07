"""Large jobs through the OpenAI-compatible Batch File API: half the real-time price, resumable.

Flow (``../shared/docs/dashscope-api.md`` §5a): texts → JSONL input files (one line per request
of up to the model's row limit; ≤ 50,000 lines and ≤ 500 MB per file, one model per file) →
``POST /files`` → ``POST /batches`` (endpoint ``/v1/embeddings``) → poll with backoff → stream the
output and error files → every vector written to its input row of an ``.npy`` file.

Every step is recorded in a local state file (:mod:`._state`) before the next one starts, so a
process that dies can be restarted with the same state file and input: it re-uploads nothing
that was uploaded, creates no batch twice, and re-downloads only results not yet written. One
process at a time: an open job holds the lock of its state file (:mod:`._lock`).

Clean-up: input files built on disk are deleted once uploaded (a resumed job deletes those a
killed process left); each part's input, output and error files are deleted from the account
once its rows are written (``keep_remote_files=True`` keeps them; the account holds at most
10,000 files).

One bad row fails only itself: a multi-row line that fails for a reason one row can cause (too
long, moderation…) is followed up one row per line by :meth:`BatchJob.settle`, as are rows
whose line was throttled or hit a server error; only rows that fail alone stay failed.

The Batch path uses the OpenAI-compatible embeddings body, which has no ``text_type``,
``instruct`` or ``output_type``: every row is embedded as a *document*, dense only (the server
defaults). Use the real-time path (:mod:`._stream`) for query vectors or sparse output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from dashscope_embed._client import DashScopeClient
from dashscope_embed._errors import (
    BadRequestError,
    ConfigurationError,
    DashScopeError,
    InvalidInputError,
)
from dashscope_embed._models import DEFAULT_TEXT_MODEL

from ._api import CompatApi
from ._files import MAX_FILE_BYTES, MAX_LINES_PER_FILE
from ._input import remove_stale_inputs
from ._lock import JobBusyError, JobLock
from ._report import BatchPartStatus, BatchReport, BatchStatus
from ._results import ResultWriter
from ._state import JobState, load_state, new_state, save_state
from ._submit import EventHook
from ._wait import Waiter

__all__ = [
    "BatchJob",
    "BatchPartStatus",
    "BatchReport",
    "BatchStatus",
    "EventHook",
    "JobBusyError",
    "embed_batch",
]

logger = logging.getLogger("dashscope_embed")


class BatchJob(Waiter):
    """A resumable embedding job on the Batch File API. Build with :meth:`create` / :meth:`resume`.

    Example::

        with BatchJob.create(client, "job.json", "vectors.npy", dimension=512) as job:
            report = job.run(texts)  # build, upload, create (nothing twice), poll, download
        report.failures              # rows without a vector, with the server's reason

    An open job holds the lock of its state file until :meth:`close` (or the end of a ``with``
    block, or the process): a second job on the same file raises :class:`JobBusyError`.

    Args:
        client: A sync client (its host, key, connection pool and retry policy are used).
        state_path: The JSON state file.
        state: The loaded state.
        lock: The held lock, or ``None`` for a read-only view (see :meth:`resume`).
        on_event: Called with ``("uploaded" | "created" | "status" | "downloaded", part)``.
        sleep: How to wait between polls (defaults to the client's sleep).
    """

    def __init__(
        self,
        client: DashScopeClient,
        state_path: str | Path,
        state: JobState,
        *,
        lock: JobLock | None,
        on_event: EventHook | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._client = client
        self._path = Path(state_path)
        self._state = state
        self._lock = lock
        self._api = CompatApi(client, sleep=sleep)
        self._sleep = sleep or client._sleep
        self._on_event = on_event
        self._results = ResultWriter(state, self._api, self._save)
        if lock is not None:
            for left in remove_stale_inputs(self._path.parent, state.job_id):
                logger.info("job %s: removed %s, left by a killed run", state.job_id, left)

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
        keep_remote_files: bool = False,
        lock_timeout: float | None = 0,
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
            keep_remote_files: Keep each part's files on the account after its rows are written
                (default: delete them; needed only to download the results again).
            lock_timeout: Seconds to wait for another process holding the job (0: fail at once).

        Raises:
            InvalidInputError: a bad option (checked before the state file is written).
            FileExistsError: the state file exists (resume it instead).
            JobBusyError: another process is creating or running a job on this state file.
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
        state.delete_remote = not keep_remote_files
        lock = JobLock(path, timeout=lock_timeout)
        if path.exists():  # created by another process between the check and the lock
            lock.release()
            raise FileExistsError(f"{path} exists: resume that job or choose another state file")
        save_state(path, state)
        return cls(client, path, state, lock=lock, on_event=on_event, sleep=sleep)

    @classmethod
    def resume(
        cls,
        client: DashScopeClient,
        state_path: str | Path,
        *,
        lock_timeout: float | None = 0,
        readonly: bool = False,
        on_event: EventHook | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> BatchJob:
        """Continue a job from its state file (any process, any time within the server's 30 days).

        Args:
            lock_timeout: Seconds to wait for another process running the job (0: fail at once,
                ``None``: wait for ever). The state is read once the lock is held.
            readonly: Do not lock: only :meth:`status` (not saved), :meth:`report` and the
                properties work, e.g. to look at a job another process is running.

        Raises:
            FileNotFoundError: no state file.
            ConfigurationError: the client points at another host than the job's.
            JobBusyError: another process holds the job (nothing was sent or written).
        """
        state = load_state(state_path)  # host first: a wrong client fails before any wait
        if state.base_url != client.config.base_url:
            raise ConfigurationError(
                f"this job was created on {state.base_url}; the client points at "
                f"{client.config.base_url} (batch and file ids exist only on the original host)"
            )
        lock = None if readonly else JobLock(state_path, timeout=lock_timeout)
        if lock is not None:
            try:
                state = load_state(state_path)  # again: the last holder may have changed it
            except BaseException:
                lock.release()
                raise
        return cls(client, state_path, state, lock=lock, on_event=on_event, sleep=sleep)

    def close(self) -> None:
        """Close the output and let go of the job's lock (idempotent)."""
        self._results.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> BatchJob:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def readonly(self) -> bool:
        """Opened without the lock (see :meth:`resume`)."""
        return self._lock is None

    def _writable(self) -> None:
        if self._lock is None:
            raise DashScopeError("this job was opened read-only (resume it without readonly)")
        if not self._lock.held:
            raise DashScopeError("this job is closed: resume it again")

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
            st.phase,
        )

    def cancel(self) -> BatchStatus:
        """Cancel every batch that has not ended. Lines already processed stay billed and their
        results are still downloaded by :meth:`wait`; the rest are reported as failed."""
        self._writable()
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
        if self._lock is not None:  # a read-only view never writes the state file
            save_state(self._path, self._state)


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
    keep_remote_files: bool = False,
    lock_timeout: float | None = 0,
    on_progress: Callable[[BatchStatus], None] | None = None,
) -> BatchReport:
    """Embed ``texts`` into ``output`` (``.npy``) with the Batch API; resume if the state exists.

    Rows come back as document vectors, dense (the compatible endpoint's defaults). Failed rows
    are NaN in the array and listed in :attr:`BatchReport.failures`; when ``texts`` is a
    sequence, rows that failed only because a neighbour in their line did are sent again alone
    (:meth:`BatchJob.settle`). Each part's files are deleted from the account once written
    unless ``keep_remote_files``.

    Raises:
        InvalidInputError: a bad text/option, or a state file of another job (model, dimension
            or output differ).
        JobBusyError: another process is running this job.
    """
    path = Path(state_path)
    if path.exists():
        job = BatchJob.resume(client, path, lock_timeout=lock_timeout)
        st = job.state
        if (st.model, st.dimension, st.output) != (model, dimension, str(Path(output).resolve())):
            job.close()
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
            keep_remote_files=keep_remote_files,
            lock_timeout=lock_timeout,
        )
    with job:
        return job.run(
            texts,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            on_progress=on_progress,
        )
