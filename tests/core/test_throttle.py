"""The throttle as a pure state machine: a fake clock, scripted answers, exact numbers.

Two kinds of tests: single steps with the controller's constants pinned (start rate, window
growth, cut factors, cooldowns, growth per zone, probe gaps, pacing gaps and boundaries), and
short scripted jobs against the emulator's own quota models (a per-second token bucket or
sliding window, a per-minute window) driven by the same fake clock. Speed is the benchmark's
business (``benchmarks.quota_matrix``); these check decisions.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import pytest

from dashscope_embed._engine import _rate
from dashscope_embed._engine._rate import RateState
from dashscope_embed._engine._throttle import Throttle
from dashscope_embed.emulator._faults import TokenBucket
from dashscope_embed.emulator._quota import MinuteWindow, SlidingWindow

M = "m"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _throttle(**kwargs: object) -> tuple[Clock, Throttle]:
    clock = Clock()
    return clock, Throttle(clock=clock, **kwargs)  # type: ignore[arg-type]


# -- constants ---------------------------------------------------------------------------------


def test_constants_are_the_documented_ones() -> None:
    """The numbers the module docstring and the report describe."""
    assert (_rate.START_RATE, _rate.START_DOUBLING, _rate.START_GROWTH) == (16.0, 0.3, 0.3)
    assert (_rate.START_RATE_GROWTH, _rate.RECUT) == (1.0, 2.0)
    assert (_rate.BACKOFF, _rate.DECREASE, _rate.FIRST, _rate.KNOWN) == (0.95, 0.9, 0.5, 0.98)
    assert (_rate.GROWTH_FAST, _rate.GROWTH_NEAR, _rate.GROWTH_PROBE) == (1.5, 1.005, 1.2)
    assert (_rate.NEAR_LOW, _rate.NEAR_HIGH, _rate.HOLD, _rate.COOLDOWN) == (0.9, 1.05, 1.0, 1.0)
    assert (_rate.PROBE_GAP, _rate.PROBE_GAP_MAX, _rate.MINUTE_DRY) == (0.25, 8.0, 2.0)
    assert (_rate.CREDIT, _rate.MIN_RATE, _rate.MIN_SPAN, _rate.HORIZON) == (0.02, 0.1, 0.25, 60)
    assert (_rate.WINDOW_SLACK, _rate.LATENCY_WEIGHT) == (2.0, 0.2)


# -- the start ---------------------------------------------------------------------------------


def test_start_rate_grows_per_success_bounded_by_a_doubling_every_0_3_seconds() -> None:
    """The start pace is 16/s; each success adds 1/latency (×2 per round trip), but the pace
    never exceeds 16 × 2^(elapsed / 0.3 s)."""
    st = RateState(window=4.0)
    st.admit(100.0)
    assert st.pace(100.0) == 16.0
    assert st.pace(100.5) == 16.0  # no answer yet: nothing learned, no growth
    st.on_success(100.1, latency=0.1)  # +1/0.1 s
    assert st.start_rate == pytest.approx(26.0)
    assert st.pace(100.1) == pytest.approx(16.0 * 2 ** (1 / 3))  # the time bound binds (~20.2)
    assert st.pace(100.3) == pytest.approx(26.0)  # 32/s allowed by now: the successes bind
    for _ in range(10):
        st.on_success(100.3, latency=0.1)
    # The latency average moved, each success adds 1/latency of the moment: ≈ 10/s each.
    assert st.start_rate == pytest.approx(126.0, rel=0.05)
    assert st.pace(100.6) == pytest.approx(64.0)  # 16 × 2^2
    assert st.pace(101.2) == pytest.approx(st.start_rate)  # 256/s allowed


def test_start_rate_does_not_grow_on_faults_or_429s_before_the_first_sample() -> None:
    """Only successes raise the start rate; a success without a latency sample adds nothing."""
    st = RateState(window=4.0)
    st.admit(100.0)
    st.on_other(100.2)
    assert st.start_rate == 16.0
    st2 = RateState(window=4.0)
    st2.on_success(100.0)  # nothing admitted: no send time, a zero-length round trip
    assert st2.start_rate == 16.0
    assert st2.latency == 0.0


def test_pace_before_the_first_send_is_the_start_rate() -> None:
    """Nothing sent yet: 16/s (the start's time bound counts from the first send)."""
    assert RateState(window=4.0).pace(100.0) == 16.0
    assert RateState(window=4.0).shown_rate() is None


def test_recent_counts_only_successes_inside_the_span() -> None:
    """A success exactly ``seconds`` ago is outside the span."""
    st = RateState(window=4.0)
    st.on_success(100.0)
    st.on_success(100.5)
    assert st.recent(101.0, 1.0) == 1
    assert st.recent(100.999, 1.0) == 2


def test_a_fault_with_a_measured_latency_samples_it() -> None:
    """A 5xx answered after a measured 0.2 s moves the latency average by that, not by the FIFO
    guess from the oldest open send (0.5 s)."""
    st = RateState(window=4.0)
    st.admit(100.0)
    st.on_other(100.5, latency=0.2)
    assert st.latency == pytest.approx(0.2)


def test_first_gap_includes_the_catch_up_credit() -> None:
    """The first request goes at once; the next 1/16 s later, less the 20 ms catch-up credit."""
    _, t = _throttle(max_concurrency=100)
    assert t.acquire(M) == 0.0
    assert t.acquire(M) == pytest.approx(0.0625 - 0.02)


def test_start_window_grows_by_0_3_per_success() -> None:
    """The window starts at min(4, cap) and grows by 0.3 per success (×1.3 per round trip)."""
    clock, t = _throttle(max_concurrency=100)
    assert t.snapshot(M).concurrency_limit == 4
    for _ in range(4):
        assert t.acquire(M) == 0.0
        clock.now += 1.0
    assert t.acquire(M) == 0.05  # window full: poll again soon
    for _ in range(10):
        t.release(M, "ok")
    assert t.snapshot(M).concurrency_limit == 7  # 4 + 10 × 0.3
    assert t.snapshot(M).rate_per_second is None  # not paced by a learned rate yet
    assert Throttle(max_concurrency=2).snapshot(M).concurrency_limit == 2


def test_initial_concurrency_is_clamped_to_the_cap() -> None:
    """initial_concurrency is kept within [1, max_concurrency]."""
    assert Throttle(max_concurrency=8, initial_concurrency=20).initial_concurrency == 8
    assert Throttle(max_concurrency=8, initial_concurrency=0).initial_concurrency == 1
    assert Throttle(max_concurrency=8, initial_concurrency=3).initial_concurrency == 3


def test_invalid_arguments_are_refused() -> None:
    for kwargs in ({"max_concurrency": 0}, {"rpm": 0}, {"tpm": -1}):
        with pytest.raises(ValueError):
            Throttle(**kwargs)  # type: ignore[arg-type]


# -- releasing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["ok", "throttled", "other", "unused"])
def test_releasing_frees_exactly_one_slot(outcome: str) -> None:
    """With the window full, one release lets exactly one more request in."""
    _clock, t = _throttle(max_concurrency=3, adaptive=False)
    for _ in range(3):
        assert t.acquire(M) == 0.0
    assert t.acquire(M) == 0.05
    t.release(M, outcome)
    assert t.snapshot(M).in_flight == 2
    assert t.acquire(M) == 0.0
    assert t.acquire(M) == 0.05
    assert t.snapshot(M).in_flight == 3


def test_extra_releases_never_go_below_zero() -> None:
    _, t = _throttle(max_concurrency=3)
    t.release(M, "ok")
    assert t.snapshot(M).in_flight == 0


# -- adaptive=False ----------------------------------------------------------------------------


def test_not_adaptive_keeps_a_fixed_window() -> None:
    """adaptive=False: max_concurrency at once, no pacing, and 429s change nothing."""
    _clock, t = _throttle(max_concurrency=16, adaptive=False)
    assert [t.acquire(M) for _ in range(16)] == [0.0] * 16
    assert t.acquire(M) == 0.05
    for _ in range(16):
        t.release(M, "throttled")
    assert [t.acquire(M) for _ in range(16)] == [0.0] * 16
    snap = t.snapshot(M)
    assert (snap.concurrency_limit, snap.in_flight, snap.rate_per_second) == (16, 16, None)


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize("adaptive", [True, False])
def test_retry_after_pauses_the_model(adaptive: bool) -> None:
    """A 429 with Retry-After: nothing is admitted for that long (adaptive or not)."""
    clock, t = _throttle(max_concurrency=8, adaptive=adaptive)
    assert t.acquire(M) == 0.0
    t.release(M, "throttled", retry_after=3.0)
    clock.now += 1.0
    assert t.acquire(M) == pytest.approx(2.0)
    clock.now += 2.0
    assert t.acquire(M) == 0.0


def test_retry_after_of_a_5xx_does_not_pause() -> None:
    """Only a 429's Retry-After pauses the model (the retry layer waits for a 5xx's)."""
    _clock, t = _throttle(max_concurrency=8, adaptive=False)
    assert t.acquire(M) == 0.0
    t.release(M, "other", retry_after=3.0)
    assert t.acquire(M) == 0.0


# -- known quotas ------------------------------------------------------------------------------


def test_known_rpm_is_paced_evenly_at_98_percent() -> None:
    """rpm=600 (10 per second): one request every 1/9.8 s from the first, no burst."""
    clock, t = _throttle(max_concurrency=100, rpm=600)
    assert t.snapshot(M).rate_per_second == pytest.approx(9.8)
    assert t.acquire(M) == 0.0
    assert t.acquire(M) == pytest.approx(1 / 9.8 - 0.02)
    clock.now += 1 / 9.8 - 0.02
    assert t.acquire(M) == 0.0
    assert t.acquire(M) == pytest.approx(1 / 9.8)


def test_a_late_sender_catches_up_by_the_credit_only() -> None:
    """Arriving 0.5 s late earns 20 ms of credit, not a burst."""
    clock, t = _throttle(max_concurrency=100, rpm=600)
    assert t.acquire(M) == 0.0
    clock.now += 0.5
    assert t.acquire(M) == 0.0
    assert t.acquire(M) == pytest.approx(1 / 9.8 - 0.02)


def test_known_rpm_never_probes_above_it() -> None:
    """Held back for a minute without a 429, a known quota stays at 98 % of it."""
    clock, t = _throttle(max_concurrency=100, rpm=600)
    for _ in range(600):
        wait = t.acquire(M)
        if wait == 0.0:
            t.release(M, "ok")
        clock.now += 0.05
    assert t.snapshot(M).rate_per_second == pytest.approx(9.8)


def test_known_tpm_paces_tokens_evenly() -> None:
    """tpm=6000 (100 per second): after 49 tokens, the next waits 49 / 98 s (less the credit)."""
    _clock, t = _throttle(max_concurrency=100, tpm=6000)
    assert t.acquire(M, tokens=49) == 0.0
    assert t.acquire(M, tokens=49) == pytest.approx(0.5 - 0.02)


def test_known_rpm_lowered_by_a_measured_429() -> None:
    """A 429 under a known rpm measures the real quota and stops trusting the given one."""
    clock, t = _throttle(max_concurrency=100, rpm=6000)
    for _ in range(30):  # 30 successes over the last second, latency 0.1 s
        assert t.acquire(M) == 0.0
        clock.now += 1 / 30
        t.release(M, "ok", latency=0.1)
    clock.now += 1.0  # older than a second: none of them counts any more
    for _ in range(10):
        t.acquire(M)
        clock.now += 0.05
        t.release(M, "ok", latency=0.01)
    t.acquire(M)
    t.release(M, "throttled", latency=0.01)
    state = t._models[M].rate
    assert not state.known
    assert state.ceiling == pytest.approx(10.0)
    assert state.rate == pytest.approx(0.5 * 0.95 * 10)  # the first cut


# -- cuts --------------------------------------------------------------------------------------


def _paced(rate: float, ceiling: float, now: float = 100.0) -> RateState:
    st = RateState(window=4.0, rate=rate, ceiling=ceiling, started=now - 10.0, grown_at=now)
    st.latency = 0.1
    return st


def _successes(st: RateState, times: list[float]) -> None:
    for t in times:
        st.sent.append(t - 0.1)
        st.on_success(t, latency=0.1)


def test_first_cut_paces_at_half_of_95_percent_of_the_last_second() -> None:
    """20 successes in the last second: the first 429 paces at 0.5 × 0.95 × 20 = 9.5."""
    st = RateState(window=4.0, started=90.0)
    _successes(st, [98.5])  # older than a second: not counted
    _successes(st, [99.0 + 0.05 * i for i in range(1, 21)])  # (99, 100]
    st.on_throttle(100.0, latency=0.1)
    assert st.rate == pytest.approx(9.5)
    assert st.ceiling == pytest.approx(20.0)
    assert st.next_send == pytest.approx(100.0 + 1 / 9.5)


def test_young_job_counts_successes_per_second() -> None:
    """A job 0.6 s old (latency 0.1): 10 successes are 10 / 0.5 = 20 per second."""
    st = RateState(window=4.0, started=99.4)
    st.latency = 0.1
    _successes(st, [99.6 + 0.04 * i for i in range(10)])
    st.latency = 0.1
    st.on_throttle(100.0, latency=0.1)
    assert st.ceiling == pytest.approx(20.0)


def test_young_job_span_is_at_least_a_quarter_second() -> None:
    """5 successes in a job 0.2 s old count over 0.25 s: 20 per second, not 50."""
    st = RateState(window=4.0, started=99.8)
    _successes(st, [99.9, 99.92, 99.94, 99.96, 99.98])
    st.latency = 0.0
    st.on_throttle(100.0, latency=0.0)
    assert st.ceiling == pytest.approx(20.0)


def test_later_cut_is_95_percent_of_the_last_second_at_most_90_percent_of_the_rate() -> None:
    """After the cooldown: min(0.95 × successes of the last second, 0.9 × the current rate)."""
    st = _paced(rate=30.0, ceiling=40.0)
    st.cut_at = 98.0
    _successes(st, [99.0 + 0.05 * i for i in range(1, 21)])  # 20 in the last second
    st.on_throttle(100.0, latency=0.1)
    assert st.rate == pytest.approx(19.0)  # 0.95 × 20 < 0.9 × 30
    assert st.ceiling == pytest.approx(20.0)
    st2 = _paced(rate=20.0, ceiling=40.0)
    st2.cut_at = 98.0
    _successes(st2, [99.0 + 0.05 * i for i in range(1, 21)])
    st2.on_throttle(100.0, latency=0.1)
    assert st2.rate == pytest.approx(18.0)  # 0.9 × 20 < 0.95 × 20


def test_no_second_cut_within_the_cooldown() -> None:
    """A 429 0.99 s after a cut changes nothing; at 1.0 s it cuts."""
    st = _paced(rate=30.0, ceiling=40.0)
    st.cut_at = 99.01
    _successes(st, [99.5, 99.6, 99.7])
    st.on_throttle(100.0, latency=0.1)
    assert st.rate == 30.0
    st.cut_at = 99.0
    st.on_throttle(100.0, latency=0.1)
    assert st.rate == pytest.approx(0.95 * 3 / 1.0)


def test_a_429_sent_before_the_last_cut_is_ignored() -> None:
    """One cut per round: a 429 for a request sent before the cut says nothing new."""
    st = _paced(rate=30.0, ceiling=40.0)
    st.cut_at = 97.0
    _successes(st, [99.5])
    st.on_throttle(100.0, latency=3.5)  # sent at 96.5, before the cut
    assert (st.rate, st.probing, st.last_429) == (30.0, False, 100.0)


def test_fifo_pairing_gives_the_send_time() -> None:
    """Without a measured latency, the oldest open admission is the answered request."""
    st = RateState(window=4.0)
    st.admit(100.0)
    st.admit(100.5)
    st.on_other(101.0)
    assert st.latency == pytest.approx(1.0)
    st.on_other(101.0)
    assert st.latency == pytest.approx(1.0 + 0.2 * (0.5 - 1.0))
    st.on_other(102.0, sample=False)  # an unused permit: no latency sample
    assert st.latency == pytest.approx(0.9)


def test_rate_never_below_the_minimum() -> None:
    st = _paced(rate=0.1, ceiling=0.2)
    st.cut_at = 90.0
    _successes(st, [99.5])
    st.on_throttle(100.0, latency=0.1)
    assert st.rate == pytest.approx(0.1)


# -- 5xx, transport errors ---------------------------------------------------------------------


def test_a_burst_of_5xx_is_not_read_as_a_quota() -> None:
    """Fifty failures in a row leave the rate, ceiling and window as they were."""
    clock, t = _throttle(max_concurrency=100, rpm=1200)
    before = t.snapshot(M)
    state = t._models[M].rate
    for _ in range(50):
        while t.acquire(M) > 0:
            clock.now += 0.01
        clock.now += 0.05
        t.release(M, "other")
    after = t.snapshot(M)
    assert after.rate_per_second == before.rate_per_second == pytest.approx(19.6)
    assert (state.ceiling, state.cut_at, state.probing) == (20.0, None, False)
    assert after.in_flight == 0


# -- growth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "factor"),
    [(8.9, 1.5), (9.0, 1.005), (10.5, 1.005), (10.51, 1.2)],
)
def test_growth_per_second_by_zone(rate: float, factor: float) -> None:
    """Ceiling 10: below 9 ×1.5/s, within [9, 10.5] ×1.005/s, above ×1.2/s."""
    st = _paced(rate=rate, ceiling=10.0)
    st.limited = True
    st.wait(100.5)
    assert st.rate == pytest.approx(rate * factor**0.5)


def test_no_growth_unless_pacing_held_someone_back() -> None:
    st = _paced(rate=5.0, ceiling=10.0)
    st.wait(101.0)
    assert st.rate == 5.0


def test_growth_counts_at_most_one_second_per_step() -> None:
    st = _paced(rate=5.0, ceiling=10.0)
    st.limited = True
    st.wait(110.0)
    assert st.rate == pytest.approx(7.5)


def test_near_the_ceiling_growth_waits_a_clean_second() -> None:
    """Within 1 s of a 429, near the quota: no growth; far below it: growth at once."""
    st = _paced(rate=9.5, ceiling=10.0)
    st.last_429 = 99.6
    st.limited = True
    st.wait(100.5)
    assert st.rate == 9.5
    st.limited = True
    st.wait(100.7)  # 1.1 s after the 429
    assert st.rate == pytest.approx(9.5 * 1.005**0.2)
    far = _paced(rate=5.0, ceiling=10.0)
    far.last_429 = 99.9
    far.limited = True
    far.wait(100.5)
    assert far.rate == pytest.approx(5.0 * 1.5**0.5)


def test_a_per_minute_ceiling_is_not_probed() -> None:
    """A measured minute budget: growth stops at 95 % of it (an overshoot would spend it)."""
    st = _paced(rate=9.5, ceiling=10.0)
    st.per_minute = True
    st.limited = True
    st.wait(101.0)
    assert st.rate == 9.5
    low = _paced(rate=9.4, ceiling=10.0)
    low.per_minute = True
    low.limited = True
    low.wait(101.0)
    assert low.rate == pytest.approx(9.4 * 1.005)


def test_a_second_minute_measurement_never_raises_the_ceiling() -> None:
    """Spent again with a trailing minute of 800 (two windows): the ceiling stays at 10."""
    st = _paced(rate=9.5, ceiling=10.0)
    st.per_minute = True
    st.probing, st.dry_since, st.spent = True, 95.0, 800
    st.sent.append(99.9)
    st.on_success(100.0, latency=0.1)
    assert (st.ceiling, st.rate) == (10.0, 9.5)


def test_pacing_wait_marks_the_rate_as_limiting() -> None:
    st = _paced(rate=10.0, ceiling=10.0)
    st.next_send = 100.3
    assert st.wait(100.0) == pytest.approx(0.3)
    assert st.limited
    assert st.wait(100.3) == 0.0


# -- concurrency from rate × latency -----------------------------------------------------------


def test_paced_window_is_twice_rate_times_latency_plus_two() -> None:
    """20 per second at 0.3 s: 2 × 6 + 2 = 14 in flight; the cap bounds it; probing allows 1."""
    st = _paced(rate=20.0, ceiling=20.0)
    st.latency = 0.3
    assert st.limit(100) == 14
    assert st.limit(10) == 10
    st.latency = 0.0
    assert st.limit(100) == 100
    st.probing = True
    assert st.limit(100) == 1


# -- a spent budget: probing -------------------------------------------------------------------


def test_a_spent_budget_is_probed_with_doubling_gaps() -> None:
    """A 429 sent after a cut with nothing through since: probe at 0.25 s, doubling up to 8 s."""
    st = _paced(rate=20.0, ceiling=20.0)
    st.cut_at = 99.0
    st.ok_since_cut = 0
    st.on_throttle(100.0, latency=0.1)
    assert (st.probing, st.probe_gap, st.next_send) == (True, 0.25, 100.25)
    assert st.pace(100.0) == 4.0
    gaps = []
    now = 100.0
    for _ in range(7):
        now += st.probe_gap + 0.1
        st.on_throttle(now, latency=0.05)
        gaps.append(st.probe_gap)
    assert gaps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_stats_show_the_probe_pace_while_probing() -> None:
    """While probing, the shown rate is one probe per gap (4/s at 0.25 s), one in flight."""
    st = _paced(rate=20.0, ceiling=20.0)
    assert st.shown_rate() == 20.0
    st.cut_at, st.ok_since_cut = 99.0, 0
    st.on_throttle(100.0, latency=0.1)
    assert st.shown_rate() == 4.0
    assert st.limit(100) == 1


def test_a_short_dry_spell_keeps_the_rate() -> None:
    """A success 1.9 s into the dry spell: back to the rate before it (per-second hiccup)."""
    st = _paced(rate=20.0, ceiling=20.0)
    st.cut_at = 99.0
    st.on_throttle(100.0, latency=0.1)
    st.sent.append(100.8)
    st.on_success(100.9, latency=0.1)
    assert (st.probing, st.rate, st.per_minute) == (False, 20.0, False)


def test_a_long_dry_spell_means_a_per_minute_budget() -> None:
    """Dry for 2 s or more: pace at 0.95 × the successes of the minute before, per second."""
    st = RateState(window=4.0, started=0.0, rate=50.0, ceiling=100.0)
    _successes(st, [50.0 + 0.01 * i for i in range(600)])  # 600 in the minute so far
    st.cut_at = 56.0
    st.ok_since_cut = 0
    st.on_throttle(57.0, latency=0.1)
    assert st.probing
    assert st.spent == 600
    st.sent.append(58.9)
    st.on_success(59.0, latency=0.1)  # 3 s after the dry spell began
    assert (st.probing, st.per_minute) == (False, True)
    assert st.ceiling == pytest.approx(10.0)
    assert st.rate == pytest.approx(9.5)


def test_a_dry_spell_allows_two_round_trips_more() -> None:
    """At 1 s latency, 3 s dry is still a per-second window refilling (2 s + 2 × 1 s needed)."""
    st = _paced(rate=20.0, ceiling=20.0)
    st.latency = 1.0
    st.cut_at = 99.0
    st.on_throttle(100.0, latency=1.0)
    st.latency = 1.0
    st.sent.append(101.0)
    st.on_success(102.0, latency=1.0)  # 3 s after the dry spell began
    assert (st.probing, st.rate, st.per_minute) == (False, 20.0, False)


def test_nothing_through_in_the_last_second_starts_probing_at_once() -> None:
    """A first 429 with no success in the last second: the budget is spent (probe, not 0.1/s)."""
    st = RateState(window=4.0, started=90.0)
    _successes(st, [95.0])
    st.on_throttle(100.0, latency=0.1)
    assert st.probing
    assert st.rate is None
    st.sent.append(100.3)
    st.on_success(100.4, latency=0.1)
    assert not st.probing
    assert st.rate is None


# -- scripted jobs against the emulator's quota models ---------------------------------------

Server = Callable[[float], bool]


def _job(
    server: Server,
    *,
    seconds: float,
    latency: float = 0.1,
    clock: Clock | None = None,
    throttle: Throttle | None = None,
    step: float = 0.005,
) -> list[tuple[float, str]]:
    """Keep the throttle busy for ``seconds``; the server says yes/no at arrival."""
    clock = clock or Clock()
    throttle = throttle or Throttle(max_concurrency=200, clock=clock)
    answers: list[tuple[float, int, str]] = []
    seq = itertools.count()
    log: list[tuple[float, str]] = []
    end = clock.now + seconds
    while clock.now < end:
        while answers and answers[0][0] <= clock.now:
            _, _, status = heapq.heappop(answers)
            throttle.release(M, status)
        while throttle.acquire(M) == 0.0:
            status = "ok" if server(clock.now) else "throttled"
            heapq.heappush(answers, (clock.now + latency, next(seq), status))
            log.append((clock.now, status))
        clock.now += step
    return log


def _meter_server(meter: TokenBucket | SlidingWindow | MinuteWindow) -> Server:
    def admit(now: float) -> bool:
        if meter.can_take(1.0, now):
            meter.take(1.0)
            return True
        return False

    return admit


def _between(log: list[tuple[float, str]], start: float, end: float) -> tuple[int, int]:
    sent = [s for t, s in log if start <= t < end]
    return sent.count("ok"), sent.count("throttled")


@pytest.mark.parametrize("kind", ["bucket", "window"])
def test_per_second_quota_is_saturated_with_few_429s(kind: str) -> None:
    """20 per second, 100 ms: ≥ 93 % of it after the start, ≤ 2 % of 429s from then on."""
    meter = TokenBucket(20.0, 20.0, 100.0) if kind == "bucket" else SlidingWindow(20.0)
    log = _job(_meter_server(meter), seconds=40.0)
    ok, throttled = _between(log, 110.0, 140.0)
    assert ok >= 0.93 * 20 * 30
    assert throttled <= 0.02 * (ok + throttled)
    total_429 = sum(1 for _, s in log if s == "throttled")
    assert total_429 <= 20  # the discovery costs about one second of quota, once


def test_per_minute_quota_is_probed_then_paced() -> None:
    """600 per minute: a burst, a spent minute probed, then paced at 0.95 × 10 per second."""
    clock = Clock()
    throttle = Throttle(max_concurrency=200, clock=clock)
    log = _job(_meter_server(MinuteWindow(600.0)), seconds=185.0, clock=clock, throttle=throttle)
    state = throttle._models[M].rate
    assert state.per_minute
    assert state.ceiling == pytest.approx(10.0, rel=0.05)
    ok_third, throttled_third = _between(log, 220.0, 280.0)  # the third minute: paced
    assert ok_third >= 0.9 * 600
    assert throttled_third <= 5
    ok_total = sum(1 for _, s in log if s == "ok")
    assert ok_total >= 0.9 * 600 * 3  # three minutes' budget and a bit


def test_quota_that_changes_mid_job() -> None:
    """20/s, then 10/s from t=130, then 30/s from t=160: the rate follows down and back up."""
    buckets = {
        "a": SlidingWindow(20.0),
        "b": SlidingWindow(10.0),
        "c": SlidingWindow(30.0),
    }

    def server(now: float) -> bool:
        key = "a" if now < 130 else ("b" if now < 160 else "c")
        return _meter_server(buckets[key])(now)

    clock = Clock()
    throttle = Throttle(max_concurrency=200, clock=clock)
    log = _job(server, seconds=120.0, clock=clock, throttle=throttle)
    ok_a, _ = _between(log, 110.0, 130.0)
    ok_b, throttled_b = _between(log, 135.0, 160.0)
    ok_c, _ = _between(log, 190.0, 220.0)
    assert ok_a >= 0.9 * 20 * 20
    assert ok_b >= 0.9 * 10 * 25
    assert throttled_b <= 0.05 * ok_b
    assert ok_c >= 0.85 * 30 * 30


def test_five_xx_between_answers_do_not_lower_the_rate() -> None:
    """Every tenth request a 500 that still counts against a 20/s quota: the answers reach
    ≥ 75 % of the quota, with ≤ 2 % of 429s (a 500 is not read as a quota)."""
    meter = SlidingWindow(20.0)
    counter = itertools.count()
    clock = Clock()
    throttle = Throttle(max_concurrency=200, clock=clock)
    answers: list[tuple[float, int, str]] = []
    seq = itertools.count()
    sent = {"ok": 0, "throttled": 0, "other": 0}
    while clock.now < 140.0:
        while answers and answers[0][0] <= clock.now:
            _, _, status = heapq.heappop(answers)
            throttle.release(M, status)
        while throttle.acquire(M) == 0.0:
            if not _meter_server(meter)(clock.now):
                status = "throttled"
            else:
                status = "other" if next(counter) % 10 == 9 else "ok"
            if clock.now >= 110.0:
                sent[status] += 1
            heapq.heappush(answers, (clock.now + 0.1, next(seq), status))
        clock.now += 0.005
    assert sent["ok"] >= 0.75 * 20 * 30
    assert sent["throttled"] <= 0.02 * sum(sent.values())


def test_an_unused_permit_is_no_latency_sample() -> None:
    """release("unused") frees the slot without counting as a request's latency."""
    clock, t = _throttle(max_concurrency=100)
    assert t.acquire(M) == 0.0
    clock.now += 5.0
    t.release(M, "unused")
    state = t._models[M].rate
    assert (state.latency, len(state.sent), t.snapshot(M).in_flight) == (0.0, 0, 0)
    assert t.acquire(M) == 0.0
    clock.now += 0.2
    t.release(M, "other")
    assert state.latency == pytest.approx(0.2)


def test_a_measured_latency_wins_over_the_fifo_guess() -> None:
    clock, t = _throttle(max_concurrency=100)
    assert t.acquire(M) == 0.0
    clock.now += 2.0
    t.release(M, "ok", latency=0.3)
    assert t._models[M].rate.latency == pytest.approx(0.3)


def test_models_and_snapshots() -> None:
    """models() lists the models seen; a paced snapshot shows the rate and its window."""
    clock, t = _throttle(max_concurrency=100, rpm=1200)
    assert t.models() == []
    assert t.acquire(M) == 0.0
    clock.now += 0.3
    t.release(M, "ok")
    assert t.models() == [M]
    snap = t.snapshot(M)
    assert snap.rate_per_second == pytest.approx(19.6)
    assert snap.concurrency_limit == 14  # ceil(2 × 19.6 × 0.3) + 2
    assert snap.in_flight == 0


def test_refused_again_since_a_recent_cut_paces_at_what_got_through() -> None:
    """0.5 s after a cut (100 ms latency: 0.4 s of sends answered), a second 429 sent after
    the cut and 2 through: pace at min(0.9 × 30, 0.95 × 2 / 0.4) = 4.75; the ceiling stays."""
    st = _paced(rate=30.0, ceiling=40.0)
    st.cut_at = 99.5
    _successes(st, [99.7, 99.8])
    st.throttled_since_cut = 1
    st.on_throttle(100.0, latency=0.1)
    assert st.rate == pytest.approx(4.75)
    assert (st.ceiling, st.cut_at, st.ok_since_cut, st.throttled_since_cut) == (40.0, 100.0, 0, 0)
    assert st.next_send == pytest.approx(100.0 + 1 / 4.75)


def test_one_refused_since_a_recent_cut_changes_nothing() -> None:
    st = _paced(rate=30.0, ceiling=40.0)
    st.cut_at = 99.5
    _successes(st, [99.7, 99.8])
    st.on_throttle(100.0, latency=0.1)  # the first 429 sent after the cut: one is noise
    assert (st.rate, st.cut_at, st.throttled_since_cut) == (30.0, 99.5, 1)
    early = _paced(rate=30.0, ceiling=40.0)
    early.cut_at = 99.8
    _successes(early, [99.9])
    early.throttled_since_cut = 5
    early.on_throttle(100.0, latency=0.1)  # 0.1 s of sends answered: too soon to measure
    assert early.rate == 30.0


def test_far_below_the_ceiling_growth_waits_one_clean_round() -> None:
    """Rate 5, ceiling 10, latency 0.1 s: no growth until 0.25 + 0.1 s after the last 429."""
    st = _paced(rate=5.0, ceiling=10.0)
    st.last_429 = 99.7
    st.limited = True
    st.wait(100.0)
    assert st.rate == 5.0
    st.limited = True
    st.wait(100.1)
    assert st.rate == pytest.approx(5.0 * 1.5**0.1)


def test_growth_needs_pacing_to_hold_back_again_after_each_step() -> None:
    st = _paced(rate=5.0, ceiling=10.0)
    st.limited = True
    st.wait(100.5)
    grown = st.rate
    assert grown == pytest.approx(5.0 * 1.5**0.5)
    st.wait(101.0)  # nobody was held back since
    assert st.rate == grown


def test_a_known_quota_grows_back_to_98_percent_only() -> None:
    st = _paced(rate=5.0, ceiling=10.0)
    st.known = True
    st.limited = True
    st.wait(100.5)
    assert st.rate == pytest.approx(5.0 * 1.5**0.5)
    st.rate = 8.9  # far below: ×1.5 would pass the known quota, capped at 98 % of it
    st.limited = True
    st.wait(101.5)
    assert st.rate == pytest.approx(9.8)


def test_cuts_and_probe_ends_schedule_the_next_send_ahead() -> None:
    st = _paced(rate=30.0, ceiling=40.0)
    st.cut_at = 98.0
    _successes(st, [99.0 + 0.05 * i for i in range(1, 21)])
    st.on_throttle(100.0, latency=0.1)
    assert st.next_send == pytest.approx(100.0 + 1 / 19.0)
    probe = _paced(rate=20.0, ceiling=20.0)
    probe.cut_at = 99.0
    probe.on_throttle(100.0, latency=0.1)
    probe.sent.append(100.8)
    probe.on_success(100.9, latency=0.1)
    assert probe.next_send == pytest.approx(100.9 + 1 / 20.0)


def test_a_window_of_one() -> None:
    clock, t = _throttle(max_concurrency=8, initial_concurrency=1)
    assert t.acquire(M) == 0.0
    clock.now += 1.0
    assert t.acquire(M) == 0.05
