"""The emulator's quota models the throttle is measured against: bucket, window, minute.

Each model is pure (driven by a fake clock); the last tests go through the ``Emulator`` and the
``--quota-model`` flag, so the choice reaches the server.
"""

from __future__ import annotations

import pytest

from dashscope_embed.emulator import Emulator, EmulatorConfig
from dashscope_embed.emulator._cli import build_parser, config_from_args
from dashscope_embed.emulator._faults import ALLOCATION_QUOTA, RATE_QUOTA
from dashscope_embed.emulator._quota import QUOTA_MODELS, MinuteWindow, QuotaLimits, SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _admitted(limits: QuotaLimits, clock: Clock, times: list[float], tokens: int = 1) -> int:
    count = 0
    for t in times:
        clock.now = t
        count += limits.admit("m", tokens) is None
    return count


def test_the_three_models() -> None:
    assert QUOTA_MODELS == ("bucket", "window", "minute")


def test_bucket_allows_one_seconds_burst_then_the_rate() -> None:
    """600 RPM as a bucket: 10 at once, then one per 0.1 s."""
    clock = Clock()
    limits = QuotaLimits(600, None, clock, "bucket")
    assert _admitted(limits, clock, [100.0] * 12) == 10
    assert _admitted(limits, clock, [100.05]) == 0
    assert _admitted(limits, clock, [100.1]) == 1


def test_sliding_window_counts_admitted_requests_of_the_last_second() -> None:
    """600 RPM as a sliding window: at most 10 in any second; refusals do not count."""
    clock = Clock()
    limits = QuotaLimits(600, None, clock, "window")
    assert _admitted(limits, clock, [100.0 + 0.01 * i for i in range(10)]) == 10
    assert _admitted(limits, clock, [100.5] * 20) == 0  # refused: not counted
    assert _admitted(limits, clock, [100.999]) == 0
    assert _admitted(limits, clock, [101.0]) == 1  # the first one is a second old
    assert _admitted(limits, clock, [101.0]) == 0
    assert _admitted(limits, clock, [101.01]) == 1


def test_sliding_window_boundaries() -> None:
    w = SlidingWindow(2.0)
    assert w.can_take(1.0, 0.0)
    w.take(1.0)
    assert w.can_take(1.0, 0.5)
    w.take(1.0)
    assert not w.can_take(1.0, 0.99)
    assert w.can_take(1.0, 1.0)
    big = SlidingWindow(2.0)
    assert big.can_take(5.0, 0.0)  # larger than the limit: admitted alone
    big.take(5.0)
    assert not big.can_take(1.0, 0.5)
    assert big.can_take(1.0, 1.0)


def test_minute_window_resets_every_60_seconds_from_the_first_request() -> None:
    """600 RPM as a plain minute: 600 in a burst, nothing more until 60 s after the first."""
    clock = Clock()
    limits = QuotaLimits(600, None, clock, "minute")
    assert _admitted(limits, clock, [100.0] * 650) == 600
    assert _admitted(limits, clock, [159.99]) == 0
    assert _admitted(limits, clock, [160.0] * 601) == 600
    assert _admitted(limits, clock, [290.0]) == 1  # two windows later, aligned to the first


def test_minute_window_boundaries() -> None:
    w = MinuteWindow(2.0)
    assert w.can_take(1.0, 10.0)
    w.take(1.0)
    w.take(1.0)
    assert not w.can_take(1.0, 69.999)
    assert w.can_take(1.0, 70.0)
    assert w.start == 70.0
    assert w.can_take(3.0, 70.0)  # larger than the limit: admitted alone in a fresh window


@pytest.mark.parametrize("model", QUOTA_MODELS)
def test_tokens_are_limited_in_every_model(model: str) -> None:
    """6,000 TPM: 100 tokens per second (one minute's 6,000 for the minute model)."""
    clock = Clock()
    limits = QuotaLimits(None, 6000, clock, model)
    budget = 6000 if model == "minute" else 100
    assert _admitted(limits, clock, [100.0] * (budget // 50 + 1), tokens=50) == budget // 50
    clock.now = 100.0
    assert limits.admit("m", 50) == ALLOCATION_QUOTA


@pytest.mark.parametrize("model", ["bucket", "window"])
def test_a_refused_request_costs_nothing(model: str) -> None:
    """Refused by the token quota, a request does not spend the request quota (2 per second)."""
    clock = Clock()
    limits = QuotaLimits(120, 6000, clock, model)
    assert limits.admit("m", 100) is None
    assert limits.admit("m", 100) == ALLOCATION_QUOTA
    assert limits.admit("m", 0) is None  # the second request slot was not spent
    assert limits.admit("m", 0) == RATE_QUOTA
    limits.reset()
    assert limits.admit("m", 100) is None


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="quota model"):
        QuotaLimits(60, None, Clock(), "hourly")


def test_quota_model_flag_reaches_the_emulator() -> None:
    """--quota-model window: the emulator refuses the 11th request of a second at 600 RPM."""
    args = build_parser().parse_args(["--rpm", "600", "--quota-model", "window"])
    config = config_from_args(args)
    assert config.quota_model == "window"
    assert EmulatorConfig().quota_model == "bucket"
    clock = Clock()
    emu = Emulator(config, clock=clock)
    for _ in range(10):
        emu.admit("text-embedding-v4", tokens=1, rows=1)
    with pytest.raises(Exception, match="429"):
        emu.admit("text-embedding-v4", tokens=1, rows=1)
