"""The one attempt loop: every decision about sending one batch, written once.

:func:`attempts` is a generator. It yields what to do next and receives what happened:

* :class:`Admit` — wait for the throttle's permission; the driver sends back ``True`` once
  admitted, ``False`` if the call was aborted while waiting (nothing is sent then);
* :class:`Send` — post these bytes; the driver sends back a :class:`Reply` or :class:`NoReply`;
* :class:`Sleep` — wait this long before the next attempt; the driver must wake at once when the
  call is aborted (the sync driver waits on an event, the async one is cancelled).

It returns the follow-up batches (a re-split or a bisection; ``[]`` when done) or raises the
call's typed error. The sync and async drivers in :mod:`dashscope_embed._client` only perform
the actions (the same split as tenacity's ``BaseRetrying.iter`` or h11's state machine), so the
retry, abort and slot-release rules cannot drift apart between them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass

from ._job import Batch, Job, Outcome

__all__ = ["Admit", "Attempts", "NoReply", "Reply", "Send", "Sleep", "attempts"]


@dataclass(frozen=True)
class Admit:
    """Wait for a slot (and the pacing) of the throttle for about ``tokens`` tokens."""

    tokens: int


@dataclass(frozen=True)
class Send:
    """POST ``body`` to the API's ``path``."""

    path: str
    body: bytes


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before the next attempt (cut short when the call is aborted)."""

    seconds: float


@dataclass(frozen=True)
class Reply:
    """An HTTP answer."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class NoReply:
    """No usable answer: a timeout, a connection or a decoding error."""

    error: Exception
    timeout: bool


Action = Admit | Send | Sleep
Attempts = Generator[Action, "bool | Reply | NoReply | None", list[Batch]]


def attempts(job: Job, batch: Batch, finish: Callable[[Job, Outcome | None], None]) -> Attempts:
    """Send ``batch`` until it is done, re-split, given up on, or the call is aborted.

    Args:
        job: The call's pure state; it classifies every answer.
        batch: The rows to send.
        finish: Frees the request's throttle slot and counts the outcome; called exactly once
            per admitted request, with ``None`` when the request was abandoned (aborted after
            admission, cancelled or interrupted mid-flight).
    """
    attempt = 0
    while not job.aborted:
        admitted = yield Admit(job.estimated_tokens(batch))
        if not admitted:
            break
        outcome: Outcome | None = None
        try:
            if job.aborted:  # the call failed while this batch waited for its slot
                break
            answer = yield Send(job.path, job.body(batch))
            if isinstance(answer, Reply):
                outcome = job.on_response(
                    batch, attempt, answer.status, answer.headers, answer.content
                )
            elif isinstance(answer, NoReply):
                outcome = job.on_transport_error(
                    batch, attempt, answer.error, timeout=answer.timeout
                )
            else:  # pragma: no cover - a driver bug
                raise TypeError(f"expected a Reply or NoReply, got {answer!r}")
        finally:
            finish(job, outcome)
        if outcome.kind == "retry":
            yield Sleep(outcome.delay)
            attempt += 1
            continue
        if outcome.kind == "raise":
            assert outcome.error is not None
            raise outcome.error
        return list(outcome.batches)
    return []
