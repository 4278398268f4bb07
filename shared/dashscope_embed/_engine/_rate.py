"""The learned request rate of one model: pacing, cuts from measured successes, probes. Pure.

A quota is a rate, so the control variable is the request rate, not the number of requests in
flight (API reference §7: per minute *and* per second, RPS = RPM/60). Concurrency follows from
rate × latency. One :class:`RateState` per model, driven by :class:`~._throttle.Throttle` under
its lock with the clock reading of each call; nothing here sleeps or reads a clock.

Phases:

* **Start** (no 429 yet, no known quota): slow start. A concurrency window that starts at
  ``initial_concurrency`` and grows by :data:`START_GROWTH` per success (×1.3 per round
  trip), and a pacing rate that starts at :data:`START_RATE` and grows by
  :data:`START_RATE_GROWTH` / latency per success (×2 per round trip: fast where answers are
  quick and an overshoot is short), never faster than a doubling every
  :data:`START_DOUBLING` seconds (a burst-growth limit: a short round trip cannot fire a
  burst the server has no budget for).
* **Paced**: requests leave at most ``rate`` per second, evenly spaced (a late sender may catch
  up by :data:`CREDIT` seconds, no more); up to ``2 × rate × latency + 2`` in flight. On a 429
  for a request sent after the last cut, the rate is set from what actually succeeded, per
  second (over the job's age while it is younger than a second): the first cut paces at
  ``FIRST × BACKOFF ×`` it (a token bucket's first second adds a burst allowance to the rate;
  growth recovers a per-second window's half quickly), later ones at ``BACKOFF ×`` it and at
  most ``DECREASE ×`` the current rate. That count is also the *ceiling*, the measured quota.
  One cut per :data:`COOLDOWN`, and a 429 for a request sent before the last cut says nothing
  new, unless :data:`RECUT` requests sent after the cut are refused within it: then the rate
  becomes ``BACKOFF ×`` what got through since the cut (over the sends answered by now), the
  server's rate while overloaded (a token bucket's burst, which inflates the first second's
  count, is spent by then). While pacing holds requests back, the rate grows per second by
  :data:`GROWTH_FAST` below 90 % of the ceiling, by :data:`GROWTH_NEAR` within [90 %, 105 %]
  of it (once clean for :data:`HOLD` seconds: a few 429s per minute at most) and by
  :data:`GROWTH_PROBE` above it (the quota was raised).
* **Probe** (a 429 sent after a cut with no success since, or nothing through in the last
  second: the budget is spent, e.g. a per-minute window used up in a burst): one request at a
  time, :data:`PROBE_GAP` apart, the gap doubling per 429 up to :data:`PROBE_GAP_MAX`. The
  first success ends it; a dry spell of :data:`MINUTE_DRY` seconds and two round trips or
  more (longer than a per-second window can stay full) means a per-minute budget, so the rate
  becomes ``BACKOFF ×`` the successes of the minute before / 60, which never exhausts it
  again (and is not probed above).

Server errors, dropped connections and abandoned requests are not 429s: they free their slot
and change nothing else (a fault says nothing about the quota; the retry layer handles it).
A known quota (``rpm=``) paces at :data:`KNOWN` of it from the first request and never probes
above it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["RateState"]

START_RATE = 16.0  # requests per second at the very start
START_DOUBLING = 0.3  # seconds: the start rate doubles at most this often
START_RATE_GROWTH = 1.0  # start rate added per success, × 1/latency (×2 per round trip)
BACKOFF = 0.95  # share of the measured successes per second to pace at after a 429
DECREASE = 0.9  # a further cut lowers the rate at least this much
KNOWN = 0.98  # share of a known quota to pace at
HOLD = 1.0  # seconds without a 429 before the rate grows again
GROWTH_FAST = 1.5  # per second, below 90 % of the ceiling
GROWTH_NEAR = 1.005  # per second, within [90 %, 105 %] of the ceiling
GROWTH_PROBE = 1.2  # per second, above 105 % of the ceiling
NEAR_LOW, NEAR_HIGH = 0.9, 1.05
CREDIT = 0.02  # seconds a late sender may catch up on the pacing schedule
PROBE_GAP = 0.25  # seconds between probes of an exhausted budget, doubling per 429
PROBE_GAP_MAX = 8.0
MINUTE_DRY = 2.0  # a dry spell this long (plus two round trips) means a per-minute budget
COOLDOWN = 1.0  # seconds after a cut before a 429 measures a whole second again
RECUT = 2.0  # 429s sent after a cut that cut again within the cooldown
FIRST = 0.5  # share of the measurement the first cut paces at
START_GROWTH = 0.3  # window added per success during the start (×1.3 per round trip)
MIN_SPAN = 0.25  # shortest span (seconds) successes are counted over
MIN_RATE = 0.1  # requests per second, the slowest pacing
LATENCY_WEIGHT = 0.2  # weight of a new sample in the latency average
WINDOW_SLACK = 2.0  # in flight allowed while paced: this × rate × latency (+ 2)
HORIZON = 60.0  # seconds of successes remembered


@dataclass
class RateState:
    """Pacing and the learned quota of one model (see the module docstring).

    Attributes:
        window: Concurrency window of the start phase.
        rate: Pacing rate in requests per second once paced (``None`` during the start).
        ceiling: The measured (or known) quota in requests per second; 0.0 if unknown.
        known: The ceiling was given (``rpm=``): never probe above it.
        per_minute: The ceiling was measured over a minute (a spent per-minute budget).
    """

    window: float
    rate: float | None = None
    ceiling: float = 0.0
    known: bool = False
    per_minute: bool = False
    started: float | None = None
    start_rate: float = START_RATE
    next_send: float = 0.0
    cut_at: float | None = None
    last_429: float = -math.inf
    ok_since_cut: int = 0
    throttled_since_cut: int = 0
    probing: bool = False
    probe_gap: float = PROBE_GAP
    dry_since: float = 0.0
    spent: int = 0
    limited: bool = False
    grown_at: float = 0.0
    latency: float = 0.0
    sent: deque[float] = field(default_factory=deque)
    successes: deque[float] = field(default_factory=deque)

    @classmethod
    def for_quota(cls, window: float, per_second: float | None) -> RateState:
        """A fresh state; with a known quota, paced at :data:`KNOWN` of it from the start."""
        st = cls(window=window)
        if per_second:
            st.ceiling, st.known = per_second, True
            st.rate = KNOWN * per_second
        return st

    # -- admission -------------------------------------------------------------------------

    def limit(self, cap: int) -> int:
        """Requests allowed in flight now."""
        if self.probing:
            return 1
        if self.rate is None:
            return max(1, min(cap, int(self.window + 1e-9)))
        if self.latency <= 0.0:
            return cap
        return max(1, min(cap, math.ceil(WINDOW_SLACK * self.rate * self.latency) + 2))

    def pace(self, now: float) -> float:
        """The current pacing rate (requests per second)."""
        if self.probing:
            return 1.0 / self.probe_gap
        if self.rate is not None:
            return self.rate
        elapsed = 0.0 if self.started is None else now - self.started
        bound = START_RATE * math.pow(2.0, min(elapsed / START_DOUBLING, 30.0))
        return min(self.start_rate, bound)

    def shown_rate(self) -> float | None:
        """The pacing rate for stats: ``None`` during the start (paced by the window)."""
        return 1.0 / self.probe_gap if self.probing else self.rate

    def wait(self, now: float) -> float:
        """Seconds until the pacing schedule admits the next request (0.0: now)."""
        self._grow(now)
        wait = self.next_send - now
        if wait > 0:
            self.limited = True
            return wait
        return 0.0

    def admit(self, now: float) -> None:
        """Record one admitted request and move the pacing schedule on."""
        if self.started is None:
            self.started = now
        gap = 1.0 / self.pace(now)
        self.next_send = max(now - CREDIT, self.next_send) + gap
        if self.probing:  # probes are spaced from now, never caught up
            self.next_send = now + gap
        self.sent.append(now)

    # -- answers ---------------------------------------------------------------------------

    def _sent_at(self, now: float, latency: float | None, *, sample: bool) -> float:
        """When the answered request was sent: the oldest send still open (FIFO pairing)."""
        sent_at = self.sent.popleft() if self.sent else now
        if latency is not None:
            sent_at = now - latency
        if sample:
            took = max(0.0, now - sent_at)
            w = LATENCY_WEIGHT if self.latency > 0 else 1.0
            self.latency += w * (took - self.latency)
        return sent_at

    def on_success(self, now: float, latency: float | None = None) -> None:
        """A request answered with vectors."""
        sent_at = self._sent_at(now, latency, sample=True)
        self.successes.append(now)
        while self.successes and self.successes[0] <= now - HORIZON:
            self.successes.popleft()
        if self.cut_at is None or sent_at >= self.cut_at:
            self.ok_since_cut += 1
        if self.rate is None:
            self.window += START_GROWTH
            if self.latency > 0.0:
                self.start_rate += START_RATE_GROWTH / self.latency
        if self.probing:
            self._end_probe(now)

    def on_other(self, now: float, latency: float | None = None, *, sample: bool = True) -> None:
        """A request that ended without telling anything about the quota (5xx, transport...)."""
        self._sent_at(now, latency, sample=sample)

    def recent(self, now: float, seconds: float) -> int:
        """Successes answered in the last ``seconds`` (up to :data:`HORIZON`)."""
        count = 0
        for t in reversed(self.successes):
            if t <= now - seconds:
                break
            count += 1
        return count

    def on_throttle(self, now: float, latency: float | None = None) -> None:
        """A 429: cut the rate to what succeeded, or probe an exhausted budget."""
        sent_at = self._sent_at(now, latency, sample=True)
        self.last_429 = now
        if self.cut_at is not None and sent_at < self.cut_at:
            return  # sent before the last cut: already accounted for
        if self.probing:
            self.probe_gap = min(PROBE_GAP_MAX, self.probe_gap * 2.0)
            self.cut_at = now
            self.next_send = now + self.probe_gap
            return
        since = math.inf if self.cut_at is None else now - self.cut_at
        measured = float(self.recent(now, 1.0))
        if self.started is not None:  # a job younger than a second: successes per second
            measured /= min(1.0, max(MIN_SPAN, now - self.started - self.latency))
        if (self.ok_since_cut == 0 and since < math.inf) or not measured:
            # Sent after the last cut and nothing got through since, or nothing in the last
            # second: the budget is spent (a per-minute window, or somebody else's burst).
            self.probing, self.probe_gap, self.dry_since = True, PROBE_GAP, self.cut_at or now
            self.spent = self.recent(now, HORIZON)
            self.cut_at = now
            self.next_send = now + self.probe_gap
            return
        self.throttled_since_cut += 1
        if since < COOLDOWN:
            span = since - self.latency  # what was sent since the cut and is answered by now
            if span >= MIN_SPAN and self.throttled_since_cut >= RECUT:
                # Still refused after the cut: what got through since is the server's rate
                # while overloaded (a token bucket's burst is spent by now).
                through = self.ok_since_cut / span
                self.rate = max(MIN_RATE, min(DECREASE * (self.rate or 0.0), BACKOFF * through))
                self.cut_at, self.ok_since_cut, self.throttled_since_cut = now, 0, 0
                self.next_send = max(self.next_send, now + 1.0 / self.rate)
            return  # one cut per second: the server's budget refills per second
        if self.cut_at is None:
            # The first second may have used a burst allowance on top of the rate (a token
            # bucket starts full): start below the measurement and grow back quickly.
            target = FIRST * BACKOFF * measured
        else:
            current = self.rate if self.rate is not None else self.pace(now)
            target = min(BACKOFF * measured, DECREASE * current)
        self.rate = max(MIN_RATE, target)
        if not self.known or measured < self.ceiling:
            self.ceiling = max(measured, MIN_RATE)
            self.known = False
        self.cut_at, self.ok_since_cut, self.throttled_since_cut = now, 0, 0
        self.next_send = max(self.next_send, now + 1.0 / self.rate)

    def _end_probe(self, now: float) -> None:
        self.probing = False
        if now - self.dry_since >= MINUTE_DRY + 2.0 * self.latency:
            per_minute = max(MIN_RATE, self.spent / HORIZON)
            if self.per_minute:  # a trailing minute may straddle two windows: never raise it
                per_minute = min(per_minute, self.ceiling)
            self.ceiling = per_minute
            self.rate = BACKOFF * per_minute
            self.per_minute = True
        self.next_send = now + 1.0 / self.pace(now)
        self.grown_at = now

    def _grow(self, now: float) -> None:
        """Raise the rate for the time since the last update, if answers were clean."""
        dt, self.grown_at = now - self.grown_at, now
        limited, self.limited = self.limited, False
        if self.rate is None or self.probing or not limited:
            return
        if self.known and self.rate >= KNOWN * self.ceiling:
            return
        ratio = self.rate / self.ceiling if self.ceiling > 0 else math.inf
        if now - self.last_429 < (HOLD if ratio >= NEAR_LOW else MIN_SPAN + self.latency):
            return  # near the quota, wait for a clean second; far below, for a clean round
        if self.per_minute and ratio >= BACKOFF:
            return  # a measured minute budget: probing it would only spend it early
        if ratio < NEAR_LOW:
            factor = GROWTH_FAST
        elif ratio <= NEAR_HIGH:
            factor = GROWTH_NEAR
        else:
            factor = GROWTH_PROBE
        grown = self.rate * factor ** min(dt, 1.0)
        if self.known:
            grown = min(grown, KNOWN * self.ceiling)
        self.rate = grown
