"""Pins of the attempt loop (``_engine/_attempt.py``) and the distinct-input map (``_distinct.py``).

The ``attempts`` generator is driven by hand: a scripted job returns fixed outcomes and records
every call, and each test sends the generator the answers a driver would, asserting the exact
sequence of actions, the arguments the job saw and every ``finish`` call.

Mutants of ``_distinct.py`` left alive, all equivalent on a 64-bit platform: the ``-1`` fill of
``first`` (every slot is overwritten), ``dtype=np.intp`` dropped from ``np.full`` / ``np.arange``
(numpy's default int is int64 = intp), ``minlength`` dropped from ``np.bincount`` (every distinct
row occurs, so the length is ``count`` anyway) and ``dtype=bool`` dropped from ``done``'s mask
(a float mask selects the same positions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from dashscope_embed._engine._attempt import (
    Admit,
    Attempts,
    NoReply,
    Reply,
    Send,
    Sleep,
    attempts,
)
from dashscope_embed._engine._distinct import Distinct
from dashscope_embed._engine._job import Batch, Outcome
from dashscope_embed._errors import BadRequestError
from dashscope_embed._types import EmbeddingResult, PartialResult

BATCH = Batch((3, 4))


@dataclass
class ScriptedJob:
    """A job whose answers are scripted outcomes; it records what the loop asked of it."""

    outcomes: list[Outcome] = field(default_factory=list)
    path: str = "/scripted/path"
    aborted: bool = False
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def model(self) -> str:
        return "scripted-model"

    def initial_batches(self) -> list[Batch]:  # pragma: no cover - not used by the loop
        return [BATCH]

    def body(self, batch: Batch) -> bytes:
        self.calls.append(("body", batch))
        return b"body-" + bytes(str(len(self.calls)), "ascii")

    def estimated_tokens(self, batch: Batch) -> int:
        self.calls.append(("tokens", batch))
        return 17

    def on_response(
        self, batch: Batch, attempt: int, status: int, headers: Mapping[str, str], body: bytes
    ) -> Outcome:
        self.calls.append(("response", batch, attempt, status, dict(headers), body))
        return self.outcomes.pop(0)

    def on_transport_error(
        self, batch: Batch, attempt: int, exc: Exception, *, timeout: bool, kind: str = ""
    ) -> Outcome:
        self.calls.append(("transport", batch, attempt, exc, timeout, kind))
        return self.outcomes.pop(0)

    def result(self) -> EmbeddingResult:  # pragma: no cover - not used by the loop
        raise NotImplementedError

    def partial(self) -> PartialResult:  # pragma: no cover - not used by the loop
        raise NotImplementedError


@dataclass
class Finishes:
    """Records every ``finish(job, outcome)`` call."""

    calls: list[tuple[Any, Outcome | None]] = field(default_factory=list)

    def __call__(self, job: Any, outcome: Outcome | None) -> None:
        self.calls.append((job, outcome))


def start(job: ScriptedJob, finish: Finishes) -> Attempts:
    return attempts(job, BATCH, finish)


def test_first_action_is_admit_with_the_estimate() -> None:
    """The loop first asks for admission for the job's token estimate of the batch."""
    job, fin = ScriptedJob(), Finishes()
    steps = start(job, fin)
    assert next(steps) == Admit(tokens=17)
    assert job.calls == [("tokens", BATCH)]
    assert fin.calls == []


def test_admitted_then_send_then_done_returns_the_batches() -> None:
    """Admitted, it sends the job's body to the job's path and returns the outcome's batches."""
    done = Outcome("done", batches=(Batch((9,)), Batch((8,))), status=200)
    job, fin = ScriptedJob([done]), Finishes()
    steps = start(job, fin)
    assert next(steps) == Admit(17)
    assert steps.send(True) == Send("/scripted/path", b"body-2")
    assert fin.calls == []
    with pytest.raises(StopIteration) as stop:
        steps.send(Reply(200, {"x-request-id": "r1"}, b"answer"))
    assert stop.value.value == [Batch((9,)), Batch((8,))]
    assert type(stop.value.value) is list
    assert job.calls == [
        ("tokens", BATCH),
        ("body", BATCH),
        ("response", BATCH, 0, 200, {"x-request-id": "r1"}, b"answer"),
    ]
    assert fin.calls == [(job, done)]


def test_done_without_batches_returns_an_empty_list() -> None:
    """A plain "done" returns ``[]`` (no follow-up batches)."""
    done = Outcome("done")
    job, fin = ScriptedJob([done]), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    with pytest.raises(StopIteration) as stop:
        steps.send(Reply(200, {}, b""))
    assert stop.value.value == []
    assert fin.calls == [(job, done)]


def test_not_admitted_sends_nothing_and_finishes_nothing() -> None:
    """Refused admission (aborted while waiting): no Send, no finish, ``[]`` returned."""
    job, fin = ScriptedJob(), Finishes()
    steps = start(job, fin)
    next(steps)
    with pytest.raises(StopIteration) as stop:
        steps.send(False)
    assert stop.value.value == []
    assert job.calls == [("tokens", BATCH)]
    assert fin.calls == []


def test_already_aborted_never_asks_for_admission() -> None:
    """A batch of an aborted call yields no action at all and returns ``[]``."""
    job, fin = ScriptedJob(aborted=True), Finishes()
    steps = start(job, fin)
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert stop.value.value == []
    assert job.calls == []
    assert fin.calls == []


def test_aborted_after_admission_finishes_with_none_and_sends_nothing() -> None:
    """Aborted while the slot was granted: the slot is freed with ``None``, nothing is sent."""
    job, fin = ScriptedJob(), Finishes()
    steps = start(job, fin)
    next(steps)
    job.aborted = True
    with pytest.raises(StopIteration) as stop:
        steps.send(True)
    assert stop.value.value == []
    assert job.calls == [("tokens", BATCH)]
    assert fin.calls == [(job, None)]


def test_retry_sleeps_then_sends_again_with_the_next_attempt_number() -> None:
    """Each retry yields Sleep(delay), then Admit and Send again with attempt 0, 1, 2, ..."""
    r1 = Outcome("retry", delay=1.5, reason="a")
    r2 = Outcome("retry", delay=2.25, reason="b")
    done = Outcome("done", batches=(Batch((1,)),))
    job, fin = ScriptedJob([r1, r2, done]), Finishes()
    steps = start(job, fin)
    actions: list[Any] = [next(steps)]
    actions.append(steps.send(True))
    actions.append(steps.send(Reply(500, {}, b"e1")))
    actions.append(steps.send(None))
    actions.append(steps.send(True))
    actions.append(steps.send(NoReply(OSError("x"), timeout=True)))
    actions.append(steps.send(None))
    actions.append(steps.send(True))
    with pytest.raises(StopIteration) as stop:
        steps.send(Reply(200, {}, b"ok"))
    assert stop.value.value == [Batch((1,))]
    assert actions == [
        Admit(17),
        Send("/scripted/path", b"body-2"),
        Sleep(1.5),
        Admit(17),
        Send("/scripted/path", b"body-5"),
        Sleep(2.25),
        Admit(17),
        Send("/scripted/path", b"body-8"),
    ]
    attempts_seen = [c[2] for c in job.calls if c[0] in ("response", "transport")]
    assert attempts_seen == [0, 1, 2]
    assert fin.calls == [(job, r1), (job, r2), (job, done)]


def test_no_reply_goes_to_on_transport_error_with_its_timeout_flag() -> None:
    """A NoReply is classified by ``on_transport_error(batch, attempt, error, timeout=...)``."""
    exc = OSError("reset")
    job, fin = ScriptedJob([Outcome("done"), Outcome("done")]), Finishes()
    for timeout in (True, False):
        steps = start(job, fin)
        next(steps)
        steps.send(True)
        with pytest.raises(StopIteration):
            steps.send(NoReply(exc, timeout=timeout))
    transports = [c for c in job.calls if c[0] == "transport"]
    assert transports == [
        ("transport", BATCH, 0, exc, True, ""),
        ("transport", BATCH, 0, exc, False, ""),
    ]


def test_raise_outcome_raises_its_error_after_finishing() -> None:
    """A "raise" outcome frees the slot with that outcome, then raises its error."""
    err = BadRequestError("bad", status=400, code="InvalidParameter")
    out = Outcome("raise", error=err, status=400)
    job, fin = ScriptedJob([out]), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    with pytest.raises(BadRequestError) as info:
        steps.send(Reply(400, {}, b"{}"))
    assert info.value is err
    assert fin.calls == [(job, out)]


def test_split_returns_the_new_batches() -> None:
    """A "split" outcome returns its batches as a list (the driver schedules them)."""
    parts = (Batch((3,)), Batch((4,)))
    out = Outcome("split", batches=parts, reason="locate_too_long")
    job, fin = ScriptedJob([out]), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    with pytest.raises(StopIteration) as stop:
        steps.send(Reply(400, {}, b""))
    assert stop.value.value == [Batch((3,)), Batch((4,))]
    assert fin.calls == [(job, out)]


def test_thrown_into_mid_request_finishes_with_none_and_propagates() -> None:
    """An exception thrown in while the request is in flight frees the slot with ``None``."""
    job, fin = ScriptedJob(), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    with pytest.raises(KeyboardInterrupt):
        steps.throw(KeyboardInterrupt())
    assert fin.calls == [(job, None)]


def test_closed_mid_request_finishes_with_none() -> None:
    """A generator closed (cancelled) mid-request frees the slot exactly once with ``None``."""
    job, fin = ScriptedJob(), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    steps.close()
    assert fin.calls == [(job, None)]


def test_thrown_into_while_waiting_for_admission_finishes_nothing() -> None:
    """Interrupted before admission: no slot was taken, so ``finish`` is not called."""
    job, fin = ScriptedJob(), Finishes()
    steps = start(job, fin)
    next(steps)
    with pytest.raises(KeyboardInterrupt):
        steps.throw(KeyboardInterrupt())
    assert fin.calls == []


def test_thrown_into_while_sleeping_does_not_finish_again() -> None:
    """Interrupted during a retry's Sleep: the slot was already freed once, never twice."""
    r1 = Outcome("retry", delay=0.5)
    job, fin = ScriptedJob([r1]), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    assert steps.send(Reply(503, {}, b"")) == Sleep(0.5)
    with pytest.raises(KeyboardInterrupt):
        steps.throw(KeyboardInterrupt())
    assert fin.calls == [(job, r1)]


def test_aborted_during_retry_sleep_stops_before_admission() -> None:
    """A call aborted while a batch slept returns ``[]`` without asking for admission again."""
    r1 = Outcome("retry", delay=0.5)
    job, fin = ScriptedJob([r1]), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    steps.send(Reply(503, {}, b""))
    job.aborted = True
    with pytest.raises(StopIteration) as stop:
        steps.send(None)
    assert stop.value.value == []
    assert [c[0] for c in job.calls] == ["tokens", "body", "response"]
    assert fin.calls == [(job, r1)]


def test_an_unknown_answer_is_a_driver_bug() -> None:
    """Anything but a Reply or NoReply after a Send is a TypeError; the slot is still freed."""
    job, fin = ScriptedJob(), Finishes()
    steps = start(job, fin)
    next(steps)
    steps.send(True)
    with pytest.raises(TypeError) as info:
        steps.send("junk")  # type: ignore[arg-type]
    assert str(info.value) == "expected a Reply or NoReply, got 'junk'"
    assert fin.calls == [(job, None)]


def test_action_dataclasses_hold_their_fields() -> None:
    """The actions and answers are plain frozen records of what they carry."""
    exc = ValueError("v")
    assert (Admit(3).tokens, Send("/p", b"b").path, Send("/p", b"b").body) == (3, "/p", b"b")
    assert Sleep(0.25).seconds == 0.25
    reply = Reply(429, {"a": "b"}, b"c")
    assert (reply.status, reply.headers, reply.content) == (429, {"a": "b"}, b"c")
    no = NoReply(exc, timeout=True)
    assert (no.error, no.timeout) == (exc, True)


# --- Distinct -----------------------------------------------------------------------------


def test_distinct_identity() -> None:
    """All-distinct keys: identity map; rows are positions, ``pick(None)`` is ``None``."""
    d = Distinct(["a", "b", "c"])
    assert (d.size, d.count, d.identity) == (3, 3, True)
    assert d.inverse.tolist() == [0, 1, 2]
    assert d.inverse.dtype == np.intp
    assert d.first == [0, 1, 2]
    assert d.origin([2, 0]) == (2, 0)
    assert d.inputs([0, 2]) == 2
    assert d.pick(None) is None
    picked = d.pick([2, 1])
    assert picked is not None
    assert picked.tolist() == [2, 1]
    assert d.done([2, 0]) == [0, 2]
    empty = d.pick([])
    assert empty is not None
    assert empty.tolist() == []


def test_distinct_with_duplicates() -> None:
    """Repeated keys share one row; every view maps rows back to all their positions."""
    d = Distinct(["x", "y", "x", "z", "y", "x"])
    assert (d.size, d.count, d.identity) == (6, 3, False)
    assert d.inverse.tolist() == [0, 1, 0, 2, 1, 0]
    assert d.first == [0, 1, 3]
    assert type(d.first) is list
    assert d.origin([1]) == (1, 4)
    assert d.origin([2, 0]) == (0, 2, 3, 5)
    assert d.origin([0]) == (0, 2, 5)  # the cached positions are reused
    assert d.origin([]) == ()
    assert d.inputs([0]) == 3
    assert d.inputs([1, 2]) == 3
    assert d.inputs([]) == 0
    none = d.pick([])
    assert none is not None
    assert none.tolist() == []
    assert type(d.inputs([1, 2])) is int
    all_rows = d.pick(None)
    assert all_rows is not None
    assert all_rows.tolist() == [0, 1, 0, 2, 1, 0]
    some = d.pick([5, 3, 1])
    assert some is not None
    assert some.tolist() == [0, 2, 1]
    assert d.done([0]) == [0, 2, 5]
    assert d.done([2, 1]) == [1, 3, 4]
    assert d.done([]) == []
    assert type(d.done([1])) is list


def test_distinct_first_is_the_first_position_of_each_key() -> None:
    """``first[k]`` is where key ``k`` first occurs, even when it repeats later."""
    d = Distinct(["b", "b", "a", "b", "a", "c"])
    assert d.first == [0, 2, 5]
    assert d.inverse.tolist() == [0, 0, 1, 0, 1, 2]


def test_distinct_empty() -> None:
    """No keys: an empty identity map."""
    d = Distinct([])
    assert (d.size, d.count, d.identity, d.first) == (0, 0, True, [])
    assert d.inverse.dtype == np.intp
    assert d.inputs([]) == 0
    assert d.done([]) == []
    assert d.origin([]) == ()
