"""Pins of the error side: status/code → exception class, error envelopes, Retry-After, messages.

Every case asserts exact values (class, status, code, message, request id, hint, retry_after), so
that the error mapping in ``_status.py`` and the exception tree in ``_errors.py`` can be moved
without a behaviour changing unnoticed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashscope_embed import _status
from dashscope_embed._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchSizeError,
    ConfigurationError,
    ContentModerationError,
    DashScopeError,
    InputTooLongError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from dashscope_embed._status import (
    ErrorBody,
    make_status_error,
    parse_error_body,
    parse_retry_after,
)
from dashscope_embed._wire import JSON_BACKENDS, use_json_backend

REGION_HINT = (
    "DashScope API keys are region-specific: a Beijing (cn-beijing) key fails on the "
    "international host and vice versa. Check region=/base_url= against the console where the "
    "key was created."
)
THROTTLE_HINT = "throttled by the account's RPM/TPM quota; lower max_concurrency or set rpm/tpm."


@pytest.fixture(params=JSON_BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each JSON backend in turn; ``json`` is the base install without the fast extra."""
    with use_json_backend(request.param):
        yield request.param


def mapped(status: int, code: str, message: str, **kw: Any) -> APIStatusError:
    return make_status_error(status, ErrorBody(code, message, "rid-9"), **kw)


# --- status/code → class -----------------------------------------------------------------------

# (status, code, message) → exact class. Each row isolates one condition of the mapping: a code
# alone, a status alone, a message alone, and the precedence between them.
MAPPING: dict[str, tuple[int, str, str, type[APIStatusError]]] = {
    "moderation by code alone": (400, "DataInspectionFailed", "rejected", ContentModerationError),
    "moderation by code on HTTP 200": (200, "DataInspectionFailed", "", ContentModerationError),
    "moderation by message alone": (
        400,
        "",
        "Input or output data may contain inappropriate content.",
        ContentModerationError,
    ),
    "moderation beats 401": (401, "DataInspectionFailed", "x", ContentModerationError),
    "arrearage by code on 400": (
        400,
        "Arrearage",
        "Access denied, please make sure your account is in good standing.",
        PermissionDeniedError,
    ),
    "403 without a code": (403, "", "Access denied.", PermissionDeniedError),
    "403 beats a throttling code": (403, "Throttling", "x", PermissionDeniedError),
    "401 without a code": (401, "", "Invalid API-key provided.", AuthenticationError),
    "InvalidApiKey code alone": (
        400,
        "InvalidApiKey",
        "Invalid API-key provided.",
        AuthenticationError,
    ),
    "OpenAI invalid_api_key code alone": (400, "invalid_api_key", "bad key", AuthenticationError),
    "429 without a code": (429, "", "slow down", RateLimitError),
    "Throttling code on 200": (200, "Throttling.RateQuota", "x", RateLimitError),
    "Throttling code on 500": (500, "Throttling", "x", RateLimitError),
    "code merely containing Throttling": (400, "NoThrottling", "x", BadRequestError),
    "404": (404, "ModelNotFound", "Model can not be found.", NotFoundError),
    "408": (408, "RequestTimeOut", "Request timed out, please try again later.", ServerError),
    "500": (500, "InternalError", "An internal error has occured", ServerError),
    "503": (503, "ModelUnavailable", "Model is unavailable, please try again later.", ServerError),
    "599": (599, "", "x", ServerError),
    "499 is a client error": (499, "", "x", BadRequestError),
    "407 is a client error": (407, "", "x", BadRequestError),
    "409 is a client error": (409, "", "x", BadRequestError),
    "413": (413, "BadRequest.TooLarge", "Payload Too Large.", BadRequestError),
    "plain 400": (400, "InvalidParameter", "Required parameter(s) missing", BadRequestError),
    "5xx beats a batch-size message": (
        502,
        "",
        "batch size is invalid, it should not be larger than 10.",
        ServerError,
    ),
    "404 beats a length message": (
        404,
        "",
        "Range of input length should be [1, 8192]",
        NotFoundError,
    ),
    "a limit without 'batch size' is not a batch-size error": (
        400,
        "InvalidParameter",
        "Value error, dimension should not be larger than 2048",
        BadRequestError,
    ),
    "'batch size' without a limit is not a batch-size error": (
        400,
        "InvalidParameter",
        "batch size is invalid",
        BadRequestError,
    ),
    "length with a space": (
        400,
        "InvalidParameter",
        "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 8192]",
        InputTooLongError,
    ),
    "length without a space": (
        400,
        "InvalidParameter",
        "Range of input length should be [1,2048]",
        InputTooLongError,
    ),
}


@pytest.mark.parametrize("case", MAPPING, ids=list(MAPPING))
def test_status_and_code_map_to_exactly_one_class(case: str) -> None:
    """Each status/code/message combination maps to exactly the documented exception class."""
    status, code, message, cls = MAPPING[case]
    err = make_status_error(status, ErrorBody(code, message, "rid-9"), input_indices=[3, 4])
    assert type(err) is cls
    assert (err.status, err.code, err.message, err.request_id) == (status, code, message, "rid-9")
    assert err.input_indices == (3, 4)


def test_batch_size_error_reads_the_limit_with_every_digit() -> None:
    """The server's batch-size answer yields a BatchSizeError whose limit is the whole number."""
    for limit in (6, 10, 25, 120):
        message = (
            "<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, it "
            f"should not be larger than {limit}.: input.contents"
        )
        err = mapped(400, "InvalidParameter", message, input_indices=[0, 1])
        assert type(err) is BatchSizeError
        assert (err.limit, err.message, err.status, err.code) == (
            limit,
            message,
            400,
            "InvalidParameter",
        )
        assert (err.request_id, err.input_indices, err.hint) == ("rid-9", (0, 1), "")
        assert str(err) == f"HTTP 400 InvalidParameter: {message} (inputs 0, 1) [request_id=rid-9]"


def test_rate_limit_error_carries_retry_after_and_the_quota_hint() -> None:
    """A 429 keeps the server's retry_after (0 included) and explains the quota in its hint."""
    for retry_after in (0.0, 0.25, 7.0, None):
        err = mapped(
            429, "Throttling.RateQuota", "Requests rate limit exceeded", retry_after=retry_after
        )
        assert type(err) is RateLimitError
        assert err.retry_after == retry_after
        assert err.hint == THROTTLE_HINT
    assert mapped(500, "InternalError", "x", retry_after=3.0).hint == ""


def test_authentication_error_explains_region_specific_keys() -> None:
    """A 401 carries the region-specific-key hint, in the attribute and in the text."""
    err = mapped(401, "InvalidApiKey", "Invalid API-key provided.")
    assert err.hint == REGION_HINT
    assert str(err) == (
        "HTTP 401 InvalidApiKey: Invalid API-key provided. [request_id=rid-9]\nHint: " + REGION_HINT
    )


def test_other_classes_carry_no_hint() -> None:
    """Only 401s and 429s (and misspelt models) carry a hint; the rest have an empty one."""
    for status, code in ((403, ""), (404, "NotFound"), (500, ""), (400, "InvalidParameter")):
        assert mapped(status, code, "m").hint == ""
    assert mapped(400, "DataInspectionFailed", "m").hint == ""


# --- the "did you mean" hint (bug 9) ------------------------------------------------------------


def test_misspelt_model_that_does_not_exist_gets_a_did_you_mean_hint() -> None:
    """'Model not exist.' for a name one edit from the catalog suggests the catalog name."""
    err = mapped(400, "InvalidParameter", "Model not exist.", model="text-embeding-v4")
    assert type(err) is BadRequestError
    assert err.hint == "did you mean text-embedding-v4?"
    assert str(err) == (
        "HTTP 400 InvalidParameter: Model not exist. [request_id=rid-9]\n"
        "Hint: did you mean text-embedding-v4?"
    )


def test_model_not_found_404_gets_the_hint_too() -> None:
    """A 404 ModelNotFound (or its message under another code) also suggests the close name."""
    err = mapped(404, "ModelNotFound", "Model can not be found.", model="text-embedding-v33")
    assert type(err) is NotFoundError
    assert err.hint == "did you mean text-embedding-v3?"
    by_code = mapped(404, "ModelNotFound", "", model="qwen3-vl-embeding")
    assert by_code.hint == "did you mean qwen3-vl-embedding?"
    by_message = mapped(404, "NotFound", "model cannot be found", model="Text-Embedding-V4")
    assert by_message.hint == "did you mean text-embedding-v4?"
    invalid = mapped(
        400,
        "InvalidParameter",
        "The model name is invalid. Supported models: text-embedding-v4, text-embedding-v3.",
        model="text-embeding-v3",
    )
    assert invalid.hint == "did you mean text-embedding-v3?"
    does_not = mapped(
        400, "InvalidParameter", "The model does not exist", model="text-embedding-v44"
    )
    assert does_not.hint == "did you mean text-embedding-v4?"


@pytest.mark.parametrize(
    ("status", "code", "message", "model"),
    [
        (400, "InvalidParameter", "Model not exist.", None),  # the engine passed no model
        (400, "InvalidParameter", "Model not exist.", "my-finetune"),  # nothing close
        (400, "InvalidParameter", "Model not exist.", "text-embedding-v5"),  # v1..v4: ambiguous
        (400, "InvalidParameter", "Model not exist.", "text-embedding-v4"),  # a catalog name
        (400, "InvalidParameter", "Required parameter(s) missing", "text-embeding-v4"),
        (404, "WorkSpaceNotFound", "WorkSpace can not be found.", "text-embeding-v4"),
    ],
)
def test_no_hint_unless_the_model_is_missing_and_one_edit_away(
    status: int, code: str, message: str, model: str | None
) -> None:
    """Without a 'model does not exist' answer and a unique close catalog name, no hint is added."""
    err = mapped(status, code, message, model=model)
    assert err.hint == ""
    assert "Hint" not in str(err)


def test_a_length_or_batch_answer_is_unchanged_by_a_model_name() -> None:
    """Passing model= never changes the class of other answers."""
    err = mapped(400, "InvalidParameter", "Range of input length should be [1, 8192]", model="x")
    assert type(err) is InputTooLongError
    assert err.hint == ""


# --- the exception texts -----------------------------------------------------------------------


def test_status_error_text_has_status_code_message_inputs_and_request_id() -> None:
    """str() is 'HTTP status code: message (inputs …) [request_id=…]', parts left out when empty."""
    full = APIStatusError(
        "boom", status=500, code="InternalError", request_id="r1", input_indices=[0, 2]
    )
    assert str(full) == "HTTP 500 InternalError: boom (inputs 0, 2) [request_id=r1]"
    bare = APIStatusError("bad gateway", status=502)
    assert str(bare) == "HTTP 502: bad gateway"
    assert (bare.code, bare.request_id, bare.input_indices, bare.hint) == ("", None, (), "")
    hinted = APIStatusError("m", status=400, hint="try x")
    assert str(hinted) == "HTTP 400: m\nHint: try x"


def test_input_list_is_cut_after_twenty_positions() -> None:
    """At most 20 input positions are listed; an ellipsis marks more, none for exactly 20."""
    twenty = APIStatusError("m", status=400, input_indices=range(20))
    assert str(twenty) == f"HTTP 400: m (inputs {', '.join(str(i) for i in range(20))})"
    twenty_one = APIStatusError("m", status=400, input_indices=range(21))
    assert str(twenty_one) == f"HTTP 400: m (inputs {', '.join(str(i) for i in range(20))}…)"
    many = APIStatusError("m", status=400, input_indices=range(25))
    assert str(many) == f"HTTP 400: m (inputs {', '.join(str(i) for i in range(20))}…)"
    assert many.input_indices == tuple(range(25))


def test_subclass_constructors_keep_their_extra_fields() -> None:
    """BatchSizeError.limit, RateLimitError.retry_after and the shared fields survive __init__."""
    b = BatchSizeError("m", limit=6, status=400, code="InvalidParameter", request_id="r")
    assert (b.limit, b.status, b.code, b.request_id, str(b)) == (
        6,
        400,
        "InvalidParameter",
        "r",
        "HTTP 400 InvalidParameter: m [request_id=r]",
    )
    r = RateLimitError("m", status=429, retry_after=1.5)
    assert (r.retry_after, r.status, str(r)) == (1.5, 429, "HTTP 429: m")
    assert RateLimitError("m", status=429).retry_after is None


def test_connection_and_input_errors_keep_their_fields() -> None:
    """Connection errors keep message and input positions; input errors keep index and rule."""
    conn = APIConnectionError("refused", input_indices=[1, 2])
    assert (str(conn), conn.input_indices) == ("refused", (1, 2))
    assert APIConnectionError("x").input_indices == ()
    timeout = APITimeoutError("timed out", input_indices=(5,))
    assert (str(timeout), timeout.input_indices) == ("timed out", (5,))
    bad = InvalidInputError("empty text at 3", index=3, rule="empty_text")
    assert (str(bad), bad.index, bad.rule) == ("empty text at 3", 3, "empty_text")
    option = InvalidInputError("bad option")
    assert (option.index, option.rule) == (None, "")


def test_exception_tree() -> None:
    """The documented hierarchy: which errors are ValueErrors, which are 400s, which retry."""
    for cls in (ConfigurationError, InvalidInputError):
        assert cls.__mro__[1:3] == (DashScopeError, ValueError)
    assert issubclass(APITimeoutError, APIConnectionError)
    assert not issubclass(APIConnectionError, APIStatusError)
    for cls in (BatchSizeError, InputTooLongError, ContentModerationError):
        assert cls.__mro__[1] is BadRequestError
    for cls in (BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError):
        assert cls.__mro__[1] is APIStatusError
    for cls in (RateLimitError, ServerError):
        assert cls.__mro__[1] is APIStatusError
    assert DashScopeError.partial is None


# --- error envelopes ---------------------------------------------------------------------------


def test_native_envelope(backend: str) -> None:
    """A native body gives its code, message and request id (the body's id wins over the header)."""
    body = b'{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r1"}'
    assert parse_error_body(body, {"x-request-id": "hdr"}) == ErrorBody(
        "InvalidApiKey", "Invalid API-key provided.", "r1"
    )


def test_native_fallbacks_msg_and_header_id(backend: str) -> None:
    """Without 'message' the native 'msg' is read; without an id in the body, the header's."""
    assert parse_error_body(b'{"code":"X","msg":"from msg"}', {"x-request-id": "h1"}) == ErrorBody(
        "X", "from msg", "h1"
    )
    assert parse_error_body(b'{"code":"X","message":"m","msg":"other"}', {}) == ErrorBody(
        "X", "m", None
    )
    assert parse_error_body(b'{"code":"X"}', {"X-Request-ID": "h2"}) == ErrorBody("X", "", "h2")
    both = {"x-request-id": "lower", "X-Request-ID": "upper"}
    assert parse_error_body(b"{}", both) == ErrorBody("", "", "lower")


def test_openai_envelope_type_and_id_fallbacks(backend: str) -> None:
    """In the OpenAI envelope 'code' beats 'type', 'request_id' beats 'id'; each falls back."""
    both = (
        b'{"error":{"code":"invalid_api_key","type":"auth","message":"m"},'
        b'"request_id":"r","id":"i"}'
    )
    assert parse_error_body(both, {}) == ErrorBody("invalid_api_key", "m", "r")
    type_only = b'{"error":{"type":"invalid_request_error","message":"m2"},"id":"chatcmpl-1"}'
    assert parse_error_body(type_only, {"x-request-id": "h"}) == ErrorBody(
        "invalid_request_error", "m2", "chatcmpl-1"
    )
    null_code = b'{"error":{"code":null,"type":"T","message":null}}'
    assert parse_error_body(null_code, {"x-request-id": "h"}) == ErrorBody("T", "", "h")
    neither = b'{"error":{"msg":"ignored here"}}'
    assert parse_error_body(neither, {}) == ErrorBody("", "", None)


def test_an_error_field_that_is_not_an_object_reads_the_native_keys(backend: str) -> None:
    """'error' as a plain string is not the OpenAI envelope: the top-level code/message are read."""
    body = b'{"error":"boom","code":"InternalError","message":"m","request_id":"r"}'
    assert parse_error_body(body, {}) == ErrorBody("InternalError", "m", "r")


def test_non_string_fields_are_stringified(backend: str) -> None:
    """Numeric codes and ids become strings; an empty id becomes None."""
    assert parse_error_body(b'{"code":400,"message":12,"request_id":7}', {}) == ErrorBody(
        "400", "12", "7"
    )
    assert parse_error_body(b'{"code":"X","request_id":""}', {}) == ErrorBody("X", "", None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
        (b"  upstream timed out \n", "upstream timed out"),
        (b"", "(empty body)"),
        (b"   ", "(empty body)"),
        (b"[1, 2]", "[1, 2]"),
        (b'"just a string"', '"just a string"'),
        (b"\xff\xfe<h1>Erreur</h1>\xe9", "\ufffd\ufffd<h1>Erreur</h1>\ufffd"),
    ],
    ids=["html", "text", "empty", "blank", "array", "string", "not utf-8"],
)
def test_bodies_that_are_not_an_object(backend: str, body: bytes, message: str) -> None:
    """A non-object body (HTML, text, empty, non-UTF-8) gives code Unknown and its text."""
    assert parse_error_body(body, {"x-request-id": "h"}) == ErrorBody("Unknown", message, "h")


def test_long_text_bodies_are_cut_to_500_characters(backend: str) -> None:
    """Only the first 500 characters of a non-JSON body become the message."""
    body = b"<html>" + b"x" * 1000
    err = parse_error_body(body, {})
    assert err.message == "<html>" + "x" * 494
    assert len(err.message) == 500
    assert err.request_id is None


# --- Retry-After -------------------------------------------------------------------------------

NOW = 1445412485.0  # Wed, 21 Oct 2015 07:28:05 GMT


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "2.75"}, 2.75),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": ""}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "-20"}, 0.0),
        ({"retry-after-ms": "abc", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "", "retry-after": "4"}, 4.0),
        ({"retry-after-ms": "abc"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 5.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:05 GMT"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # a past date: no wait
        ({"retry-after": "Wed, 21 Oct 2015 09:28:35 +0200"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:15 -0000"}, 10.0),
        ({"retry-after": "Wed, 32 Foo 2015 25:61:61 GMT"}, None),
    ],
)
def test_retry_after_values(headers: dict[str, str], expected: float | None) -> None:
    """Milliseconds win over seconds; 0, sub-second and past values are exact; bad ones are None."""
    assert parse_retry_after(headers, now=NOW) == expected


def test_retry_after_header_names_are_case_insensitive_with_httpx_headers() -> None:
    """httpx headers as the client passes them: 'Retry-After' and 'Retry-After-Ms' are found."""
    assert parse_retry_after(httpx.Headers({"Retry-After": "4"}), now=NOW) == 4.0
    assert parse_retry_after(httpx.Headers({"Retry-After-Ms": "20"}), now=NOW) == 0.02
    assert parse_retry_after(httpx.Headers({}), now=NOW) is None


def test_http_date_without_now_uses_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no explicit now, an HTTP date is measured against time.time()."""
    monkeypatch.setattr(_status.time, "time", lambda: NOW - 2.0)
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}) == 7.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=NOW) == 5.0


def test_http_date_with_minus_zero_zone_is_gmt_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """'-0000' dates are GMT: a machine in UTC+8 still waits 10 s, not 8 h and 10 s."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        value = parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:15 -0000"}, now=NOW)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert value == 10.0
