"""One account-wide quota for every Ray worker: a quota actor and a leasing :class:`Throttle`.

DashScope limits are per account and per model (API reference §7), so N workers that each pace
themselves to the quota send N times too much and get 429 storms. Here one Ray actor holds the
core :class:`~dashscope_embed.Throttle` (token buckets, adaptive window, pacing after 429s) for
the whole job, and each worker's client admits its requests through a :class:`LeasedThrottle`:

::

    worker client ── acquire ──► LeasedThrottle ── lease(k) ───► quota actor (one per job)
                  ◄─ release ──  (local permits,  ── report(...) ► core Throttle: buckets,
                                  buffered reports)                window, pacing

* **Leases in bulk.** A worker asks for up to ``lease_size`` permits in one actor call and hands
  them out locally; the call is asynchronous, so neither the sync nor the async client blocks on
  Ray. A permit not used within ``lease_ttl`` goes back (held permits would otherwise arrive at
  the server in a burst, and count against the shared window while another worker waits): a
  small daemon thread per worker returns them even when the worker is idle.
* **Reports in bulk.** Outcomes are buffered and sent in one call every ``flush_interval`` or
  ``lease_size`` outcomes; a 429 is sent at once and drops the permits the worker still holds,
  so the shared pacing cuts for everybody before the next request.
* **Leases expire.** Every permit is held by an owner (one per :class:`LeasedThrottle`), whose
  lease lasts ``lease_timeout`` seconds from its last contact; a live worker's housekeeping
  thread sends a heartbeat every ``heartbeat_interval`` while it holds anything. A worker that
  dies holding permits (``os._exit``, OOM kill, lost node) stops calling: its permits come
  back to the shared window within ``lease_timeout`` (checked on every call to the quota), so
  the job goes on."""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from dashscope_embed._engine._throttle import Throttle, ThrottleSnapshot

from ._state import DEFAULT_LEASE_TIMEOUT, QuotaState, Report

__all__ = ["LeasedThrottle"]


_LEASE_POLL = 0.005  # how soon to look again at a lease request in flight


_FULL_POLL = 0.05  # how soon to ask again when this worker's own cap is reached


class _Backend(Protocol):
    """How a :class:`LeasedThrottle` talks to the quota (asynchronously)."""

    def request_lease(self, model: str, want: int, tokens: int, owner: str) -> object:
        """Start a lease request; returns a ticket for :meth:`poll_lease`."""

    def poll_lease(self, ticket: object) -> tuple[int, float] | None:
        """The answer to a lease request, or ``None`` if it has not arrived (never blocks)."""

    def report(self, model: str, outcomes: list[Report], owner: str) -> None:
        """Send outcomes (fire and forget)."""

    def heartbeat(self, owner: str) -> None:
        """Renew ``owner``'s lease (fire and forget)."""


class _LocalBackend:
    """A :class:`QuotaState` in this process (tests, or threads sharing one quota without Ray)."""

    def __init__(self, state: QuotaState) -> None:
        self.state = state

    def request_lease(self, model: str, want: int, tokens: int, owner: str) -> object:
        return self.state.lease(model, want, tokens, owner)

    def poll_lease(self, ticket: object) -> tuple[int, float] | None:
        return ticket  # type: ignore[return-value]

    def report(self, model: str, outcomes: list[Report], owner: str) -> None:
        self.state.report(model, outcomes, owner)

    def heartbeat(self, owner: str) -> None:
        self.state.heartbeat(owner)


@dataclass
class _Local:
    """A worker's view of one model: permits held, requests in flight, reports not yet sent."""

    permits: int = 0
    expires: float = 0.0
    ticket: object | None = None
    not_before: float = 0.0
    in_flight: int = 0
    outcomes: list[Report] = field(default_factory=list)
    last_flush: float = 0.0


class LeasedThrottle(Throttle):
    """A worker-side :class:`Throttle` that admits requests with permits leased from a quota.

    Pass it to a client (``DashScopeClient(throttle=quota.throttle())``); the client calls
    :meth:`acquire` / :meth:`release` as with the core throttle. Build it with
    :meth:`SharedQuota.throttle`.

    Args:
        backend: The quota (a :class:`SharedQuota`).
        max_concurrency: Requests this worker keeps in flight per model.
        lease_size: Most permits asked for in one call to the quota.
        lease_ttl: Seconds a leased permit stays usable before it is given back.
        flush_interval: Longest delay before outcomes are reported (a 429 is reported at once).
        heartbeat_interval: Seconds between heartbeats while this worker holds permits (keep
            it well below the quota's ``lease_timeout``).
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        max_concurrency: int = 8,
        lease_size: int = 8,
        lease_ttl: float = 0.5,
        flush_interval: float = 0.05,
        heartbeat_interval: float = DEFAULT_LEASE_TIMEOUT / 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_concurrency=max_concurrency, adaptive=False, clock=clock)
        if lease_size < 1:
            raise ValueError(f"lease_size must be >= 1, got {lease_size}")
        self._backend = backend
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.heartbeat_interval = heartbeat_interval
        self._last_contact = clock()
        self.lease_size = lease_size
        self.lease_ttl = lease_ttl
        self.flush_interval = flush_interval
        self._leases: dict[str, _Local] = {}
        self._leases_lock = threading.Lock()
        self._start_housekeeping()

    def _start_housekeeping(self) -> None:
        """Return expired permits and send due reports even when no request comes by."""
        me = weakref.ref(self)
        period = max(0.01, min(self.flush_interval, self.lease_ttl))

        def loop() -> None:
            while True:
                time.sleep(period)
                throttle = me()
                if throttle is None:
                    return
                throttle._housekeeping()
                del throttle

        threading.Thread(target=loop, name="dashscope-lease", daemon=True).start()

    def _housekeeping(self) -> None:
        with self._leases_lock:
            now = self._clock()
            for model, st in self._leases.items():
                self._collect(st, now)
                if st.permits and now >= st.expires:
                    self._give_back(model, st)
                if st.outcomes and now - st.last_flush >= self.flush_interval:
                    self._flush(model, st, now)
            holding = any(s.permits or s.in_flight or s.ticket for s in self._leases.values())
            if holding and now - self._last_contact >= self.heartbeat_interval:
                self._last_contact = now
                self._backend.heartbeat(self.owner)

    def acquire(self, model: str, tokens: int = 0) -> float:
        """Use a held permit, or start a lease request; 0.0 means admitted, else seconds to wait."""
        with self._leases_lock:
            now = self._clock()
            st = self._leases.setdefault(model, _Local(last_flush=now))
            if st.permits and now >= st.expires:
                self._give_back(model, st)
            if st.in_flight >= self.max_concurrency:
                return _FULL_POLL
            if not st.permits:
                wait = self._refill(model, st, tokens, now)
                if wait > 0:
                    return wait
            st.permits -= 1
            st.in_flight += 1
            return 0.0

    def _refill(self, model: str, st: _Local, tokens: int, now: float) -> float:
        """Collect or start a lease; returns 0.0 once permits are held, else seconds to wait."""
        if st.ticket is None:
            if now < st.not_before:
                return st.not_before - now
            want = max(1, min(self.lease_size, self.max_concurrency - st.in_flight))
            st.ticket = self._backend.request_lease(model, want, tokens, self.owner)
            self._last_contact = now
        answer = self._backend.poll_lease(st.ticket)
        if answer is None:
            return _LEASE_POLL
        st.ticket = None
        granted, wait = answer
        if not granted:
            st.not_before = now + wait
            return wait
        st.permits, st.expires = granted, now + self.lease_ttl
        return 0.0

    def release(
        self,
        model: str,
        outcome: str,
        *,
        retry_after: float | None = None,
        latency: float | None = None,
    ) -> None:
        """Buffer the outcome; report in bulk, or at once (dropping held permits) on a 429."""
        with self._leases_lock:
            now = self._clock()
            st = self._leases.setdefault(model, _Local(last_flush=now))
            st.in_flight = max(0, st.in_flight - 1)
            st.outcomes.append((outcome, retry_after))
            if outcome == "throttled":
                if retry_after:
                    st.not_before = max(st.not_before, now + retry_after)
                self._give_back(model, st)
            elif len(st.outcomes) < self.lease_size and now - st.last_flush < self.flush_interval:
                return
            self._flush(model, st, now)

    def flush(self, *, give_back: bool = False) -> None:
        """Report every buffered outcome now; with ``give_back``, return held permits too."""
        with self._leases_lock:
            now = self._clock()
            for model, st in self._leases.items():
                if give_back:
                    self._collect(st, now)
                    self._give_back(model, st)
                self._flush(model, st, now)

    def _collect(self, st: _Local, now: float) -> None:
        """Take the permits of a lease answered while nobody was asking (they count as held)."""
        if st.ticket is None:
            return
        answer = self._backend.poll_lease(st.ticket)
        if answer is not None:
            st.ticket = None
            st.permits += answer[0]
            st.expires = now + self.lease_ttl

    def _give_back(self, model: str, st: _Local) -> None:
        st.outcomes.extend([("unused", None)] * st.permits)
        st.permits = 0

    def _flush(self, model: str, st: _Local, now: float) -> None:
        st.last_flush = now
        if st.outcomes:
            outcomes, st.outcomes = st.outcomes, []
            self._backend.report(model, outcomes, self.owner)
            self._last_contact = now

    def models(self) -> list[str]:
        """Models this worker has asked permits for."""
        with self._leases_lock:
            return list(self._leases)

    def snapshot(self, model: str) -> ThrottleSnapshot:
        """This worker's cap and requests in flight (the shared window is in the quota's stats)."""
        with self._leases_lock:
            st = self._leases.get(model, _Local())
            return ThrottleSnapshot(self.max_concurrency, st.in_flight, None)
