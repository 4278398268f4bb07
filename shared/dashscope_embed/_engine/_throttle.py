"""Admission control: adaptive concurrency, adaptive pacing after 429s, optional RPM/TPM buckets.

DashScope quotas are per model and per account, enforced per minute *and* per second, with a
burst-growth limit (API reference §7). Firing every batch at once produces 429 storms, so each
request is admitted here first. Pure decisions under a lock; no sleeping (the client shells wait
for as long as :meth:`Throttle.acquire` says).

Per model:

* **Concurrency window** (slow start, then additive increase): starts at
  ``initial_concurrency``, +1 per success until the first throttle, then +1/window per success;
  a 429 cuts it to 70 %. Never above ``max_concurrency``.
* **Pacing rate** (requests per second), off until the first 429. A 429 sets it to 90 % of the
  successes seen in the last second (or cuts it by 10 %) and remembers the rate that was too
  fast. Below 80 % of that level every success raises the rate by 2 % (quick recovery from a
  transient 429); near it, by 0.1 %, so the rate meets the quota again only after ~100
  successes (a few 429s per hundred requests at most, ≥ 90 % of the quota on average); past
  it without a 429, by 1 % (the quota was higher than the last estimate).
* **Retry-After** pauses the model for that long.
* **Explicit limits** ``rpm`` / ``tpm`` (token buckets refilled per second, as the server
  enforces RPS = RPM/60) for users who know their quota.

One :class:`Throttle` is shared by all calls of a client; pass the same instance to several
clients (``throttle=``) to share one budget between them in a process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class ExternalLimiter(Protocol):
    """A framework's own limiter, asked once per HTTP attempt before our admission control.

    The LangChain and LlamaIndex adapters wrap ``BaseRateLimiter`` objects into this shape.
    Only admission is delegated: retries stay in the core's single retry layer.
    """

    def acquire(self, tokens: int) -> None:
        """Block until one request of about ``tokens`` tokens may be sent."""

    async def aacquire(self, tokens: int) -> None:
        """Async twin of :meth:`acquire`."""


__all__ = ["ExternalLimiter", "Throttle", "ThrottleSnapshot"]

_COOLDOWN = 1.0  # seconds during which further 429s do not cut again (one burst, one cut)
_DECREASE_RATE = 0.9
_DECREASE_WINDOW = 0.7
_GROWTH_FAR = 1.02  # below 80 % of the last bad rate
_GROWTH_NEAR = 1.001  # within [80 %, 105 %] of it
_GROWTH_PROBE = 1.01  # above it: the quota was higher than we thought
_MIN_RATE = 0.2
_POLL = 0.05  # longest wait for a free slot before asking again


@dataclass
class _Bucket:
    rate: float  # units per second
    capacity: float
    level: float
    stamp: float

    def wait_for(self, amount: float, now: float) -> float:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, amount: float) -> None:
        # The whole amount, even above one second's capacity: the debt delays what follows, so
        # large requests cannot exceed the per-minute budget on average.
        self.level -= amount


@dataclass
class _ModelState:
    window: float
    ssthresh: float = float("inf")
    in_flight: int = 0
    rate: float | None = None
    bad_rate: float = 0.0
    next_send: float = 0.0
    paused_until: float = 0.0
    last_cut: float = -1e9
    successes: deque[float] = field(default_factory=deque)
    requests: _Bucket | None = None
    tokens: _Bucket | None = None


@dataclass(frozen=True)
class ThrottleSnapshot:
    """The admission state of one model, for stats and logs."""

    concurrency_limit: int
    in_flight: int
    rate_per_second: float | None


class Throttle:
    """Admission control shared by every call of a client (see the module docstring).

    Args:
        max_concurrency: Hard cap on requests in flight per model.
        initial_concurrency: Starting window (grows on success).
        rpm: Optional requests-per-minute budget per model.
        tpm: Optional (estimated) tokens-per-minute budget per model.
        adaptive: Set False to disable the window and pacing (fixed ``max_concurrency``).
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        max_concurrency: int = 16,
        initial_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.max_concurrency = max_concurrency
        start = initial_concurrency if initial_concurrency is not None else min(4, max_concurrency)
        self.initial_concurrency = max(1, min(start, max_concurrency))
        self.rpm = rpm
        self.tpm = tpm
        self.adaptive = adaptive
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _ModelState] = {}
        self._row_limits: dict[str, int] = {}

    def _state(self, model: str, now: float) -> _ModelState:
        st = self._models.get(model)
        if st is None:
            window = float(self.initial_concurrency if self.adaptive else self.max_concurrency)
            st = _ModelState(window=window)
            if self.rpm:
                per_s = self.rpm / 60.0
                st.requests = _Bucket(per_s, max(1.0, per_s), max(1.0, per_s), now)
            if self.tpm:
                per_s = self.tpm / 60.0
                st.tokens = _Bucket(per_s, per_s, per_s, now)
            self._models[model] = st
        return st

    def acquire(self, model: str, tokens: int = 0) -> float:
        """Try to admit one request; 0.0 means admitted, otherwise seconds to wait and retry."""
        with self._lock:
            now = self._clock()
            st = self._state(model, now)
            if st.in_flight >= min(self.max_concurrency, max(1, int(st.window))):
                return _POLL
            waits = [st.paused_until - now, (st.next_send - now) if st.rate else 0.0]
            if st.requests is not None:
                waits.append(st.requests.wait_for(1, now))
            if st.tokens is not None:
                waits.append(st.tokens.wait_for(tokens, now))
            wait = max(waits)
            if wait > 0:
                return wait
            if st.requests is not None:
                st.requests.take(1)
            if st.tokens is not None:
                st.tokens.take(tokens)
            if st.rate:
                st.next_send = max(now, st.next_send) + 1.0 / st.rate
            st.in_flight += 1
            return 0.0

    def release(self, model: str, outcome: str, *, retry_after: float | None = None) -> None:
        """Report how an admitted request ended: ``ok``, ``throttled`` or anything else."""
        with self._lock:
            now = self._clock()
            st = self._state(model, now)
            st.in_flight = max(0, st.in_flight - 1)
            if outcome == "ok":
                self._on_success(st, now)
            elif outcome == "throttled":
                self._on_throttle(st, now, retry_after)

    def _on_success(self, st: _ModelState, now: float) -> None:
        st.successes.append(now)
        while st.successes and st.successes[0] < now - 1.0:
            st.successes.popleft()
        if not self.adaptive:
            return
        if st.window < st.ssthresh:
            st.window = min(float(self.max_concurrency), st.window + 1.0)
        else:
            st.window = min(float(self.max_concurrency), st.window + 1.0 / st.window)
        if st.rate is not None:
            if st.rate < 0.8 * st.bad_rate:
                st.rate *= _GROWTH_FAR
            elif st.rate <= 1.05 * st.bad_rate:
                st.rate *= _GROWTH_NEAR
            else:
                st.rate *= _GROWTH_PROBE

    def _on_throttle(self, st: _ModelState, now: float, retry_after: float | None) -> None:
        if retry_after:
            st.paused_until = max(st.paused_until, now + retry_after)
        if not self.adaptive or now - st.last_cut < _COOLDOWN:
            return
        st.last_cut = now
        st.window = max(1.0, st.window * _DECREASE_WINDOW)
        st.ssthresh = st.window
        recent = sum(1 for t in st.successes if t >= now - 1.0)
        st.bad_rate = st.rate if st.rate is not None else float(max(recent, 1))
        if st.rate is None:
            st.rate = (
                max(_MIN_RATE, recent * _DECREASE_RATE)
                if recent
                else max(_MIN_RATE, st.window * _DECREASE_RATE)
            )
        else:
            st.rate = max(_MIN_RATE, st.rate * _DECREASE_RATE)
        st.next_send = max(st.next_send, now + 1.0 / st.rate)

    def learn_limit(self, model: str, rows: int) -> None:
        """Remember a smaller row limit the server answered for ``model`` (never a larger one).

        Kept here so that everything sharing this throttle (the sync client and every event
        loop's async client of one adapter instance) batches by what was learned once.
        """
        with self._lock:
            current = self._row_limits.get(model)
            if current is None or rows < current:
                self._row_limits[model] = rows

    def learned_limits(self) -> dict[str, int]:
        """Row limits learned from "batch size is invalid" answers, per model."""
        with self._lock:
            return dict(self._row_limits)

    def models(self) -> list[str]:
        """Models this throttle has admitted requests for."""
        with self._lock:
            return list(self._models)

    def snapshot(self, model: str) -> ThrottleSnapshot:
        """Current window, requests in flight and pacing rate for ``model``."""
        with self._lock:
            st = self._state(model, self._clock())
            limit = min(self.max_concurrency, max(1, int(st.window)))
            return ThrottleSnapshot(limit, st.in_flight, st.rate)
