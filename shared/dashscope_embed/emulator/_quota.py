"""The emulator's quota models: how a per-model RPM/TPM quota says "no". Pure, no locking.

The real service enforces RPM/TPM per model, per minute and also per second (API reference
§7); how exactly is not documented, so the emulator offers three models, selected with
``EmulatorConfig.quota_model`` / ``--quota-model``:

* ``bucket`` (default): a token bucket refilled at ``limit/60`` per second holding one second's
  worth, full at the start (a burst of one second's budget, then the per-second rate);
* ``window``: a sliding one-second window of *admitted* requests (429s are not counted): at
  most ``limit/60`` in any second, no burst allowance beyond it;
* ``minute``: a plain per-minute window: at most ``limit`` per minute, in windows of 60 s from
  the model's first request, however fast they arrive.

A refused request costs nothing in every model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from dashscope_embed.emulator._faults import ALLOCATION_QUOTA, RATE_QUOTA, TokenBucket

__all__ = ["QUOTA_MODELS", "Meter", "MinuteWindow", "QuotaLimits", "SlidingWindow"]

QUOTA_MODELS = ("bucket", "window", "minute")


class Meter(Protocol):
    """One quota of one model: says whether ``cost`` fits now, and charges it."""

    def can_take(self, cost: float, now: float) -> bool:
        """Whether ``cost`` fits at ``now`` (nothing is charged)."""

    def take(self, cost: float) -> None:
        """Charge ``cost`` (only after :meth:`can_take` said yes, at the same ``now``)."""


class SlidingWindow:
    """At most ``limit`` units admitted in any ``span`` seconds (refusals are not counted).

    A single request larger than ``limit`` is admitted alone, once the window is empty.
    """

    def __init__(self, limit: float, span: float = 1.0) -> None:
        self.limit = limit
        self.span = span
        self.total = 0.0
        self._admitted: deque[tuple[float, float]] = deque()
        self._now = 0.0

    def can_take(self, cost: float, now: float) -> bool:
        self._now = now
        while self._admitted and self._admitted[0][0] <= now - self.span:
            self.total -= self._admitted.popleft()[1]
        if not self._admitted:
            self.total = 0.0
        return self.total + cost <= max(self.limit, cost) + 1e-9

    def take(self, cost: float) -> None:
        self._admitted.append((self._now, cost))
        self.total += cost


class MinuteWindow:
    """At most ``limit`` units per fixed window of ``span`` seconds from the first request."""

    def __init__(self, limit: float, span: float = 60.0) -> None:
        self.limit = limit
        self.span = span
        self.used = 0.0
        self.start: float | None = None

    def can_take(self, cost: float, now: float) -> bool:
        if self.start is None:
            self.start = now
        if now >= self.start + self.span:
            self.start += self.span * ((now - self.start) // self.span)
            self.used = 0.0
        return self.used + cost <= max(self.limit, cost) + 1e-9

    def take(self, cost: float) -> None:
        self.used += cost


def _meter(kind: str, per_minute: float, now: float, *, requests: bool) -> Meter:
    if kind == "window":
        return SlidingWindow(per_minute / 60.0)
    if kind == "minute":
        return MinuteWindow(per_minute)
    rate = per_minute / 60.0
    return TokenBucket(rate, max(1.0, rate) if requests else rate, now)


class QuotaLimits:
    """Per-model RPM and TPM quotas in one of the :data:`QUOTA_MODELS`.

    Args:
        rpm: Requests per minute per model, or ``None`` for no limit.
        tpm: Tokens per minute per model, or ``None`` for no limit.
        clock: Monotonic seconds; injectable so tests drive time.
        model: ``"bucket"``, ``"window"`` or ``"minute"``.
    """

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        clock: Callable[[], float],
        model: str = "bucket",
    ) -> None:
        if model not in QUOTA_MODELS:
            raise ValueError(f"quota model must be one of {QUOTA_MODELS}, got {model!r}")
        self.rpm = rpm
        self.tpm = tpm
        self.clock = clock
        self.model = model
        self._requests: dict[str, Meter] = {}
        self._tokens: dict[str, Meter] = {}

    def admit(self, model: str, tokens: int) -> tuple[str, str] | None:
        """Charge one request and ``tokens`` to ``model``, or say which quota refused it.

        Both quotas are checked before either is charged, so a refused request costs nothing.

        Returns:
            ``None`` if admitted, else the ``(code, message)`` of the 429 answer.
        """
        now = self.clock()
        requests = token_meter = None
        if self.rpm is not None:
            requests = self._requests.get(model)
            if requests is None:
                requests = self._requests[model] = _meter(self.model, self.rpm, now, requests=True)
            if not requests.can_take(1.0, now):
                return RATE_QUOTA
        if self.tpm is not None:
            token_meter = self._tokens.get(model)
            if token_meter is None:
                token_meter = _meter(self.model, self.tpm, now, requests=False)
                self._tokens[model] = token_meter
            if not token_meter.can_take(float(tokens), now):
                return ALLOCATION_QUOTA
        if requests is not None:
            requests.take(1.0)
        if token_meter is not None:
            token_meter.take(float(tokens))
        return None

    def reset(self) -> None:
        """Forget all quotas (they start fresh again)."""
        self._requests.clear()
        self._tokens.clear()
