"""What both client shells share: configuration, throttle, stats and job creation (no I/O).

:class:`BaseClient` resolves the configuration once, owns the throttle and the stats, and turns a
call's arguments into a validated job (:func:`~dashscope_embed.text.text_job`,
:func:`~dashscope_embed.multimodal._job.multimodal_job`). The shells in :mod:`._client` add only
sending and waiting.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

import httpx

from dashscope_embed._engine._job import Job, JobContext, Outcome

from ._config import ClientConfig, resolve_config
from ._engine._retry import RetryPolicy
from ._engine._stats import ClientStats, StatsRecorder
from ._engine._throttle import ExternalLimiter, Throttle
from ._types import EmbeddingResult

__all__ = ["BaseClient", "logger", "pool_limits"]

logger = logging.getLogger("dashscope_embed")


#: Requests (sync: worker threads) per connection pool of ours; see the clients' pools.
SHARD = 24


def pool_limits(max_concurrency: int) -> httpx.Limits:
    """A connection pool that never makes a request the throttle admitted wait for a socket."""
    return httpx.Limits(max_connections=max(10, max_concurrency))


class BaseClient:
    """Configuration, validation and job creation shared by both shells (no I/O)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        region: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        throttle: Throttle | None = None,
        rate_limiter: ExternalLimiter | None = None,
    ) -> None:
        self._config: ClientConfig = resolve_config(
            api_key=api_key,
            region=region,
            base_url=base_url,
            workspace=workspace,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
        )
        self._policy = RetryPolicy(max_retries=self._config.max_retries)
        self._limits_lock = threading.Lock()
        self._headers = self._config.headers()
        self._throttle = throttle or Throttle(
            max_concurrency=self._config.max_concurrency, rpm=rpm, tpm=tpm
        )
        self._rate_limiter = rate_limiter
        self._stats = StatsRecorder()
        self._ssl: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()

    def _pool_options(self) -> dict[str, Any]:
        """httpx keywords for a pool of ours; all pools share one TLS context (making one is
        ~50 ms: a pool per worker group must not pay it again)."""
        with self._ssl_lock:  # (not _limits_lock: a pool is made while the sync shell holds it)
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
        return {
            "timeout": self._config.timeout,
            "limits": pool_limits(self._config.max_concurrency),
            "verify": self._ssl,
        }

    @property
    def stats(self) -> ClientStats:
        """Counters since creation: requests, retries by reason, 429s, tokens, adaptive state."""
        snaps = {m: self._throttle.snapshot(m) for m in self._throttle.models()}
        return self._stats.snapshot(
            {m: s.concurrency_limit for m, s in snaps.items()},
            {m: s.rate_per_second for m, s in snaps.items()},
        )

    @property
    def throttle(self) -> Throttle:
        """The admission control of this client (pass it to another client to share it)."""
        return self._throttle

    def _finish(self, job: Job, outcome: Outcome | None, *, latency: float | None = None) -> None:
        """Give the request's slot back to the throttle (always) and count how it ended.

        ``latency`` (seconds from the send to the answer) lets the throttle size its window
        from rate × latency."""
        if outcome is None:  # abandoned mid-request: free the slot, nothing to learn or count
            self._throttle.release(job.model, "other")
            return
        kind = {"done": "ok"}.get(outcome.kind, "other")
        if outcome.status == 429:
            kind = "throttled"
        self._throttle.release(job.model, kind, retry_after=outcome.retry_after, latency=latency)
        self._stats.record(
            outcome.kind,
            reason=outcome.reason,
            status=outcome.status,
            tokens=outcome.tokens,
            rows=outcome.rows,
        )

    def _log_done(self, job: Job, result: EmbeddingResult) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            st = self.stats
            logger.debug(
                "embedded %d rows with %s: %d requests, %d tokens; client totals: %d requests, "
                "retries %s, %d throttled, window %s",
                len(result),
                job.model,
                result.usage.requests,
                result.usage.total_tokens,
                st.requests,
                st.retries,
                st.throttled,
                st.concurrency_limit,
            )

    def __repr__(self) -> str:
        c = self._config
        return (
            f"{type(self).__name__}(base_url={c.base_url!r}, region={c.region!r}, "
            f"workspace={c.workspace!r}, max_concurrency={c.max_concurrency})"
        )

    @property
    def config(self) -> ClientConfig:
        """The resolved configuration (its repr hides the key)."""
        return self._config

    @property
    def learned_limits(self) -> dict[str, int]:
        """Row limits learned from the server's "batch size is invalid" answers, per model."""
        return self._throttle.learned_limits()

    def _job_context(self) -> JobContext:
        """What every job builder needs from the client (text and multimodal alike)."""
        return JobContext(
            region=self._config.region,  # None when an explicit base_url was given
            policy=self._policy,
            learned=self._throttle.learned_limits(),
            on_limit=self._throttle.learn_limit,
        )

    def _workers(self, model: str | None = None) -> int:
        """Batches run side by side: twice the throttle's current limit for ``model`` (a batch
        sleeping before its retry holds a worker but no slot, and a few waiting at admission
        tell the throttle there is demand), never more than twice its hard cap. Read on every
        scheduling step, so re-split and bisected batches fill the window too, and a cap sized
        for the largest quota never starts hundreds of idle threads. ``None``: the bound."""
        cap = self._throttle.max_concurrency
        if cap == 1:
            return 1
        if model is None:
            return 2 * cap
        return min(2 * cap, 2 * max(2, self._throttle.snapshot(model).concurrency_limit))
