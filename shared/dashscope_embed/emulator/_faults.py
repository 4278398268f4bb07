"""Quotas and injected faults: the parts of the emulator that say "no" on purpose.

Pure state machines, driven by an injected clock and a seeded RNG, with no locking of their own:
:class:`~dashscope_embed.emulator.Emulator` calls them under its lock.

Quota model (``../shared/docs/dashscope-api.md`` §7): the real service enforces RPM/TPM per model
and also per second (RPS = RPM/60). A token bucket per model and quota reproduces that: it refills
at ``limit/60`` per second and holds at most one second's worth, so a burst above the per-second
rate is throttled even when the minute total would allow it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FaultPlan", "QuotaLimiter", "Rejection", "ScriptedFault", "TokenBucket"]

RATE_QUOTA = ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
ALLOCATION_QUOTA = (
    "Throttling.AllocationQuota",
    "Allocated quota exceeded, please increase your quota limit.",
)
INTERNAL_ERROR = (
    "InternalError",
    "An internal error has occured, please try again later or contact service support.",
)


class Rejection(Exception):
    """A request answered with an error: raised by handlers, turned into a response by the app.

    The app picks the envelope (native ``{"code","message","request_id"}`` or the OpenAI-compatible
    ``{"error": {...}}``) from the request path, so handlers only state what went wrong.

    Attributes:
        status: HTTP status.
        code: DashScope error code, e.g. ``"InvalidParameter"``.
        message: The message, verbatim as the real service writes it.
        retry_after: Seconds for a ``Retry-After`` header, if any.
        error_type: The OpenAI envelope's ``type`` (compatible mode); defaults to ``code``, as
            the recorded validation errors have it, while e.g. ``model_not_supported`` is
            documented with ``invalid_request_error``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.error_type = error_type or code


@dataclass(frozen=True)
class ScriptedFault:
    """One queued answer from :meth:`Emulator.enqueue_fault`."""

    status: int
    code: str
    message: str
    drop: bool = False
    retry_after: float | None = None


class TokenBucket:
    """A token bucket that refuses without consuming.

    Args:
        rate: Refill per second.
        capacity: Largest balance; a single request larger than this is still admitted once the
            balance has grown to its size (see :meth:`try_take`).
        now: The clock reading at creation (the bucket starts full).
    """

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self.stamp = now

    def _refill(self, now: float, cost: float) -> None:
        # A request larger than the capacity may save up for itself; otherwise cap at capacity.
        ceiling = max(self.capacity, cost)
        elapsed = max(0.0, now - self.stamp)
        self.level = min(ceiling, self.level + elapsed * self.rate)
        self.stamp = now

    def can_take(self, cost: float, now: float) -> bool:
        """Refill up to ``now`` and say whether ``cost`` fits (nothing is consumed)."""
        self._refill(now, cost)
        return self.level >= cost - 1e-9

    def take(self, cost: float) -> None:
        """Consume ``cost`` (call only after :meth:`can_take` said yes)."""
        self.level -= cost

    def try_take(self, cost: float, now: float) -> bool:
        """Consume ``cost`` if it fits; a refused request consumes nothing."""
        if not self.can_take(cost, now):
            return False
        self.take(cost)
        return True


class QuotaLimiter:
    """Per-model RPM and TPM buckets.

    Args:
        rpm: Requests per minute per model, or ``None`` for no limit.
        tpm: Tokens per minute per model, or ``None`` for no limit.
        clock: Monotonic seconds; injectable so tests drive time.
    """

    def __init__(self, rpm: int | None, tpm: int | None, clock: Callable[[], float]) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.clock = clock
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}

    def admit(self, model: str, tokens: int) -> tuple[str, str] | None:
        """Charge one request and ``tokens`` to ``model``, or say which quota refused it.

        Both quotas are checked before either is charged, so a refused request costs nothing.

        Returns:
            ``None`` if admitted, else the ``(code, message)`` of the 429 answer.
        """
        now = self.clock()
        requests = tokens_bucket = None
        if self.rpm is not None:
            requests = self._requests.get(model)
            if requests is None:
                rate = self.rpm / 60.0
                requests = self._requests[model] = TokenBucket(rate, max(1.0, rate), now)
            if not requests.can_take(1.0, now):
                return RATE_QUOTA
        if self.tpm is not None:
            tokens_bucket = self._tokens.get(model)
            if tokens_bucket is None:
                rate = self.tpm / 60.0
                tokens_bucket = self._tokens[model] = TokenBucket(rate, rate, now)
            if not tokens_bucket.can_take(float(tokens), now):
                return ALLOCATION_QUOTA
        if requests is not None:
            requests.take(1.0)
        if tokens_bucket is not None:
            tokens_bucket.take(float(tokens))
        return None

    def reset(self) -> None:
        """Forget all buckets (they start full again)."""
        self._requests.clear()
        self._tokens.clear()


class FaultPlan:
    """Scripted faults first, then seeded random drops and 500s.

    Args:
        error_rate: Share of requests answered ``500 InternalError``.
        drop_rate: Share of requests whose connection is dropped without an answer.
        seed: Seed of the RNG, so a run's faults are reproducible.
    """

    def __init__(self, error_rate: float, drop_rate: float, seed: int) -> None:
        self.error_rate = error_rate
        self.drop_rate = drop_rate
        self.rng = random.Random(seed)
        self.queue: deque[ScriptedFault] = deque()

    def enqueue(self, fault: ScriptedFault, count: int) -> None:
        """Answer the next ``count`` requests with ``fault``."""
        self.queue.extend([fault] * count)

    def next_fault(self) -> ScriptedFault | None:
        """The fault for the current request, or ``None`` to serve it normally."""
        return self.pop_scripted() or self.random_fault()

    def pop_scripted(self) -> ScriptedFault | None:
        """The next queued fault, if any (queued faults come before everything else)."""
        return self.queue.popleft() if self.queue else None

    def random_fault(self) -> ScriptedFault | None:
        """A drop or a 500 drawn from the configured rates, or ``None``."""
        # Two independent draws per request keep the sequence stable when one rate is zero.
        drop_draw, error_draw = self.rng.random(), self.rng.random()
        if drop_draw < self.drop_rate:
            return ScriptedFault(0, "", "", drop=True)
        if error_draw < self.error_rate:
            return ScriptedFault(500, *INTERNAL_ERROR)
        return None

    def jitter(self, spread: float) -> float:
        """A uniform random extra delay in ``[0, spread]`` seconds."""
        return self.rng.uniform(0.0, spread) if spread > 0 else 0.0
