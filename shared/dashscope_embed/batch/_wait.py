"""Waiting for a Batch job: polling with backoff, downloading, and following up failed rows.

:meth:`Waiter.poll` refreshes every open batch once and writes the results of those that ended;
:meth:`Waiter.wait` repeats it with backoff; :meth:`Waiter.settle` sends the rows of failed
multi-row (or throttled) lines again one per line, so only rows that fail alone stay failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from dashscope_embed._client import DashScopeClient
from dashscope_embed._errors import DashScopeError

from ._report import BatchReport, BatchStatus
from ._results import ResultWriter
from ._submit import Submitter

__all__ = ["AUTO_ROUNDS", "Waiter"]

logger = logging.getLogger("dashscope_embed")

#: Follow-up rounds :meth:`Waiter.settle` may add (each one row per line).
AUTO_ROUNDS = 3
_FOLLOW_UP = frozenset({"split", "transient"})


class Waiter(Submitter):
    """The polling half of :class:`~._job.BatchJob` (it provides the attributes below)."""

    _client: DashScopeClient
    _results: ResultWriter
    _sleep: Callable[[float], None]

    def status(self, *, refresh: bool = True) -> BatchStatus:
        raise NotImplementedError

    def report(self) -> BatchReport:
        raise NotImplementedError

    def poll(self) -> BatchStatus:
        """Refresh every open batch once; download the results of those that have ended. Once
        every batch is written the ``.partial`` output is moved onto the output path."""
        self._writable()
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
                    raise TimeoutError(
                        f"job {self._state.job_id} is still running; resume it later"
                    )
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
        """:meth:`submit`, :meth:`wait`, then (for a sequence of texts, which can be read
        again) :meth:`settle`: rows of failed multi-row lines are narrowed down to the bad ones."""
        self.submit(texts)
        report = self.wait(
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            timeout=timeout,
            on_progress=on_progress,
        )
        if isinstance(texts, Sequence):
            report = self.settle(
                lambda: texts,
                poll_interval=poll_interval,
                max_poll_interval=max_poll_interval,
                timeout=timeout,
                on_progress=on_progress,
            )
        return report

    def settle(
        self,
        texts: Callable[[], Iterable[str]],
        *,
        max_rounds: int = AUTO_ROUNDS,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float | None = None,
        on_progress: Callable[[BatchStatus], None] | None = None,
    ) -> BatchReport:
        """Follow up failed rows until only rows that fail on their own are left.

        A line carries up to ``rows_per_line`` rows and fails as a whole, so one over-long text
        fails its neighbours; a throttled or server-failed line says nothing about its rows.
        Such rows are sent again one per line (as retry parts of this job, billed only for what
        succeeds) and waited for, at most ``max_rounds`` times over the job's life.

        Args:
            texts: Returns the job's input again (all of it, checked against the job's digests).

        Returns:
            The report once nothing is left to follow up (or the rounds are used up).
        """
        report = self.report()
        while report.finished and self.follow_up(texts, max_rounds=max_rounds):
            report = self.wait(
                poll_interval=poll_interval,
                max_poll_interval=max_poll_interval,
                timeout=timeout,
                on_progress=on_progress,
            )
        return report

    def follow_up(
        self, texts: Callable[[], Iterable[str]], *, max_rounds: int = AUTO_ROUNDS
    ) -> int:
        """Submit one follow-up round of :meth:`settle` without waiting for it.

        Returns:
            Rows submitted (0: nothing to follow up, or the rounds are used up).
        """
        st = self._state
        rows = st.retry_rows(_FOLLOW_UP)
        if not rows or st.auto_rounds >= max_rounds:
            return 0
        st.auto_rounds += 1
        sent = self.retry_failed(texts(), rows=rows)
        logger.info("job %s: following up %d failed row(s) one per line", st.job_id, sent)
        return sent

    @property
    def needs_follow_up(self) -> bool:
        """Some failed rows would be narrowed or retried by :meth:`settle`."""
        st = self._state
        return st.auto_rounds < AUTO_ROUNDS and bool(st.retry_rows(_FOLLOW_UP))
