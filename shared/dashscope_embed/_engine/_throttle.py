"""Admission control: a learned request rate per model, optional RPM/TPM budgets, Retry-After.

DashScope quotas are per model and per account, enforced per minute *and* per second, with a
burst-growth limit (API reference §7). Firing every batch at once produces 429 storms, so each
request is admitted here first. Pure decisions under a lock; no sleeping (the client shells wait
for as long as :meth:`Throttle.acquire` says).

Per model:

* **Pacing at a learned rate** (:mod:`._rate`): slow start, then on a 429 the rate becomes what
  actually succeeded in the last second (never a blind halving); it probes upward while answers
  are clean, and an exhausted per-minute budget is probed one request at a time and then paced
  at what the last minute admitted. Concurrency follows from rate × latency; ``max_concurrency``
  is only a safety bound. Server errors and dropped connections change nothing but their slot.
* **Retry-After** pauses the model for that long.
* **Explicit limits** ``rpm`` / ``tpm`` for users who know their quota: token buckets refilled
  per second (the server enforces RPS = RPM/60) and, when adaptive, even pacing at 98 % of them
  from the first request (no burst a per-second window would refuse).

One :class:`Throttle` is shared by all calls of a client; pass the same instance to several
clients (``throttle=``) to share one budget between them in a process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dashscope_embed._config import DEFAULT_MAX_CONCURRENCY
from dashscope_embed._engine._rate import CREDIT, KNOWN, RateState


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
    rate: RateState
    in_flight: int = 0
    paused_until: float = 0.0
    requests: _Bucket | None = None
    tokens: _Bucket | None = None
    token_next: float = 0.0  # even pacing of a known token budget


@dataclass(frozen=True)
class ThrottleSnapshot:
    """The admission state of one model, for stats and logs."""

    concurrency_limit: int
    in_flight: int
    rate_per_second: float | None


class Throttle:
    """Admission control shared by every call of a client (see the module docstring).

    Args:
        max_concurrency: Hard cap on requests in flight per model (a safety bound).
        initial_concurrency: Starting window of the slow start (grows on success).
        rpm: Optional requests-per-minute budget per model.
        tpm: Optional (estimated) tokens-per-minute budget per model.
        adaptive: Set False to disable pacing and the window (fixed ``max_concurrency``; the
            ``rpm``/``tpm`` buckets and Retry-After still apply).
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
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
            known = self.rpm / 60.0 if self.rpm else None
            st = _ModelState(rate=RateState.for_quota(window, known))
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
            cap = st.rate.limit(self.max_concurrency) if self.adaptive else self.max_concurrency
            if st.in_flight >= cap:
                return _POLL
            waits = [st.paused_until - now]
            if self.adaptive:
                waits.append(st.rate.wait(now))
                if self.tpm:
                    waits.append(st.token_next - now)
            if st.requests is not None:
                waits.append(st.requests.wait_for(1, now))
            if st.tokens is not None:
                waits.append(st.tokens.wait_for(tokens, now))
            wait = max(waits)
            if wait > 1e-9:  # (a float's rounding is not a wait)
                return wait
            if st.requests is not None:
                st.requests.take(1)
            if st.tokens is not None:
                st.tokens.take(tokens)
            if self.adaptive:
                st.rate.admit(now)
                if self.tpm:
                    gap = tokens / (KNOWN * self.tpm / 60.0)
                    st.token_next = max(now - CREDIT, st.token_next) + gap
            st.in_flight += 1
            return 0.0

    def release(
        self,
        model: str,
        outcome: str,
        *,
        retry_after: float | None = None,
        latency: float | None = None,
    ) -> None:
        """Report how an admitted request ended and free its slot.

        Args:
            model: The model it was admitted for.
            outcome: ``"ok"`` (vectors), ``"throttled"`` (a 429), ``"unused"`` (admitted but
                never sent) or anything else (5xx, 4xx, transport error, abandoned: not a
                signal about the quota).
            retry_after: The server's ``Retry-After`` of a 429, in seconds.
            latency: Seconds the request took, if the caller measured it (otherwise the
                oldest open admission is taken as its start).
        """
        with self._lock:
            now = self._clock()
            st = self._state(model, now)
            st.in_flight = max(0, st.in_flight - 1)
            if outcome == "throttled" and retry_after:
                st.paused_until = max(st.paused_until, now + retry_after)
            if not self.adaptive:
                return
            if outcome == "ok":
                st.rate.on_success(now, latency)
            elif outcome == "throttled":
                st.rate.on_throttle(now, latency)
            else:
                st.rate.on_other(now, latency, sample=outcome != "unused")

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
        """Current concurrency limit, requests in flight and pacing rate for ``model``."""
        with self._lock:
            st = self._state(model, self._clock())
            if not self.adaptive:
                return ThrottleSnapshot(self.max_concurrency, st.in_flight, None)
            limit = st.rate.limit(self.max_concurrency)
            return ThrottleSnapshot(limit, st.in_flight, st.rate.shown_rate())
