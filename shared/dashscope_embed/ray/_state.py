"""The account-wide side of a shared quota: one controller, permits leased to owners that expire.

Pure state (no Ray): the :class:`~.._shared.SharedQuota` actor holds one :class:`QuotaState`;
workers lease permits from it through :class:`~._quota.LeasedThrottle`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dashscope_embed._engine._throttle import Throttle, ThrottleSnapshot

__all__ = [
    "DEFAULT_LEASE_TIMEOUT",
    "DEFAULT_SHARED_CONCURRENCY",
    "QuotaState",
    "QuotaStats",
    "Report",
]


Report = tuple[str, "float | None"]  # (outcome, retry_after) of one admitted request


DEFAULT_LEASE_TIMEOUT = 10.0  # seconds a silent owner keeps its permits


DEFAULT_SHARED_CONCURRENCY = 256  # requests in flight per model across all workers (a bound)


@dataclass(frozen=True)
class QuotaStats:
    """Counters of a quota actor since it was created.

    Attributes:
        leases: Lease calls answered.
        granted: Permits granted.
        ok: Requests reported as answered with vectors.
        throttled: Requests reported as answered 429.
        failed: Requests reported with another outcome (error, retry, dropped connection).
        unused: Permits given back unused (expired, or dropped after a 429).
        expired: Permits taken back from owners whose lease ran out (a dead worker).
        models: The shared admission state per model (window, in flight, pacing rate).
    """

    leases: int = 0
    granted: int = 0
    ok: int = 0
    throttled: int = 0
    failed: int = 0
    unused: int = 0
    expired: int = 0
    models: dict[str, ThrottleSnapshot] = field(default_factory=dict)


class QuotaState:
    """The body of the quota actor: the core :class:`Throttle` plus counters (no Ray inside).

    Args:
        rpm: Requests per minute per model for the whole account, if known.
        tpm: Tokens per minute per model for the whole account, if known.
        max_concurrency: Requests in flight per model across all workers.
        initial_concurrency: Starting shared window (grows on success).
        lease_timeout: Seconds without contact after which an owner's permits are taken back.
        adaptive: Learn the rate from 429s (default); False keeps only the ``rpm``/``tpm``
            buckets and a fixed window of ``max_concurrency``.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        max_concurrency: int = DEFAULT_SHARED_CONCURRENCY,
        initial_concurrency: int | None = None,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_timeout <= 0:
            raise ValueError(f"lease_timeout must be > 0, got {lease_timeout}")
        self._throttle = Throttle(
            max_concurrency=max_concurrency,
            initial_concurrency=initial_concurrency,
            rpm=rpm,
            tpm=tpm,
            adaptive=adaptive,
            clock=clock,
        )
        names = ("leases", "granted", "ok", "throttled", "failed", "unused", "expired")
        self._counts = dict.fromkeys(names, 0)
        self._clock = clock
        self.lease_timeout = lease_timeout
        self._owners: dict[str, _Owner] = {}

    def _contact(self, owner: str) -> _Owner | None:
        """Take back the permits of owners gone silent, then renew ``owner``'s lease."""
        now = self._clock()
        for name in [n for n, o in self._owners.items() if o.deadline < now]:
            for model, held in self._owners.pop(name).held.items():
                for _ in range(held):
                    self._throttle.release(model, "unused")
                self._counts["expired"] += held
        if not owner:
            return None
        entry = self._owners.setdefault(owner, _Owner(0.0))
        entry.deadline = now + self.lease_timeout
        return entry

    def heartbeat(self, owner: str) -> None:
        """Keep ``owner``'s permits for another ``lease_timeout`` seconds."""
        self._contact(owner)

    def lease_timeout_seconds(self) -> float:
        """The lease timeout (for handles that join an existing actor)."""
        return self.lease_timeout

    def lease(self, model: str, want: int, tokens: int, owner: str = "") -> tuple[int, float]:
        """Admit up to ``want`` requests of about ``tokens`` tokens each, held by ``owner``.

        Returns:
            ``(granted, wait)``: permits granted now, and when none were, seconds before asking
            again.
        """
        entry = self._contact(owner)
        granted, wait = 0, 0.0
        while granted < want:
            wait = self._throttle.acquire(model, tokens)
            if wait > 0:
                break
            granted += 1
        self._counts["leases"] += 1
        self._counts["granted"] += granted
        if entry is not None and granted:
            entry.held[model] = entry.held.get(model, 0) + granted
        return granted, (0.0 if granted else wait)

    def report(self, model: str, outcomes: list[Report], owner: str = "") -> None:
        """Release admitted requests: ``ok``, ``throttled``, ``unused`` or anything else."""
        entry = self._contact(owner)
        freed = len(outcomes)
        if entry is not None:
            held = entry.held.get(model, 0)
            freed = min(freed, held)  # the rest came back already, when the lease expired
            entry.held[model] = held - freed
        for i, (outcome, retry_after) in enumerate(outcomes):
            if i < freed:
                self._throttle.release(model, outcome, retry_after=retry_after)
            key = outcome if outcome in ("ok", "throttled", "unused") else "failed"
            self._counts[key] += 1

    def stats(self) -> QuotaStats:
        """A snapshot of the counters and of the shared admission state."""
        self._contact("")
        c = self._counts
        return QuotaStats(
            leases=c["leases"],
            granted=c["granted"],
            ok=c["ok"],
            throttled=c["throttled"],
            failed=c["failed"],
            unused=c["unused"],
            expired=c["expired"],
            models={m: self._throttle.snapshot(m) for m in self._throttle.models()},
        )


@dataclass
class _Owner:
    """The permits one worker holds, per model, and when its lease runs out."""

    deadline: float
    held: dict[str, int] = field(default_factory=dict)
