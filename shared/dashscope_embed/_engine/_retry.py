"""The one retry layer: which failures are retried and how long to wait. Pure; no sleeping.

Retried: connection errors, timeouts, HTTP 408, 429 (every ``Throttling*`` code except the
billing/free-tier ones), and 5xx. Never retried: other 4xx. The wait is the server's
``Retry-After`` when it sends one, else exponential backoff with jitter. Only the failed batch
is retried; the caller never re-sends batches that already succeeded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from dashscope_embed._errors import APIStatusError, RateLimitError

__all__ = ["NON_RETRYABLE_429_CODES", "RetryPolicy"]

#: 429 codes that will not clear by waiting (billing, exhausted free tier).
NON_RETRYABLE_429_CODES = frozenset(
    {"PrepaidBillOverdue", "PostpaidBillOverdue", "CommodityNotPurchased"}
)


@dataclass
class RetryPolicy:
    """Backoff schedule and retry rules.

    Attributes:
        max_retries: Retries after the first attempt (so ``max_retries + 1`` attempts at most).
        base_delay: First backoff step in seconds; doubles each attempt.
        max_delay: Cap of one backoff step (and of an honoured ``Retry-After``).
        throttle_base_delay: First step for 429s, longer because quotas refill per second.
        rng: Source of jitter (injectable for deterministic tests).
    """

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    throttle_base_delay: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def should_retry_status(self, error: APIStatusError) -> bool:
        """Whether an HTTP error answer is worth another attempt."""
        if isinstance(error, RateLimitError):
            if error.code in NON_RETRYABLE_429_CODES:
                return False
            return "Free allocated quota exceeded" not in error.message
        return error.status == 408 or error.status >= 500

    def delay(
        self, attempt: int, *, retry_after: float | None = None, throttled: bool = False
    ) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

        A server ``Retry-After`` wins (capped at ``max_delay``); otherwise
        ``base · 2**attempt`` capped at ``max_delay``, scaled by a jitter in [0.5, 1.0] so that
        concurrent batches that failed together do not retry in lock-step.
        """
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        base = self.throttle_base_delay if throttled else self.base_delay
        step = min(self.max_delay, base * (2.0**attempt))
        return step * (0.5 + 0.5 * self.rng.random())
