"""Pure pieces: retry policy, Retry-After, error mapping, sparse merging, exports, catalog."""

from __future__ import annotations

import random

import pytest

import dashscope_embed
from dashscope_embed import (
    MODELS,
    BatchSizeError,
    InputTooLongError,
    RateLimitError,
    ServerError,
    SparseVector,
    get_model,
)
from dashscope_embed._engine._retry import RetryPolicy
from dashscope_embed._engine._throttle import Throttle
from dashscope_embed._status import (
    ErrorBody,
    make_status_error,
    parse_error_body,
    parse_retry_after,
)

EXPECTED_ALL = [
    "DEFAULT_MULTIMODAL_MODEL",
    "DEFAULT_TEXT_MODEL",
    "MODELS",
    "REGIONS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncDashScopeClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailure",
    "BatchInfo",
    "BatchJob",
    "BatchPartStatus",
    "BatchReport",
    "BatchSizeError",
    "BatchStatus",
    "ClientConfig",
    "ClientStats",
    "ConfigurationError",
    "ContentModerationError",
    "DashScopeClient",
    "DashScopeError",
    "EmbeddingResult",
    "Fused",
    "Image",
    "InputTooLongError",
    "InvalidInputError",
    "ModelSpec",
    "MultiImages",
    "MultimodalInput",
    "NotFoundError",
    "OutputType",
    "PartialResult",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SparseVector",
    "StreamSummary",
    "TextType",
    "Throttle",
    "Usage",
    "Video",
    "__version__",
    "aiter_embeddings",
    "embed_batch",
    "embed_to_file",
    "embed_to_npy",
    "get_model",
    "iter_embeddings",
    "list_batches",
]


def test_public_exports_are_pinned() -> None:
    """The package's public names change only on purpose."""
    assert dashscope_embed.__all__ == EXPECTED_ALL
    for name in EXPECTED_ALL:
        assert hasattr(dashscope_embed, name)


def test_core_import_does_not_pull_frameworks() -> None:
    """Importing the core never imports LangChain or LlamaIndex."""
    import subprocess
    import sys

    code = (
        "import sys, dashscope_embed; "
        "print(any(m.startswith(('langchain', 'llama_index')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_backoff_grows_and_is_capped() -> None:
    """Backoff doubles per attempt with jitter in [0.5, 1] of the step and never exceeds the cap."""
    p = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=random.Random(1))
    for attempt, step in enumerate([0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
        d = p.delay(attempt)
        assert step * 0.5 <= d <= step
    assert p.delay(0, retry_after=2.5) == 2.5
    assert p.delay(0, retry_after=99) == 4.0
    assert 1.0 * 0.5 <= p.delay(0, throttled=True) <= 1.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 5.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    """Retry-After is read as seconds, milliseconds or an HTTP date."""
    now = 1445412485.0  # 07:28:05 GMT on that date
    assert parse_retry_after(headers, now=now) == expected


def test_error_body_native_openai_and_text() -> None:
    """Native, OpenAI-style and non-JSON error bodies all yield code, message and request id."""
    native = parse_error_body(
        b'{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r1"}', {}
    )
    assert native == ErrorBody("InvalidApiKey", "Invalid API-key provided.", "r1")
    compat = parse_error_body(
        b'{"error":{"message":"m","type":"InvalidParameter","param":null,"code":"InvalidParameter"},"id":"r2","request_id":"r2"}',
        {},
    )
    assert compat == ErrorBody("InvalidParameter", "m", "r2")
    text = parse_error_body(b"<html>bad gateway</html>", {"x-request-id": "r3"})
    assert text == ErrorBody("Unknown", "<html>bad gateway</html>", "r3")


def test_status_mapping_special_messages() -> None:
    """Batch-size and input-length messages map to their own classes; 429 keeps retry_after."""
    e = make_status_error(
        400,
        ErrorBody(
            "InvalidParameter",
            "batch size is invalid, it should not be larger than 20.: input.contents",
            "r",
        ),
    )
    assert isinstance(e, BatchSizeError)
    assert e.limit == 20
    e2 = make_status_error(
        400,
        ErrorBody(
            "InvalidParameter",
            "<400> InternalError.Algo.InvalidParameter: Range of input length should be [1, 8192]",
            "r",
        ),
    )
    assert isinstance(e2, InputTooLongError)
    e3 = make_status_error(
        429,
        ErrorBody("Throttling.BurstRate", "Request rate increased too quickly.", "r"),
        retry_after=2.0,
    )
    assert isinstance(e3, RateLimitError)
    assert e3.retry_after == 2.0
    e4 = make_status_error(502, ErrorBody("Unknown", "bad gateway", None), input_indices=(4, 5))
    assert isinstance(e4, ServerError)
    assert e4.input_indices == (4, 5)
    assert "inputs 4, 5" in str(e4)


def test_sparse_merge_keeps_max_weight_and_sorts() -> None:
    """Repeated indices merge to one entry holding the largest weight; indices ascend."""
    v = SparseVector(indices=(9, 2, 9, 5), values=(0.1, 0.4, 0.7, 0.3), tokens=("a", "b", "a", "c"))
    m = v.merged()
    assert m.indices == (2, 5, 9)
    assert m.values == (0.4, 0.3, 0.7)
    assert m.tokens == ("b", "c", "a")
    assert v.as_dict() == {2: 0.4, 5: 0.3, 9: 0.7}


def test_catalog_limits() -> None:
    """The catalog holds the documented row limits and dimensions; unknown names get safe limits."""
    assert get_model("text-embedding-v4").max_batch_size == 10
    assert get_model("text-embedding-v1").max_batch_size == 25
    assert get_model("qwen3.7-text-embedding").max_batch_size == 20
    assert get_model("qwen3.7-text-embedding").max_dimension == 2560
    assert 64 in get_model("text-embedding-v4").dimensions
    unknown = get_model("text-embedding-v9")
    assert not unknown.known
    assert unknown.max_batch_size == 10
    assert unknown.dimensions == ()
    assert all(spec.default_dimension in spec.dimensions for spec in MODELS.values())


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_slow_start_then_cut_on_429() -> None:
    """The window starts at 4 and grows per success; a 429 paces at what succeeded, not half."""
    clock = FakeClock()
    t = Throttle(max_concurrency=16, clock=clock)
    for _ in range(4):
        assert t.acquire("m") == 0.0
        clock.now += 0.125  # the start rate: 8 per second, doubling every 0.4 s
    assert t.acquire("m") == 0.05  # window of 4 full
    clock.now += 1.0
    for _ in range(4):
        t.release("m", "ok", latency=0.1)
    assert t.snapshot("m").concurrency_limit == 5  # 4 + 4 × 0.3
    assert t.acquire("m") == 0.0
    t.release("m", "throttled", latency=0.1)
    snap = t.snapshot("m")
    assert snap.rate_per_second == pytest.approx(0.5 * 0.95 * 4)  # 4 successes in the last second
    assert t.acquire("m") > 0  # paced: next send is 1/rate away
    clock.now += 1 / 1.9 + 1e-6
    assert t.acquire("m") == 0.0


def test_throttle_rpm_bucket_and_retry_after_pause() -> None:
    """An explicit rpm paces requests at rpm/60 per second; Retry-After pauses admission."""
    clock = FakeClock()
    t = Throttle(max_concurrency=100, rpm=120, adaptive=False, clock=clock)
    assert t.acquire("m") == 0.0
    assert t.acquire("m") == 0.0
    wait = t.acquire("m")
    assert wait == pytest.approx(0.5)
    clock.now += 0.5
    assert t.acquire("m") == 0.0
    t.release("m", "throttled", retry_after=3.0)
    clock.now += 1.0
    assert t.acquire("m") == pytest.approx(2.0)


def test_throttle_tpm_bucket() -> None:
    """A tpm budget delays a request until enough token budget has refilled."""
    clock = FakeClock()
    t = Throttle(max_concurrency=100, tpm=6000, adaptive=False, clock=clock)  # 100 tokens/s
    assert t.acquire("m", tokens=80) == 0.0
    assert t.acquire("m", tokens=80) == pytest.approx(0.6)
