"""The OpenAI-compatible embeddings endpoint: success, base64 and the OpenAI error envelope."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed.emulator import Emulator, EmulatorConfig, count_tokens, text_vector

PATH = "/compatible-mode/v1/embeddings"
V4 = "text-embedding-v4"
PREFIX = "<400> InternalError.Algo.InvalidParameter: "


@pytest.fixture
def emu() -> Emulator:
    return Emulator()


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer sk-test"}
    with httpx.Client(transport=emu.transport(), base_url="https://e.test", headers=headers) as c:
        yield c


def test_success_shape_order_and_vectors(http: httpx.Client) -> None:
    """data/model/object/usage/id in order; items embedding/index/object; id equals x-request-id."""
    texts = ["first document", "second document"]
    response = http.post(PATH, json={"model": V4, "input": texts})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["data", "model", "object", "usage", "id"]
    assert body["model"] == V4
    assert body["object"] == "list"
    tokens = sum(map(count_tokens, texts))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert body["id"] == response.headers["x-request-id"]
    assert [list(item) for item in body["data"]] == [["embedding", "index", "object"]] * 2
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert {item["object"] for item in body["data"]} == {"embedding"}
    for item, text in zip(body["data"], texts, strict=True):
        np.testing.assert_allclose(item["embedding"], text_vector(V4, text), atol=1e-7)


def test_string_input_and_dimensions(http: httpx.Client) -> None:
    """A string input is one text; dimensions sets the length like the native dimension."""
    body = http.post(PATH, json={"model": V4, "input": "only one", "dimensions": 512}).json()
    assert len(body["data"]) == 1
    assert len(body["data"][0]["embedding"]) == 512


def test_base64_encoding_is_little_endian_float32(http: httpx.Client) -> None:
    """encoding_format=base64 returns the float32 little-endian bytes of the float answer."""
    request = {"model": V4, "input": ["encode me"], "dimensions": 64}
    floats = http.post(PATH, json=request).json()["data"][0]["embedding"]
    encoded = http.post(PATH, json={**request, "encoding_format": "base64"}).json()["data"][0]
    assert isinstance(encoded["embedding"], str)
    decoded = np.frombuffer(base64.b64decode(encoded["embedding"]), dtype="<f4")
    assert decoded.shape == (64,)
    np.testing.assert_allclose(decoded, floats, atol=1e-7)


ERROR_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "token ids",
        {"model": V4, "input": [[101, 2023, 102]]},
        "InvalidParameter",
        PREFIX + "Value error, contents is neither str nor list of str.: input.contents",
    ),
    (
        "flat token ids",
        {"model": V4, "input": [101, 2023]},
        "InvalidParameter",
        PREFIX + "Value error, contents is neither str nor list of str.: input.contents",
    ),
    (
        "too many",
        {"model": V4, "input": ["x"] * 11},
        "InvalidParameter",
        PREFIX
        + "Value error, batch size is invalid, it should not be larger than 10.: input.contents",
    ),
    (
        "missing model",
        {"input": ["x"]},
        "BadRequest.EmptyModel",
        'Required parameter "model" missing from request.',
    ),
    (
        "missing input",
        {"model": V4},
        "BadRequest.EmptyInput",
        "Required input parameter missing from request.",
    ),
    (
        "bad dimensions",
        {"model": "text-embedding-v3", "input": ["x"], "dimensions": 2048},
        "InvalidParameter",
        PREFIX + "Value error, dimension for embedding v3 is invalid, its value shold be in "
        "[64, 128, 256, 512, 768, 1024]",
    ),
    (
        "bad encoding",
        {"model": V4, "input": ["x"], "encoding_format": "int8"},
        "InvalidParameter",
        PREFIX + "Value error, encoding_format is invalid, its value should be in [float, base64]",
    ),
    (
        "empty text",
        {"model": V4, "input": [""]},
        "InvalidParameter",
        PREFIX + "Range of input length should be [1, 8192]",
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "code", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_errors_use_the_openai_envelope(
    http: httpx.Client, case: str, payload: dict[str, Any], code: str, message: str
) -> None:
    """Errors are {"error": {message, type, param, code}, "id", "request_id"} with equal ids."""
    response = http.post(PATH, json=payload)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error", "id", "request_id"]
    assert body["error"] == {"message": message, "type": code, "param": None, "code": code}
    assert list(body["error"]) == ["message", "type", "param", "code"]
    assert body["id"] == body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("model", ["gpt-embed", "tongyi-embedding-vision-plus"])
def test_unknown_or_multimodal_model_is_the_documented_404(http: httpx.Client, model: str) -> None:
    """An unknown or a multimodal model answers 404 model_not_supported (type
    invalid_request_error), the documented compatible-mode error, not the native 400."""
    response = http.post(PATH, json={"model": model, "input": ["x"]})
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "Unsupported model for OpenAI compatibility mode.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_supported",
    }


def test_answers_carry_request_duration(http: httpx.Client) -> None:
    """Compatible-mode answers, success and error, carry request-duration (whole milliseconds)
    like the recorded exchanges; native answers do not."""
    ok = http.post(PATH, json={"model": V4, "input": ["x"]})
    bad = http.post(PATH, json={"model": V4, "input": [""]})
    native = http.post(
        "/api/v1/services/embeddings/text-embedding/text-embedding",
        json={"model": V4, "input": {"texts": ["x"]}},
    )
    assert (ok.status_code, bad.status_code, native.status_code) == (200, 400, 200)
    assert int(ok.headers["request-duration"]) >= 1
    assert int(bad.headers["request-duration"]) >= 1
    assert "request-duration" not in native.headers


def test_auth_failure_uses_the_documented_openai_body(emu: Emulator) -> None:
    """A bad key on compatible mode is 401 with the invalid_api_key body of the docs."""
    with httpx.Client(transport=emu.transport(), base_url="http://e") as http:
        response = http.post(PATH, json={"model": V4, "input": "x"})
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == {
        "message": "Incorrect API key provided. ",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert body["request_id"] == response.headers["x-request-id"]


def test_quota_applies_to_compatible_mode_too() -> None:
    """The compatible endpoint shares the model's RPM bucket and answers 429 in its envelope."""
    emu = Emulator(EmulatorConfig(rpm=60), clock=lambda: 100.0)
    headers = {"Authorization": "Bearer sk-q"}
    with httpx.Client(transport=emu.transport(), base_url="http://e", headers=headers) as http:
        assert http.post(PATH, json={"model": V4, "input": "a"}).status_code == 200
        refused = http.post(PATH, json={"model": V4, "input": "a"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "Throttling.RateQuota"
    assert refused.json()["error"]["message"] == (
        "Requests rate limit exceeded, please try again later."
    )
