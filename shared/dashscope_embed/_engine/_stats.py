"""Per-client counters: what a user (or a DEBUG log) needs to see how a client is doing."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ClientStats", "StatsRecorder"]


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of one client's counters since it was created (or last reset).

    Attributes:
        requests: HTTP attempts sent (retries included).
        succeeded: Attempts answered with vectors.
        retries: Retries by reason (a DashScope code such as ``Throttling.RateQuota``, an HTTP
            status, ``timeout`` or ``connection error``).
        throttled: Attempts answered 429.
        resplits: Batches re-split (server row limit, or locating an over-long input).
        tokens: Tokens billed (sum of ``usage.total_tokens``).
        rows: Inputs embedded.
        concurrency_limit: Current adaptive window per model.
        rate_per_second: Current pacing rate per model (``None`` until the first 429).
    """

    requests: int = 0
    succeeded: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    resplits: int = 0
    tokens: int = 0
    rows: int = 0
    concurrency_limit: dict[str, int] = field(default_factory=dict)
    rate_per_second: dict[str, float | None] = field(default_factory=dict)


class StatsRecorder:
    """Thread-safe counters behind :class:`ClientStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._succeeded = 0
            self._throttled = 0
            self._resplits = 0
            self._tokens = 0
            self._rows = 0
            self._retries: Counter[str] = Counter()

    def record(
        self,
        kind: str,
        *,
        reason: str = "",
        status: int | None = None,
        tokens: int = 0,
        rows: int = 0,
    ) -> None:
        with self._lock:
            self._requests += 1
            if status == 429:
                self._throttled += 1
            if kind == "done":
                self._succeeded += 1
                self._tokens += tokens
                self._rows += rows
            elif kind == "retry":
                self._retries[reason or "unknown"] += 1
            elif kind == "split":
                self._resplits += 1

    def snapshot(self, limits: dict[str, int], rates: dict[str, float | None]) -> ClientStats:
        with self._lock:
            return ClientStats(
                requests=self._requests,
                succeeded=self._succeeded,
                retries=dict(self._retries),
                throttled=self._throttled,
                resplits=self._resplits,
                tokens=self._tokens,
                rows=self._rows,
                concurrency_limit=limits,
                rate_per_second=rates,
            )
