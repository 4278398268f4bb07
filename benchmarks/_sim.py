"""A discrete-event simulation of the client engine against an emulator quota (fake clock).

For tuning the throttle quickly: the real :class:`~dashscope_embed.Throttle`, the emulator's
real quota models, and a model of the engine (``2 × cap`` workers, each admitted by the
throttle, woken by any release or when its wait expires; 429s retried after the retry policy's
backoff, 5xx and dropped connections after theirs). Not a benchmark: the matrix
(``benchmarks.quota_matrix``) measures real processes.

Run: ``python -m benchmarks._sim [--rpm 1200] [--latency 0.15] [--requests 300] [--model bucket]``.
"""

from __future__ import annotations

import argparse
import heapq
import random
from dataclasses import dataclass, field

from dashscope_embed._engine._retry import RetryPolicy
from dashscope_embed._engine._throttle import Throttle
from dashscope_embed.emulator._quota import QuotaLimits


@dataclass
class SimResult:
    """What one simulated job did."""

    wall: float
    requests: int
    ok: int
    throttled: int
    errors: int
    peak_in_flight: int
    rates: list[float] = field(default_factory=list)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(
    *,
    rpm: int | None,
    latency: float,
    requests: int,
    quota_model: str = "bucket",
    cap: int = 200,
    error_rate: float = 0.0,
    drop_rate: float = 0.0,
    jitter: float = 0.1,
    seed: int = 0,
    client_rpm: float | None = None,
    trace: list[tuple[float, float | None, float, bool]] | None = None,
) -> SimResult:
    """Simulate ``requests`` single-request batches; returns the counts (times in seconds)."""
    clock = _Clock()
    rng = random.Random(seed)
    policy = RetryPolicy(rng=random.Random(seed + 1))
    throttle = Throttle(max_concurrency=cap, rpm=client_rpm, clock=clock)
    quota = QuotaLimits(rpm, None, clock, quota_model)
    events: list[tuple[float, int, str, int]] = []
    seq = 0

    current: dict[int, int] = {}  # the one live "try" event of each worker

    def push(t: float, kind: str, who: int) -> None:
        nonlocal seq
        seq += 1
        if kind == "try":
            current[who] = seq
        heapq.heappush(events, (t, seq, kind, who))

    pending = list(range(requests))
    attempts: dict[int, int] = {}
    waiting: set[int] = set()
    in_flight = peak = sent = ok = throttled = errors = 0
    first = last = None
    done = 0
    workers = min(requests, 2 * cap)
    jobs: dict[int, int] = {}
    for w in range(workers):
        jobs[w] = pending.pop()
        push(0.0, "try", w)
    while events and done < requests:
        t, n, kind, w = heapq.heappop(events)
        if kind == "try" and current.get(w) != n:
            continue  # superseded by a wake-up
        clock.now = t
        if kind == "try":
            waiting.discard(w)
            wait = throttle.acquire("m", 0)
            if wait > 0:
                waiting.add(w)
                push(t + wait, "try", w)
                continue
            sent += 1
            in_flight += 1
            peak = max(peak, in_flight)
            first = t if first is None else first
            took = latency * (1.0 + jitter * rng.random())
            drop, err = rng.random() < drop_rate, rng.random() < error_rate
            if drop:
                push(t + took, "drop", w)
            elif err:
                push(t + took, "err", w)
            elif quota.admit("m", 1) is not None:
                push(t + took, "429", w)
            else:
                push(t + took, "ok", w)
            continue
        in_flight -= 1
        job = jobs[w]
        if kind == "ok":
            throttle.release("m", "ok")
            ok += 1
            done += 1
            last = t
            if pending:
                jobs[w] = pending.pop()
                push(t, "try", w)
        else:
            status = "throttled" if kind == "429" else "other"
            throttle.release("m", status)
            throttled += kind == "429"
            if trace is not None and kind == "429":
                snap = throttle._models["m"].rate
                trace.append((round(t, 2), snap.rate, snap.ceiling, snap.probing))
            errors += kind != "429"
            attempt = attempts.get(job, 0)
            attempts[job] = attempt + 1
            push(t + policy.delay(min(attempt, 5), throttled=kind == "429"), "try", w)
        for other in list(waiting):  # the engine wakes every waiter on a release
            push(t, "try", other)
            waiting.discard(other)
    wall = (last or 0.0) - (first or 0.0)
    return SimResult(wall, sent, ok, throttled, errors, peak)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rpm", type=int, default=1200)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--model", default="bucket")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--matrix", action="store_true")
    ns = parser.parse_args()
    cells = (
        [
            (m, q, lat, n)
            for m in ("bucket", "window", "minute")
            for q in (600, 1200, 6000)
            for lat in (0.05, 0.3, 1.0)
            for n in (300, 3000)
        ]
        if ns.matrix
        else [(ns.model, ns.rpm, ns.latency, ns.requests)]
    )
    for model, rpm, lat, n in cells:
        r = simulate(
            rpm=rpm,
            latency=lat,
            requests=n,
            quota_model=model,
            error_rate=ns.error_rate,
            drop_rate=ns.drop_rate,
        )
        rate = r.ok / r.wall * 60 / rpm if r.wall else float("inf")
        flag = "" if rate >= 0.9 and r.throttled / r.requests <= 0.02 else "  <-- MISS"
        print(
            f"{model:6} {rpm:5} RPM {lat * 1000:5.0f} ms {n:5}: {rate:5.2f} of quota, "
            f"429 {r.throttled / r.requests:6.1%}, req/min {r.requests / n:4.2f}, "
            f"peak {r.peak_in_flight:3}, {r.wall:6.1f} s{flag}"
        )


if __name__ == "__main__":
    main()
