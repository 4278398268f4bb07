"""Wire bodies, batching, ordering, retries and errors of the core clients (sync and async)."""

from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest

from dashscope_embed import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentModerationError,
    InputTooLongError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

from .conftest import KEY, Harness, error, ok_body


def test_body_and_headers_for_every_knob(harness: Harness) -> None:
    """Each option lands in `parameters` exactly as given, with auth and workspace headers."""
    c = harness.make(workspace="ws-42")
    harness.embed(
        ["hi"],
        c,
        model="text-embedding-v4",
        text_type="query",
        dimension=512,
        output_type="dense&sparse",
        instruct="Given a question, find answers",
    )
    req = harness.server.requests[0]
    assert req.url.path == "/api/v1/services/embeddings/text-embedding/text-embedding"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["x-dashscope-workspace"] == "ws-42"
    assert req.headers["content-type"] == "application/json"
    assert harness.server.bodies[0] == {
        "model": "text-embedding-v4",
        "input": {"texts": ["hi"]},
        "parameters": {
            "text_type": "query",
            "dimension": 512,
            "output_type": "dense&sparse",
            "instruct": "Given a question, find answers",
        },
    }


def test_defaults_send_document_and_no_extra_parameters(harness: Harness) -> None:
    """By default only text_type=document is sent (dense output, server default dimension)."""
    harness.embed(["a"])
    assert harness.server.bodies[0]["parameters"] == {"text_type": "document"}


def test_batches_follow_model_row_limit_and_results_keep_input_order(harness: Harness) -> None:
    """25 texts for v4 go out as 10+10+5 and come back in input order despite shuffled replies."""
    texts = ["x" * (i + 1) for i in range(25)]
    res = harness.embed(texts)
    assert sorted(len(t) for t in harness.server.sent_texts) == [5, 10, 10]
    assert sorted(t for batch in harness.server.sent_texts for t in batch) == sorted(texts)
    assert res.embeddings.dtype == np.float32
    assert res.embeddings.shape == (25, 4)
    assert res.embeddings[:, 0].tolist() == [float(i + 1) for i in range(25)]
    assert res.usage.total_tokens == 50
    assert res.usage.requests == 3
    assert len(res.request_ids) == 3


@pytest.mark.parametrize(
    ("model", "rows"),
    [("text-embedding-v1", 25), ("qwen3.7-text-embedding", 20), ("my-new-model", 10)],
)
def test_row_limit_per_model(harness: Harness, model: str, rows: int) -> None:
    """Each model's catalog row limit (or the conservative default for unknown names) is used."""
    harness.embed([f"t{i}" for i in range(30)], model=model)
    assert max(len(b) for b in harness.server.sent_texts) == rows


def test_max_batch_size_override(harness: Harness) -> None:
    """A caller's max_batch_size caps the rows per request."""
    harness.embed([f"t{i}" for i in range(7)], max_batch_size=3)
    assert sorted(len(b) for b in harness.server.sent_texts) == [1, 3, 3]


def test_empty_list_sends_nothing(harness: Harness) -> None:
    """An empty list returns an empty (0, d) result with no request."""
    res = harness.embed([])
    assert harness.server.requests == []
    assert res.embeddings.shape == (0, 1024)
    assert len(res) == 0


def test_resplit_on_batch_size_error_is_remembered(harness: Harness) -> None:
    """A 'not larger than 6' answer re-splits to 6, and later calls use 6 from the start."""
    msg = (
        "<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, "
        "it should not be larger than 6.: input.contents"
    )
    harness.server.script = [error(400, "InvalidParameter", msg)]
    c = harness.make(max_concurrency=1)
    res = harness.embed([f"t{i}" for i in range(10)], c)
    assert [len(b) for b in harness.server.sent_texts] == [10, 6, 4]
    assert res.embeddings.shape[0] == 10
    assert c.learned_limits == {"text-embedding-v4": 6}
    harness.server.requests.clear()
    harness.embed([f"t{i}" for i in range(12)], c)
    assert [len(b) for b in harness.server.sent_texts] == [6, 6]


def test_retry_only_the_failed_batch_with_backoff(harness: Harness) -> None:
    """A 429 on the second batch retries that batch only; finished batches are never re-sent."""
    texts = [f"t{i}" for i in range(25)]
    first_ok = None

    def second(body: dict) -> httpx.Response:
        return error(
            429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."
        )

    harness.server.script = [
        lambda b: httpx.Response(200, json=ok_body(b["input"]["texts"])),
        second,
    ]
    c = harness.make(max_concurrency=1)
    res = harness.embed(texts, c)
    sent = harness.server.sent_texts
    assert [b[0] for b in sent] == ["t0", "t10", "t10", "t20"]
    assert len(harness.sleeps) == 1
    assert 0.5 <= harness.sleeps[0] <= 1.0
    assert res.embeddings.shape == (25, 4)
    del first_ok


def test_retry_after_header_is_honoured(harness: Harness) -> None:
    """A Retry-After header sets the wait exactly."""
    harness.server.script = [
        error(
            429,
            "Throttling.RateQuota",
            "Requests rate limit exceeded",
            headers={"Retry-After": "3"},
        )
    ]
    harness.embed(["a"])
    assert harness.sleeps == [3.0]


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_server_errors_are_retried(harness: Harness, status: int) -> None:
    """408 and 5xx are retried with growing backoff until success."""
    harness.server.script = [error(status, "InternalError", "An internal error has occured")] * 3
    res = harness.embed(["a"])
    assert len(harness.server.requests) == 4
    assert len(harness.sleeps) == 3
    assert harness.sleeps[0] <= 0.5
    assert 0.5 <= harness.sleeps[1] <= 1.0
    assert 1.0 <= harness.sleeps[2] <= 2.0
    assert res.embeddings.shape == (1, 4)


def test_connection_errors_and_timeouts_are_retried(harness: Harness) -> None:
    """A dropped connection and a timeout are retried, then the call succeeds."""
    harness.server.script = [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")]
    res = harness.embed(["a"])
    assert len(harness.server.requests) == 3
    assert len(harness.sleeps) == 2
    assert res.embeddings.shape == (1, 4)


def test_retries_exhausted_raise_with_fields(harness: Harness) -> None:
    """After max_retries the last error is raised with status, code, request id and indices."""
    harness.server.script = [
        error(503, "ModelUnavailable", "Model is unavailable", rid="r-503")
    ] * 3
    c = harness.make(max_retries=2)
    with pytest.raises(ServerError) as exc:
        harness.embed(["a", "b"], c)
    e = exc.value
    assert (e.status, e.code, e.request_id, e.input_indices) == (
        503,
        "ModelUnavailable",
        "r-503",
        (0, 1),
    )
    assert len(harness.server.requests) == 3


def test_timeout_exhausted_raises_timeout_error(harness: Harness) -> None:
    """Persistent timeouts raise APITimeoutError naming the batch's inputs."""
    harness.server.script = [httpx.ReadTimeout("slow")] * 2
    with pytest.raises(APITimeoutError) as exc:
        harness.embed(["a"], harness.make(max_retries=1))
    assert exc.value.input_indices == (0,)
    assert isinstance(exc.value, APIConnectionError)


@pytest.mark.parametrize(
    ("status", "code", "message", "cls"),
    [
        (400, "InvalidParameter", "Required parameter(s) missing or invalid", BadRequestError),
        (
            400,
            "DataInspectionFailed",
            "Input or output data may contain inappropriate content.",
            ContentModerationError,
        ),
        (401, "InvalidApiKey", "Invalid API-key provided.", AuthenticationError),
        (403, "AccessDenied", "Access denied.", PermissionDeniedError),
        (
            400,
            "Arrearage",
            "Access denied, please make sure your account is in good standing.",
            PermissionDeniedError,
        ),
        (404, "ModelNotFound", "Model can not be found.", NotFoundError),
        (429, "PrepaidBillOverdue", "bill overdue", RateLimitError),
    ],
)
def test_non_retryable_errors_map_to_classes(
    harness: Harness, status: int, code: str, message: str, cls: type
) -> None:
    """Other 4xx (and billing 429s) are raised at once as the class of their meaning."""
    harness.server.script = [error(status, code, message, rid="rid-x")]
    with pytest.raises(cls) as exc:
        harness.embed(["a"])
    assert len(harness.server.requests) == 1
    assert harness.sleeps == []
    e = exc.value
    assert (e.status, e.code, e.message, e.request_id) == (status, code, message, "rid-x")
    assert "rid-x" in str(e)


def test_authentication_error_hints_at_regions(harness: Harness) -> None:
    """A 401 says that keys are region-specific."""
    harness.server.script = [error(401, "InvalidApiKey", "Invalid API-key provided.")]
    with pytest.raises(AuthenticationError, match="region-specific"):
        harness.embed(["a"])


def test_too_long_input_is_located_by_bisection(harness: Harness) -> None:
    """When the server rejects a batch for length, the error names the over-long input."""
    limit_msg = (
        "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 8192]"
    )

    def answer(body: dict) -> httpx.Response:
        texts = body["input"]["texts"]
        if "LONG" in texts:
            return error(400, "InvalidParameter", limit_msg)
        return httpx.Response(200, json=ok_body(texts))

    harness.server.script = [answer] * 10
    texts = ["a", "b", "c", "LONG", "e"]
    with pytest.raises(InputTooLongError) as exc:
        harness.embed(texts, harness.make(max_concurrency=1))
    assert exc.value.input_indices == (3,)
    assert "input 3" in str(exc.value)
    assert "8192" in str(exc.value)


def test_malformed_success_is_an_error_not_a_short_result(harness: Harness) -> None:
    """A 200 with fewer vectors than inputs raises instead of returning a short result."""
    harness.server.script = [httpx.Response(200, json=ok_body(["only-one"]))]
    with pytest.raises(Exception, match="expected 2 embeddings"):
        harness.embed(["a", "b"])


def test_sparse_output_parsed_per_input(harness: Harness) -> None:
    """dense&sparse returns both halves, aligned with the inputs."""

    def answer(body: dict) -> httpx.Response:
        items = [
            {
                "sparse_embedding": [
                    {"index": 7, "value": 0.5, "token": "a"},
                    {"index": 7, "value": 0.9, "token": "a"},
                ],
                "embedding": [0.0, 1.0],
                "text_index": 1,
            },
            {
                "sparse_embedding": [{"index": 3, "value": 0.2, "token": "b"}],
                "embedding": [1.0, 0.0],
                "text_index": 0,
            },
        ]
        return httpx.Response(
            200,
            json={"output": {"embeddings": items}, "usage": {"total_tokens": 2}, "request_id": "r"},
        )

    harness.server.script = [answer]
    res = harness.embed(["b", "a a"], output_type="dense&sparse")
    assert res.embeddings.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert res.sparse is not None
    assert res.sparse[0].indices == (3,)
    assert res.sparse[1].indices == (7, 7)
    assert res.sparse[1].merged().values == (0.9,)
    assert res.sparse[1].as_dict() == {7: 0.9}


def test_sparse_only_has_no_dense_matrix(harness: Harness) -> None:
    """output_type=sparse gives an (n, 0) dense array and one sparse vector per input."""

    def answer(body: dict) -> httpx.Response:
        items = [{"sparse_embedding": [{"index": 1, "value": 0.1, "token": "x"}], "text_index": 0}]
        return httpx.Response(
            200,
            json={"output": {"embeddings": items}, "usage": {"total_tokens": 1}, "request_id": "r"},
        )

    harness.server.script = [answer]
    res = harness.embed(["x"], output_type="sparse")
    assert res.embeddings.shape == (1, 0)
    assert res.dimension is None
    assert res.sparse is not None
    assert res.sparse[0].as_dict() == {1: 0.1}


@pytest.mark.parametrize(
    ("texts", "kwargs", "rule", "index"),
    [
        ("just a string", {}, "not_a_list", None),
        (["ok", ""], {}, "empty_text", 1),
        (["ok", "  \n"], {}, "empty_text", 1),
        (["ok", 3], {}, "not_a_string", 1),
        (["ok"], {"dimension": 100}, "dimension", None),
        (["ok"], {"dimension": 512, "model": "text-embedding-v2"}, "dimension", None),
        (["ok"], {"instruct": "x"}, "instruct", None),
        (
            ["ok"],
            {"instruct": "x", "text_type": "query", "model": "text-embedding-v3"},
            "instruct",
            None,
        ),
        (["ok"], {"text_type": "passage"}, "text_type", None),
        (["ok"], {"output_type": "sparse", "model": "text-embedding-v1"}, "output_type", None),
        (["ok"], {"output_type": "both"}, "output_type", None),
        (["ok"], {"max_batch_size": 0}, "max_batch_size", None),
    ],
)
def test_bad_input_rejected_before_any_request(
    harness: Harness, texts: object, kwargs: dict, rule: str, index: int | None
) -> None:
    """Each bad input raises InvalidInputError naming the rule (and index) with no request sent."""
    with pytest.raises(InvalidInputError) as exc:
        harness.embed(texts, **kwargs)
    assert exc.value.rule == rule
    assert exc.value.index == index
    if index is not None:
        assert f"input {index}" in str(exc.value)
    assert harness.server.requests == []


def test_dimension_error_lists_allowed_values(harness: Harness) -> None:
    """A bad dimension's error lists the model's allowed dimensions."""
    with pytest.raises(InvalidInputError, match="2048, 1536, 1024, 768, 512, 256, 128, 64"):
        harness.embed(["a"], dimension=300)


def test_region_check_for_beijing_only_model(harness: Harness) -> None:
    """A Beijing-only model on a client set to Singapore fails before sending, naming both."""
    c = harness.make(base_url=None, region="intl")
    with pytest.raises(InvalidInputError, match=r"cn-beijing.*ap-southeast-1"):
        harness.embed(["a"], c, model="text-embedding-v2")


def test_key_never_in_repr_logs_or_errors(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The API key is absent from repr, config repr, DEBUG logs and raised errors."""
    caplog.set_level(logging.DEBUG, logger="dashscope_embed")
    harness.server.script = [
        error(500, "InternalError", "boom"),
        error(401, "InvalidApiKey", "Invalid API-key provided."),
    ]
    c = harness.make()
    with pytest.raises(AuthenticationError) as exc:
        harness.embed(["a"], c)
    for text in (repr(c), str(c), repr(c.config), str(exc.value), repr(exc.value), caplog.text):
        assert KEY not in text
    assert "HTTP 500" in caplog.text or "500" in caplog.text
