"""Pins of the shared job rules (``_engine/_job.py``), driven directly on a text job.

No HTTP: each test builds a :class:`TextJob` and hands ``on_response`` / ``on_transport_error``
crafted bytes, asserting the exact :class:`Outcome` (kind, delay, batches, status, pause), the
typed error and what the job stored. The jitter source is fixed, so every delay is exact.

Mutants left alive, all equivalent: ``timeout=None`` for a non-JSON 200 (falsy like ``False``,
and ``kind`` is given), ``status=None`` dropped from a transport retry (the default),
``dtype=np.intp`` dropped in ``_put_dense`` (batches are never empty, and int64 = intp), and the
``kind`` default of the ``Job`` protocol stub (never executed).
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import numpy as np
import pytest

from dashscope_embed._engine._job import (
    Batch,
    JobContext,
    Outcome,
    batch_size,
    check_dimension,
    chunks,
)
from dashscope_embed._engine._retry import RetryPolicy
from dashscope_embed._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    BatchSizeError,
    DashScopeError,
    InputTooLongError,
    InvalidInputError,
    RateLimitError,
    ServerError,
)
from dashscope_embed._models import get_model
from dashscope_embed._types import Usage
from dashscope_embed.text._job import TextJob, text_job

MODEL = "text-embedding-v4"


class FixedRng(random.Random):
    """A jitter source that always returns 1.0 (so a delay is the full backoff step)."""

    def random(self) -> float:
        return 1.0


def policy(max_retries: int = 2) -> RetryPolicy:
    """Backoff steps 0.5, 1, 2... (3, 6, 12... when throttled), capped at 20 s."""
    return RetryPolicy(
        max_retries=max_retries,
        base_delay=0.5,
        max_delay=20.0,
        throttle_base_delay=3.0,
        rng=FixedRng(0),
    )


def make(
    texts: list[str],
    *,
    output_type: str = "dense",
    max_retries: int = 2,
    limits: list[tuple[str, int]] | None = None,
    progress: list[int] | None = None,
    model: str = MODEL,
) -> TextJob:
    calls = limits if limits is not None else []
    job = text_job(
        texts,
        model=model,
        text_type=None,
        dimension=None,
        output_type=output_type,  # type: ignore[arg-type]
        instruct=None,
        max_batch_size=None,
        on_progress=progress.append if progress is not None else None,
        ctx=JobContext(
            region=None,
            policy=policy(max_retries),
            learned={},
            on_limit=lambda m, n: calls.append((m, n)),
        ),
    )
    assert isinstance(job, TextJob)
    return job


def ok(rows: list[list[float]], *, tokens: int = 7, rid: str = "body-rid", **extra: Any) -> bytes:
    items = [{"embedding": v, "text_index": i, **extra} for i, v in enumerate(rows)]
    return json.dumps(
        {"output": {"embeddings": items}, "usage": {"total_tokens": tokens}, "request_id": rid}
    ).encode()


def err(code: str, message: str, rid: str = "err-rid") -> bytes:
    return json.dumps({"code": code, "message": message, "request_id": rid}).encode()


TOO_LONG = "Range of input length should be [1, 8192]"
TOO_MANY = "batch size is invalid, it should not be larger than {}."


# --- success and malformed 200s -------------------------------------------------------------


def test_a_200_is_done_with_its_tokens_and_rows() -> None:
    """A good 200 stores the vectors and is "done" with status 200, the billed tokens, the rows."""
    job = make(["a", "bb"])
    out = job.on_response(Batch((0, 1)), 0, 200, {}, ok([[1.0, 2.0], [3.0, 4.0]], tokens=9))
    assert out == Outcome("done", status=200, tokens=9, rows=2)
    res = job.result()
    assert res.embeddings.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert res.usage == Usage(total_tokens=9, requests=1)
    assert res.request_ids == ("body-rid",)


def test_the_request_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """Every answer is logged once: model, rows, 1-based attempt, status and request id."""
    job = make(["a", "b"])
    with caplog.at_level(logging.DEBUG, logger="dashscope_embed"):
        job.on_response(Batch((0, 1)), 1, 200, {"x-request-id": "h-1"}, ok([[1.0], [2.0]]))
    assert [r.getMessage() for r in caplog.records] == [
        "POST text-embedding-v4 rows=2 attempt=2 -> HTTP 200 request_id=h-1"
    ]
    assert [r.name for r in caplog.records] == ["dashscope_embed"]


def test_a_non_json_200_is_retried_like_a_connection_fault() -> None:
    """An HTML page with status 200 is retried with backoff, reason "non-JSON answer"."""
    job = make(["a"])
    out = job.on_response(Batch((0,)), 1, 200, {}, b"<html>proxy</html>")
    assert out == Outcome("retry", delay=1.0, reason="non-JSON answer")


def test_non_json_200s_until_the_retries_run_out_raise_a_connection_error() -> None:
    """The last non-JSON 200 raises APIConnectionError naming the attempts and the inputs."""
    job = make(["a", "b", "a"])
    out = job.on_response(Batch((0,)), 2, 200, {}, b"<html>")
    assert out.kind == "raise"
    assert (out.status, out.delay, out.batches, out.retry_after) == (None, 0.0, (), None)
    assert type(out.error) is APIConnectionError
    assert out.error.input_indices == (0, 2)
    assert str(out.error).startswith("non-JSON answer after 3 attempts: NotJSONError(")


def test_a_malformed_200_without_a_code_raises_a_protocol_error() -> None:
    """A JSON 200 of the wrong shape and no error code raises ProtocolError (status 200)."""
    job = make(["a", "b", "a"])
    body = b'{"output": {"embeddings": []}}'
    out = job.on_response(Batch((0, 1)), 0, 200, {"x-request-id": "h-2"}, body)
    assert out.kind == "raise"
    assert out.status == 200
    e = out.error
    assert type(e) is APIStatusError
    assert (e.status, e.code, e.request_id, e.input_indices) == (
        200,
        "ProtocolError",
        "h-2",
        (0, 1, 2),
    )
    assert e.message == "malformed success response: expected 2 embeddings, got 0"
    assert out == Outcome("raise", error=e, status=200)


def test_a_200_carrying_a_throttling_code_is_a_429() -> None:
    """A business Throttling code in a 200 is a RateLimitError: retried, counted as 429."""
    job = make(["a"])
    body = err("Throttling.RateQuota", "Requests rate limit exceeded")
    out = job.on_response(Batch((0,)), 0, 200, {"retry-after": "2"}, body)
    assert out == Outcome(
        "retry", delay=2.0, reason="Throttling.RateQuota", status=429, retry_after=2.0
    )


def test_a_last_200_carrying_a_throttling_code_raises_with_the_hint() -> None:
    """The final business Throttling 200 raises RateLimitError holding the capped hint."""
    job = make(["a"])
    body = err("Throttling", "slow down")
    out = job.on_response(Batch((0,)), 2, 200, {"retry-after": "30"}, body)
    e = out.error
    assert type(e) is RateLimitError
    assert (e.status, e.retry_after) == (200, 20.0)
    assert out == Outcome("raise", error=e, status=429, retry_after=20.0)


def test_a_200_carrying_a_bad_request_code_raises_it() -> None:
    """A business InvalidParameter code in a 200 raises BadRequestError with status 200."""
    job = make(["a", "b"])
    out = job.on_response(Batch((1,)), 0, 200, {}, err("InvalidParameter", "nope", "b-1"))
    e = out.error
    assert type(e) is BadRequestError
    assert (e.status, e.code, e.message, e.request_id, e.input_indices) == (
        200,
        "InvalidParameter",
        "nope",
        "b-1",
        (1,),
    )
    assert out == Outcome("raise", error=e, status=200)


def test_a_200_with_a_business_code_and_a_model_typo_gets_a_hint() -> None:
    """A business ModelNotFound in a 200 passes the model name for a did-you-mean hint."""
    job = make(["a"], model="text-embedding-v44")
    out = job.on_response(Batch((0,)), 0, 200, {}, err("ModelNotFound", "Model not exist."))
    assert out.error is not None
    assert type(out.error) is BadRequestError
    assert out.error.hint == "did you mean text-embedding-v4?"


def test_a_404_names_the_model_it_suspects() -> None:
    """An HTTP error answer is mapped with the model name (did-you-mean hint)."""
    job = make(["a"], model="text-embedding-v44")
    out = job.on_response(Batch((0,)), 0, 404, {}, err("ModelNotFound", "Model not exist."))
    assert out.error is not None
    assert out.error.hint == "did you mean text-embedding-v4?"
    assert out.status == 404


# --- retry decisions ------------------------------------------------------------------------


def test_a_500_is_retried_with_backoff_until_the_last_attempt() -> None:
    """5xx: retried while attempts remain (0.5 s, 1 s), then the ServerError is raised."""
    job = make(["a", "b"])
    body = err("InternalError", "boom")
    assert job.on_response(Batch((0,)), 0, 500, {}, body) == Outcome(
        "retry", delay=0.5, reason="InternalError", status=500
    )
    assert job.on_response(Batch((0,)), 1, 500, {}, body) == Outcome(
        "retry", delay=1.0, reason="InternalError", status=500
    )
    last = job.on_response(Batch((1,)), 2, 500, {"x-request-id": "h"}, body)
    e = last.error
    assert type(e) is ServerError
    assert (e.status, e.code, e.input_indices, e.request_id) == (
        500,
        "InternalError",
        (1,),
        "err-rid",
    )
    assert last == Outcome("raise", error=e, status=500)


def test_a_retry_without_a_code_is_named_by_its_status() -> None:
    """A 502 with no DashScope code retries with the status as its reason."""
    job = make(["a"])
    out = job.on_response(Batch((0,)), 0, 502, {}, b"bad gateway")
    assert out == Outcome("retry", delay=0.5, reason="Unknown", status=502)
    out = job.on_response(Batch((0,)), 0, 502, {}, b'{"message": "bad gateway"}')
    assert out == Outcome("retry", delay=0.5, reason="502", status=502)


def test_a_5xx_honours_retry_after_but_sets_no_pause() -> None:
    """A 503's Retry-After sets the batch's delay; only a 429 passes a pause to the throttle."""
    job = make(["a"])
    out = job.on_response(Batch((0,)), 0, 503, {"retry-after": "4"}, err("X", "busy"))
    assert out == Outcome("retry", delay=4.0, reason="X", status=503, retry_after=None)


def test_a_429_without_retry_after_uses_the_throttle_backoff() -> None:
    """A 429 without a hint waits the throttling step (3 s, then 6 s) and sets no pause."""
    job = make(["a"])
    body = err("Throttling", "slow down")
    assert job.on_response(Batch((0,)), 0, 429, {}, body) == Outcome(
        "retry", delay=3.0, reason="Throttling", status=429
    )
    assert job.on_response(Batch((0,)), 1, 429, {}, body) == Outcome(
        "retry", delay=6.0, reason="Throttling", status=429
    )


def test_a_429_retry_after_is_capped_by_max_delay() -> None:
    """Retry-After above ``max_delay`` is capped, for the delay and the throttle's pause alike."""
    job = make(["a"])
    out = job.on_response(Batch((0,)), 0, 429, {"retry-after": "100"}, err("Throttling", "x"))
    assert out == Outcome("retry", delay=20.0, reason="Throttling", status=429, retry_after=20.0)


def test_a_last_429_raises_with_the_pause() -> None:
    """The final 429 raises RateLimitError and still passes the server's pause along."""
    job = make(["a"])
    out = job.on_response(Batch((0,)), 2, 429, {"retry-after": "1.5"}, err("Throttling", "x"))
    e = out.error
    assert type(e) is RateLimitError
    assert e.retry_after == 1.5
    assert out == Outcome("raise", error=e, status=429, retry_after=1.5)


def test_a_billing_429_is_never_retried() -> None:
    """A 429 that waiting cannot clear is raised at once."""
    job = make(["a"])
    out = job.on_response(Batch((0,)), 0, 429, {}, err("PrepaidBillOverdue", "pay"))
    assert out.kind == "raise"
    assert type(out.error) is RateLimitError


def test_a_plain_400_is_raised_at_once() -> None:
    """Another 4xx is never retried, even on the first attempt."""
    job = make(["a", "b", "a"])
    out = job.on_response(Batch((0,)), 0, 400, {}, err("InvalidParameter", "bad"))
    e = out.error
    assert type(e) is BadRequestError
    assert e.input_indices == (0, 2)
    assert out == Outcome("raise", error=e, status=400)


def test_a_retry_decision_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A retried status answer logs the batch, the status, the code, the delay, the request id."""
    job = make(["a", "b", "c"])
    with caplog.at_level(logging.DEBUG, logger="dashscope_embed"):
        job.on_response(Batch((2,)), 0, 500, {}, err("InternalError", "boom", "r-9"))
    assert [r.getMessage() for r in caplog.records] == [
        "POST text-embedding-v4 rows=1 attempt=1 -> HTTP 500 request_id=None",
        "retrying batch 2 after HTTP 500 InternalError in 0.50s (request_id=r-9)",
    ]


# --- transport errors -----------------------------------------------------------------------


def test_transport_errors_are_retried_then_raised_by_kind() -> None:
    """Timeouts and connection errors retry with backoff, then raise their own class."""
    job = make(["a", "b", "a"])
    exc = OSError("reset")
    b = Batch((0,))
    assert job.on_transport_error(b, 0, exc, timeout=True) == Outcome(
        "retry", delay=0.5, reason="timeout"
    )
    assert job.on_transport_error(b, 1, exc, timeout=False) == Outcome(
        "retry", delay=1.0, reason="connection error"
    )
    assert job.on_transport_error(b, 1, exc, timeout=False, kind="odd") == Outcome(
        "retry", delay=1.0, reason="odd"
    )
    t = job.on_transport_error(b, 2, exc, timeout=True)
    assert type(t.error) is APITimeoutError
    assert str(t.error) == "timeout after 3 attempts: OSError('reset')"
    assert t.error.input_indices == (0, 2)
    assert t == Outcome("raise", error=t.error)
    c = job.on_transport_error(Batch((1,)), 2, exc, timeout=False)
    assert type(c.error) is APIConnectionError
    assert str(c.error) == "connection error after 3 attempts: OSError('reset')"
    assert c.error.input_indices == (1,)


def test_a_transport_retry_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A retried transport failure logs the batch, the kind, the error and the delay."""
    job = make(["a", "b"])
    with caplog.at_level(logging.DEBUG, logger="dashscope_embed"):
        job.on_transport_error(Batch((1,)), 0, OSError("x"), timeout=True)
    assert [r.getMessage() for r in caplog.records] == [
        "retrying batch 1 after timeout (OSError('x')) in 0.50s"
    ]


def test_no_retries_means_the_first_failure_raises() -> None:
    """With ``max_retries=0`` the first transport failure is raised."""
    job = make(["a"], max_retries=0)
    out = job.on_transport_error(Batch((0,)), 0, OSError("x"), timeout=False)
    assert type(out.error) is APIConnectionError
    assert str(out.error) == "connection error after 1 attempts: OSError('x')"


# --- re-split and bisection -----------------------------------------------------------------


def test_a_smaller_server_row_limit_re_splits_and_is_learned() -> None:
    """ "should not be larger than 2" splits a 5-row batch into chunks of 2 and reports it."""
    limits: list[tuple[str, int]] = []
    job = make(list("abcdefg"), limits=limits)
    out = job.on_response(
        Batch((1, 2, 3, 4, 5)), 0, 400, {}, err("InvalidParameter", TOO_MANY.format(2))
    )
    assert out == Outcome(
        "split",
        batches=(Batch((1, 2)), Batch((3, 4)), Batch((5,))),
        reason="batch_size",
        status=400,
    )
    assert limits == [(MODEL, 2)]


def test_a_row_limit_of_one_splits_into_singles() -> None:
    """A limit of 1 splits every row into its own batch."""
    limits: list[tuple[str, int]] = []
    job = make(list("abc"), limits=limits)
    out = job.on_response(Batch((0, 1)), 0, 400, {}, err("InvalidParameter", TOO_MANY.format(1)))
    assert out.batches == (Batch((0,)), Batch((1,)))
    assert limits == [(MODEL, 1)]


def test_a_row_limit_the_batch_already_meets_is_raised() -> None:
    """A batch no larger than the server's limit cannot be split further: the error is raised."""
    limits: list[tuple[str, int]] = []
    job = make(list("abc"), limits=limits)
    out = job.on_response(Batch((0, 1)), 0, 400, {}, err("InvalidParameter", TOO_MANY.format(2)))
    e = out.error
    assert type(e) is BatchSizeError
    assert e.limit == 2
    assert out == Outcome("raise", error=e, status=400)
    assert limits == []


def test_a_row_limit_of_zero_is_raised_not_split() -> None:
    """A nonsensical limit of 0 is raised as it is (never a split into empty chunks)."""
    limits: list[tuple[str, int]] = []
    job = make(list("abc"), limits=limits)
    out = job.on_response(Batch((0, 1)), 0, 400, {}, err("InvalidParameter", TOO_MANY.format(0)))
    assert type(out.error) is BatchSizeError
    assert out.kind == "raise"
    assert limits == []


def test_a_too_long_batch_is_bisected() -> None:
    """ "Range of input length" on several rows splits them in halves to find the long one."""
    job = make(list("abcdef"))
    body = err("InvalidParameter", TOO_LONG)
    assert job.on_response(Batch((0, 1, 2, 3, 4)), 0, 400, {}, body) == Outcome(
        "split", batches=(Batch((0, 1)), Batch((2, 3, 4))), reason="locate_too_long", status=400
    )
    assert job.on_response(Batch((4, 5)), 0, 400, {}, body).batches == (Batch((4,)), Batch((5,)))


def test_a_single_too_long_input_is_named() -> None:
    """Bisected down to one row, the error names its every position and the model's limit."""
    job = make(["long", "b", "long"])
    out = job.on_response(
        Batch((0,)), 0, 400, {"x-request-id": "h"}, err("InvalidParameter", TOO_LONG, "r-5")
    )
    e = out.error
    assert type(e) is InputTooLongError
    assert e.message == (
        "input 0 is longer than text-embedding-v4 accepts (8192 tokens per text); "
        f"shorten or split it. Server said: {TOO_LONG}"
    )
    assert (e.status, e.code, e.request_id, e.input_indices) == (
        400,
        "InvalidParameter",
        "r-5",
        (0, 2),
    )
    assert out == Outcome("raise", error=e, status=400)


def test_a_single_too_long_duplicate_names_its_first_position() -> None:
    """A long text repeated at positions 1 and 3 is named as input 1 (its first position)."""
    job = make(["a", "long", "b", "long"])
    out = job.on_response(Batch((1,)), 0, 400, {}, err("InvalidParameter", TOO_LONG))
    assert out.error is not None
    assert out.error.input_indices == (1, 3)
    assert out.error.message.startswith("input 1 is longer than")


def test_a_re_split_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A server row limit logs the new limit and the size of the batch it re-splits."""
    job = make(list("abc"))
    with caplog.at_level(logging.DEBUG, logger="dashscope_embed"):
        job.on_response(Batch((0, 1, 2)), 0, 400, {}, err("InvalidParameter", TOO_MANY.format(2)))
    assert caplog.records[-1].getMessage() == "server row limit 2: re-splitting batch of 3"


# --- batch_size, check_dimension, chunks ----------------------------------------------------


def test_batch_size_rules() -> None:
    """The caller's size wins over the model's; a learned limit caps either."""
    spec = get_model(MODEL)
    assert batch_size(spec, None, None) == 10
    assert batch_size(spec, 3, None) == 3
    assert batch_size(spec, 1, None) == 1
    assert batch_size(spec, 30, None) == 30
    assert batch_size(spec, None, 4) == 4
    assert batch_size(spec, 3, 4) == 3
    assert batch_size(spec, 6, 4) == 4
    assert batch_size(spec, None, 12) == 10


@pytest.mark.parametrize("bad", [0, -1, True, False, 2.0, "3"])
def test_batch_size_refuses_a_non_positive_int(bad: Any) -> None:
    """``max_batch_size`` must be an int >= 1 (a bool is not an int here)."""
    with pytest.raises(InvalidInputError) as info:
        batch_size(get_model(MODEL), bad, None)
    assert str(info.value) == f"max_batch_size must be an int >= 1, got {bad!r}"
    assert info.value.rule == "max_batch_size"
    assert info.value.index is None


def test_check_dimension_accepts_what_the_model_returns() -> None:
    """None, a listed dimension, a fixed model's own dimension, anything for unknown models."""
    assert check_dimension(None, get_model(MODEL)) is None
    assert check_dimension(1024, get_model(MODEL)) is None
    assert check_dimension(64, get_model(MODEL)) is None
    assert check_dimension(1536, get_model("text-embedding-v1")) is None
    assert check_dimension(7, get_model("some-new-model")) is None


@pytest.mark.parametrize(
    ("dimension", "model", "message"),
    [
        (True, MODEL, "dimension must be an int, got True"),
        ("1024", MODEL, "dimension must be an int, got '1024'"),
        (1024.0, MODEL, "dimension must be an int, got 1024.0"),
        (
            1024,
            "text-embedding-v1",
            "text-embedding-v1 has a fixed dimension of 1536; dimension=1024 is not allowed",
        ),
        (
            1000,
            MODEL,
            "dimension=1000 is not allowed for text-embedding-v4; "
            "allowed: 2048, 1536, 1024, 768, 512, 256, 128, 64",
        ),
    ],
)
def test_check_dimension_refuses_with_the_allowed_values(
    dimension: Any, model: str, message: str
) -> None:
    """A dimension the model cannot return is refused, naming what is allowed."""
    with pytest.raises(InvalidInputError) as info:
        check_dimension(dimension, get_model(model))
    assert str(info.value) == message
    assert info.value.rule == "dimension"


def test_check_dimension_sorts_the_allowed_values_descending() -> None:
    """The allowed list is largest first whatever the catalog order."""
    from dataclasses import replace

    spec = replace(get_model(MODEL), dimensions=(64, 1024, 256))
    with pytest.raises(InvalidInputError) as info:
        check_dimension(100, spec)
    assert str(info.value).endswith("allowed: 1024, 256, 64")


def test_chunks() -> None:
    """Consecutive batches of ``size`` positions, the last one shorter."""
    assert chunks(range(5), 2) == [Batch((0, 1)), Batch((2, 3)), Batch((4,))]
    assert chunks([7, 8, 9], 3) == [Batch((7, 8, 9))]
    assert chunks([7, 8, 9], 5) == [Batch((7, 8, 9))]
    assert chunks([], 3) == []
    assert chunks([4, 5], 1) == [Batch((4,)), Batch((5,))]


def test_outcome_defaults() -> None:
    """An Outcome carries nothing but its kind by default."""
    o = Outcome("done")
    assert (o.delay, o.batches, o.error, o.reason, o.status, o.tokens, o.rows) == (
        0.0,
        (),
        None,
        "",
        None,
        0,
        0,
    )
    assert o.retry_after is None


# --- Assembly: store, partial, result -------------------------------------------------------


def test_answers_are_stored_in_place_and_counted() -> None:
    """Rows land at their positions whatever the answer order; usage and request ids add up."""
    progress: list[int] = []
    job = make(["a", "b", "c", "d"], progress=progress)
    job.on_response(Batch((2, 3)), 0, 200, {}, ok([[3.0, 0.0], [4.0, 0.0]], tokens=5, rid="r-b"))
    part = job.partial()
    assert part.rows == (2, 3)
    assert part.result.embeddings.tolist() == [[3.0, 0.0], [4.0, 0.0]]
    assert part.result.usage == Usage(total_tokens=5, requests=1)
    job.on_response(Batch((0, 1)), 0, 200, {}, ok([[1.0, 0.0], [2.0, 0.0]], tokens=6, rid="r-a"))
    res = job.result()
    assert res.embeddings.tolist() == [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]]
    assert res.embeddings.dtype == np.float32
    assert res.usage == Usage(total_tokens=11, requests=2)
    assert res.request_ids == ("r-a", "r-b")  # by first row, not by arrival
    assert res.dimension == 2
    assert progress == [2, 2]
    assert job._done == 4


def test_duplicates_are_stored_once_and_fanned_out() -> None:
    """A text repeated in the input is one row on the wire and every position's vector."""
    progress: list[int] = []
    job = make(["x", "y", "x", "x"], progress=progress)
    assert job.initial_batches() == [Batch((0, 1))]
    job.on_response(Batch((0,)), 0, 200, {}, ok([[1.0, 1.0]], rid="r-x"))
    part = job.partial()
    assert part.rows == (0, 2, 3)
    assert part.result.embeddings.tolist() == [[1.0, 1.0]] * 3
    assert progress == [3]
    job.on_response(Batch((1,)), 0, 200, {}, ok([[2.0, 2.0]], rid="r-y"))
    res = job.result()
    assert res.embeddings.tolist() == [[1.0, 1.0], [2.0, 2.0], [1.0, 1.0], [1.0, 1.0]]
    assert progress == [3, 1]
    assert job._done == 2
    assert job._rows_done == [0, 1]


def test_nothing_stored_gives_an_empty_partial() -> None:
    """Before any answer, ``partial()`` holds no rows and no usage."""
    job = make(["a", "b"])
    part = job.partial()
    assert part.rows == ()
    assert part.result.embeddings.shape == (0, 0)
    assert part.result.usage == Usage()


def test_an_answer_of_another_dimension_is_a_protocol_fault() -> None:
    """A later answer whose vectors have another dimension raises ProtocolError (status 200)."""
    job = make(["a", "b", "a"])
    job.on_response(Batch((1,)), 0, 200, {}, ok([[1.0, 2.0]]))
    with pytest.raises(APIStatusError) as info:
        job.on_response(Batch((0,)), 0, 200, {}, ok([[1.0, 2.0, 3.0]], rid="r-3"))
    e = info.value
    assert e.message == "server returned 3-d vectors after 2-d ones"
    assert (e.status, e.code, e.request_id, e.input_indices) == (
        200,
        "ProtocolError",
        "r-3",
        (0, 2),
    )
    assert job.partial().rows == (1,)


def test_result_before_every_row_is_an_internal_error() -> None:
    """``result()`` refuses to assemble a call with rows missing."""
    job = make(["a", "b"])
    job.on_response(Batch((0,)), 0, 200, {}, ok([[1.0]]))
    with pytest.raises(DashScopeError) as info:
        job.result()
    assert str(info.value) == "internal error: 1 of 2 inputs embedded"


def test_sparse_rows_are_stored_too() -> None:
    """Sparse-only answers store their sparse rows and count the batch (no dense array)."""
    job = make(["a", "b", "a"], output_type="sparse")
    sparse = [{"index": 3, "value": 0.5, "token": "t"}]
    job.on_response(Batch((0, 1)), 0, 200, {}, ok([[0.0], [0.0]], sparse_embedding=sparse))
    res = job.result()
    assert res.sparse is not None
    assert [v.indices for v in res.sparse] == [(3,), (3,), (3,)]
    assert res.embeddings.shape == (3, 0)
    assert res.dimension is None
