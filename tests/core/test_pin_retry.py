"""Pins of the retry rules (``_engine/_retry.py``): which answers are retried, and how long to wait.

The jitter source is a stub returning fixed values, so every delay is asserted exactly.
"""

from __future__ import annotations

import random

import pytest

from dashscope_embed._engine._retry import NON_RETRYABLE_429_CODES, RetryPolicy
from dashscope_embed._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from dashscope_embed._status import ErrorBody, make_status_error


class FixedRng(random.Random):
    """A jitter source that always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_defaults() -> None:
    """Five retries, 0.5 s first step (1 s for throttling), 20 s cap, a fresh Random each."""
    p = RetryPolicy()
    assert (p.max_retries, p.base_delay, p.max_delay, p.throttle_base_delay) == (5, 0.5, 20.0, 1.0)
    assert type(p.rng) is random.Random
    assert p.rng is not RetryPolicy().rng


def test_non_retryable_429_codes_are_the_billing_ones() -> None:
    """Only the billing codes are never retried on 429 (LimitRequests and Throttling* are)."""
    assert (
        frozenset({"PrepaidBillOverdue", "PostpaidBillOverdue", "CommodityNotPurchased"})
        == NON_RETRYABLE_429_CODES
    )


@pytest.mark.parametrize(
    ("status", "code", "message", "retried"),
    [
        (429, "Throttling", "Requests throttling triggered.", True),
        (429, "Throttling.RateQuota", "Requests rate limit exceeded", True),
        (429, "Throttling.BurstRate", "Request rate increased too quickly.", True),
        (429, "Throttling.AllocationQuota", "Allocated quota exceeded, please increase it.", True),
        (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", False),
        (429, "", "Free allocated quota exceeded.", False),
        (429, "LimitRequests", "x", True),
        (429, "PrepaidBillOverdue", "x", False),
        (429, "PostpaidBillOverdue", "x", False),
        (429, "CommodityNotPurchased", "x", False),
        (200, "Throttling", "x", True),  # a throttling code in an HTTP 200 body
        (408, "RequestTimeOut", "x", True),
        (500, "InternalError", "x", True),
        (502, "", "bad gateway", True),
        (503, "ModelUnavailable", "x", True),
        (504, "GatewayTimeout", "x", True),
        (400, "InvalidParameter", "x", False),
        (400, "DataInspectionFailed", "x", False),
        (400, "InvalidParameter", "batch size is invalid, it should not be larger than 10.", False),
        (401, "InvalidApiKey", "x", False),
        (403, "AccessDenied", "x", False),
        (404, "ModelNotFound", "x", False),
        (409, "", "x", False),
        (413, "BadRequest.TooLarge", "x", False),
        (499, "", "x", False),
    ],
)
def test_which_answers_are_retried(status: int, code: str, message: str, retried: bool) -> None:
    """408, 5xx and throttling are retried; billing, free tier and other 4xx are not."""
    error = make_status_error(status, ErrorBody(code, message, "r"))
    assert RetryPolicy().should_retry_status(error) is retried


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (APIStatusError("m", status=408), True),
        (APIStatusError("m", status=407), False),
        (APIStatusError("m", status=409), False),
        (APIStatusError("m", status=499), False),
        (APIStatusError("m", status=500), True),
        (BadRequestError("m", status=500), True),  # the status decides, not the class
        (ServerError("m", status=400), False),
        (AuthenticationError("m", status=401), False),
        (PermissionDeniedError("m", status=403), False),
        (NotFoundError("m", status=404), False),
        (RateLimitError("m", status=400, code="Throttling"), True),  # the class decides for 429s
        (RateLimitError("Free allocated quota exceeded.", status=429), False),
        (RateLimitError("free allocated quota exceeded", status=429), True),  # the exact text
    ],
)
def test_retry_decision_by_status_and_class(error: APIStatusError, retried: bool) -> None:
    """Rate-limit errors are judged by code and message, every other error by its status."""
    assert RetryPolicy().should_retry_status(error) is retried


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(0, 0.25, 0.5), (1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (4, 2.0, 4.0), (10, 2.0, 4.0)],
)
def test_backoff_step_doubles_and_is_capped_with_half_to_full_jitter(
    attempt: int, low: float, high: float
) -> None:
    """The wait is base·2**attempt capped at max_delay, times a jitter in [0.5, 1.0]."""
    at_zero = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=FixedRng(0.0))
    at_one = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=FixedRng(1.0))
    at_half = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=FixedRng(0.5))
    assert at_zero.delay(attempt) == low
    assert at_one.delay(attempt) == high
    assert at_half.delay(attempt) == (low + high) / 2


def test_throttled_backoff_starts_from_the_throttle_base() -> None:
    """A 429 without Retry-After backs off from throttle_base_delay, not base_delay."""
    p = RetryPolicy(base_delay=0.5, throttle_base_delay=3.0, max_delay=20.0, rng=FixedRng(1.0))
    assert [p.delay(a, throttled=True) for a in range(4)] == [3.0, 6.0, 12.0, 20.0]
    assert [p.delay(a, throttled=False) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert p.delay(0) == 0.5


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0.0, 0.0), (0.25, 0.25), (7.0, 7.0), (20.0, 20.0), (20.5, 20.0), (3600.0, 20.0)],
)
def test_server_retry_after_wins_and_is_capped(retry_after: float, expected: float) -> None:
    """A server Retry-After (0 included) is used as is, without jitter, up to max_delay."""
    p = RetryPolicy(max_delay=20.0, rng=FixedRng(0.0))
    assert p.delay(3, retry_after=retry_after) == expected
    assert p.delay(0, retry_after=retry_after, throttled=True) == expected


def test_seeded_jitter_is_reproducible() -> None:
    """Two policies with equally seeded generators wait exactly the same."""
    a = RetryPolicy(rng=random.Random(7))
    b = RetryPolicy(rng=random.Random(7))
    assert [a.delay(i) for i in range(6)] == [b.delay(i) for i in range(6)]
    expected = random.Random(7)
    assert a.delay(0) == 0.5 * (0.5 + 0.5 * [expected.random() for _ in range(7)][-1])
