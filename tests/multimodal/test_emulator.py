"""The emulator's multimodal endpoint: documented shapes, validation, and label-aware vectors."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed.emulator import Emulator, count_tokens, text_vector
from dashscope_embed.emulator._mm_vectors import image_label, image_vector, multimodal_vector
from tests.conftest import TEST_KEY

from .conftest import make_png

PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
PLUS = "tongyi-embedding-vision-plus"


def uri(data: bytes, fmt: str = "png") -> str:
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"


def post(emulator: Emulator, body: Any, key: str = TEST_KEY) -> httpx.Response:
    with httpx.Client(transport=emulator.transport(), base_url="http://emulator.test") as http:
        return http.post(PATH, json=body, headers={"Authorization": f"Bearer {key}"})


def request(contents: list[dict[str, Any]], model: str = PLUS, **parameters: Any) -> Any:
    return {"model": model, "input": {"contents": contents}, "parameters": parameters}


def test_success_shape_and_request_id(emulator: Emulator) -> None:
    """A success answers output/usage/request_id in that order, each row index/embedding/type,
    and the x-request-id header repeats the body's id."""
    r = post(emulator, request([{"text": "a cat"}, {"image": "https://img.test/cat.png"}]))
    assert r.status_code == 200
    doc = r.json()
    assert list(doc) == ["output", "usage", "request_id"]
    assert r.headers["x-request-id"] == doc["request_id"]
    rows = doc["output"]["embeddings"]
    assert [list(row) for row in rows] == [["index", "embedding", "type"]] * 2
    assert [(row["index"], row["type"], len(row["embedding"])) for row in rows] == [
        (0, "text", 1152),
        (1, "image", 1152),
    ]
    # plain decimals, like the real service (only the vectors: a request id may hold "e-0")
    vectors = r.content[: r.content.index(b'"usage"')]
    assert b"e-" not in vectors
    assert b"E-" not in vectors


@pytest.mark.parametrize(
    ("model", "usage_keys"),
    [
        (PLUS, ["input_tokens", "input_tokens_details", "output_tokens", "total_tokens"]),
        ("qwen3-vl-embedding", ["input_tokens", "image_tokens"]),
        ("multimodal-embedding-v1", ["input_tokens", "image_count"]),
    ],
)
def test_usage_shape_per_model(emulator: Emulator, model: str, usage_keys: list[str]) -> None:
    """Each model family answers its documented usage shape (§3.3)."""
    png = make_png("cat")
    r = post(emulator, request([{"text": "a cat"}, {"image": uri(png)}], model=model))
    usage = r.json()["usage"]
    assert list(usage) == usage_keys
    image_tokens = 64 + len(png) // 1024
    text_tokens = count_tokens("a cat")
    if model == PLUS:
        details = {"image_tokens": image_tokens, "text_tokens": text_tokens}
        assert usage["input_tokens_details"] == details
        assert usage["total_tokens"] == usage["input_tokens"] == text_tokens + image_tokens
    elif model == "qwen3-vl-embedding":
        assert usage == {"input_tokens": text_tokens + image_tokens, "image_tokens": image_tokens}
    else:
        assert usage == {"input_tokens": text_tokens, "image_count": 1}


def _too_long() -> str:
    return "word " * 2000


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (
            request([{"image": "data:image/png;base64,@@@"}]),
            400,
            "InvalidParameter",
            "not valid base64",
        ),
        (
            request([{"image": "data:image/png,abc"}]),
            400,
            "InvalidParameter",
            "data:image/{format};base64,{data}",
        ),
        (
            request([{"image": "data:text/plain;base64,AAAA"}]),
            400,
            "InvalidParameter",
            "data uri is invalid",
        ),
        (
            request([{"image": uri(b"\x89PNG" + bytes(3 * 1024 * 1024))}]),
            400,
            "InvalidParameter",
            "should not be larger than 3MB",
        ),
        (
            request(
                [{"image": uri(bytes(8 * 1024 * 1024))}],
                model="tongyi-embedding-vision-plus-2026-03-06",
            ),
            400,
            "InvalidParameter",
            "Exceeded limit on max bytes per data-uri item : 10485760",
        ),
        (
            request([{"text": f"t{i}"} for i in range(21)]),
            400,
            "InvalidParameter",
            "batch size is invalid, it should not be larger than 20.: input.contents",
        ),
        (
            request([{"text": "a"}], enable_fusion=True),
            400,
            "InvalidParameter",
            "enable_fusion is not supported by model tongyi-embedding-vision-plus",
        ),
        (
            request([{"text": "a", "image": "https://img.test/a.png"}]),
            400,
            "InvalidParameter",
            "does not support fused content",
        ),
        (
            request([{"image": uri(b"RIFF0000WEBP", "webp")}]),
            415,
            "BadRequest.UnsupportedFileFormat",
            "webp",
        ),
        (
            request([{"image": "https://img.test/a.gif"}]),
            415,
            "BadRequest.UnsupportedFileFormat",
            "gif",
        ),
        (
            request([{"video": "data:video/mp4;base64,AAAA"}]),
            400,
            "InvalidParameter",
            "video only supports URL",
        ),
        (
            request([{"multi_images": ["https://img.test/a.png"]}], model="qwen3-vl-embedding"),
            400,
            "InvalidParameter",
            "multi_images is not supported by model qwen3-vl-embedding",
        ),
        (
            request([{"multi_images": ["https://img.test/a.png"] * 9}]),
            400,
            "InvalidParameter",
            "1 to 8 images",
        ),
        (
            request(
                [{"image": "https://a.test/1.png"}, {"image": "https://a.test/2.png"}],
                model="multimodal-embedding-v1",
            ),
            400,
            "InvalidParameter",
            "number of images should not be larger than 1",
        ),
        (
            request(
                [{"video": "https://v.test/1.mp4"}, {"video": "https://v.test/2.mp4"}],
                model="qwen3-vl-embedding",
            ),
            400,
            "InvalidParameter",
            "number of videos should not be larger than 1",
        ),
        (request([{"image": "ftp://img.test/a.png"}]), 400, "InvalidURL", "Invalid URL"),
        (
            request([{"text": "a"}], model="text-embedding-v4"),
            400,
            "InvalidParameter",
            "Model not exist.",
        ),
        (request([]), 400, "BadRequest.EmptyInput", "Required input"),
        (
            request([{"audio": "https://a.test/a.wav"}]),
            400,
            "InvalidParameter",
            "text, image, video or multi_images",
        ),
        (
            request([{"text": "a"}], dimension=100),
            400,
            "InvalidParameter",
            "its value shold be in [64, 128, 256, 512, 1024, 1152]",
        ),
        (
            request([{"text": "a"}], model="multimodal-embedding-v1", dimension=1024),
            400,
            "InvalidParameter",
            "dimension is not supported",
        ),
        (request([{"text": "a"}], fps=2), 400, "InvalidParameter", "fps should be in [0, 1]"),
        (request([{"text": "a"}], output_type="sparse"), 400, "InvalidParameter", "[dense]"),
        (
            request([{"text": _too_long()}]),
            400,
            "InvalidParameter",
            "Range of input length should be [1, 1024]",
        ),
        (request([{"text": ""}]), 400, "InvalidParameter", "Range of input length"),
        ({"model": PLUS}, 400, "BadRequest.EmptyInput", "Required input"),
        ({"input": {"contents": [{"text": "a"}]}}, 400, "BadRequest.EmptyModel", "model"),
    ],
)
def test_validation_errors(
    emulator: Emulator, body: Any, status: int, code: str, says: str
) -> None:
    """Each invalid request gets the documented status, code and a message naming the problem,
    in the native error envelope."""
    r = post(emulator, body)
    assert r.status_code == status
    doc = r.json()
    assert list(doc) == ["code", "message", "request_id"]
    assert doc["code"] == code
    assert says in doc["message"]
    assert emulator.stats.tokens == 0  # a rejected request is not charged


def test_multimodal_v1_truncates_long_text(emulator: Emulator) -> None:
    """multimodal-embedding-v1 truncates an over-long text (and bills the limit) instead of
    rejecting it."""
    r = post(emulator, request([{"text": _too_long()}], model="multimodal-embedding-v1"))
    assert r.status_code == 200
    assert r.json()["usage"]["input_tokens"] == 512


def test_bad_key_is_refused(emulator: Emulator) -> None:
    """The multimodal endpoint sits behind the same auth as text: a bad key gets 401."""
    r = post(emulator, request([{"text": "a"}]), key="not-a-key")
    assert (r.status_code, r.json()["code"]) == (401, "InvalidApiKey")


def test_text_rows_equal_text_vector(emulator: Emulator) -> None:
    """A text element gets exactly the emulator's text vector, at any dimension."""
    r = post(emulator, request([{"text": "a red car"}], dimension=256))
    row = np.array(r.json()["output"]["embeddings"][0]["embedding"])
    np.testing.assert_allclose(row, text_vector(PLUS, "a red car", dimension=256), atol=2e-8)


def test_rows_equal_multimodal_vector(emulator: Emulator) -> None:
    """Every row equals multimodal_vector() of its element (the helper tests compare with)."""
    png = make_png("cat")
    items = [
        {"image": uri(png)},
        {"video": "https://v.test/sunset.mp4"},
        {"multi_images": [uri(png), "https://img.test/dog.png"]},
    ]
    r = post(emulator, request(items, dimension=512))
    rows = np.array([row["embedding"] for row in r.json()["output"]["embeddings"]])
    expected = np.array([multimodal_vector(PLUS, item, dimension=512) for item in items])
    np.testing.assert_allclose(rows, expected, atol=2e-8)
    assert [row["type"] for row in r.json()["output"]["embeddings"]] == [
        "image",
        "video",
        "multi_images",
    ]


def test_labels_come_from_png_text_or_url() -> None:
    """The label is a PNG tEXt 'label', a URL's label= parameter, or its file name."""
    assert image_label(uri(make_png("red car"))) == "red car"
    assert image_label(uri(make_png(None))) is None
    assert image_label("https://img.test/photos/red-car_01.png") == "red car"
    assert image_label("https://img.test/x/1234.jpg?label=mountain%20lake") == "mountain lake"
    assert image_label("https://img.test/12.png") is None


def test_same_label_is_close_and_different_labels_are_not() -> None:
    """Text and image with one label score ~0.94, two such images ~0.89, other labels ~0."""
    cat_text = text_vector(PLUS, "cat")
    cat_a = image_vector(PLUS, uri(make_png("cat", (255, 0, 0))))
    cat_b = image_vector(PLUS, "https://img.test/cat.jpg")
    dog = image_vector(PLUS, uri(make_png("dog")))
    assert 0.9 < float(cat_text @ cat_a) < 0.97
    assert 0.8 < float(cat_a @ cat_b) < 0.95
    assert abs(float(cat_text @ dog)) < 0.15
    assert abs(float(cat_a @ dog)) < 0.15


def test_unlabelled_images_differ_by_bytes() -> None:
    """Unlabelled images get their own deterministic direction from their bytes."""
    a = image_vector(PLUS, uri(make_png(None, (1, 1, 1))))
    b = image_vector(PLUS, uri(make_png(None, (2, 2, 2))))
    assert abs(float(a @ b)) < 0.15
    np.testing.assert_array_equal(a, image_vector(PLUS, uri(make_png(None, (1, 1, 1)))))


def test_smaller_dimension_is_a_prefix() -> None:
    """A smaller dimension is the renormalised prefix of the full vector (Matryoshka-like)."""
    image = "https://img.test/cat.png"
    full = image_vector(PLUS, image, dimension=1152)
    small = image_vector(PLUS, image, dimension=128)
    np.testing.assert_allclose(small, full[:128] / np.linalg.norm(full[:128]), atol=1e-6)


def test_fusion_sums_the_parts(emulator: Emulator) -> None:
    """enable_fusion returns one 'fused' row: the normalised sum of the parts' vectors."""
    items = [{"text": "a cat"}, {"image": "https://img.test/cat.png"}]
    r = post(emulator, request(items, model="qwen3-vl-embedding", enable_fusion=True))
    rows = r.json()["output"]["embeddings"]
    assert [(row["index"], row["type"]) for row in rows] == [(0, "fused")]
    np.testing.assert_allclose(
        np.array(rows[0]["embedding"]),
        multimodal_vector("qwen3-vl-embedding", items),
        atol=2e-8,
    )
    text = text_vector("qwen3-vl-embedding", "a cat")
    assert float(np.array(rows[0]["embedding"]) @ text) > 0.9


def test_requests_are_logged_with_their_bodies(emulator: Emulator) -> None:
    """The request log holds each multimodal body as sent (for wire assertions) and no key."""
    body = request([{"text": "a"}])
    post(emulator, body)
    logged = emulator.requests[0]
    assert logged.json == body
    assert logged.path == PATH
    assert TEST_KEY not in json.dumps(logged.headers)
