"""The native text-embedding endpoint: success shapes and every validation error, in-process."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed._models import ModelSpec
from dashscope_embed.emulator import Emulator, EmulatorConfig, count_tokens, text_vector
from dashscope_embed.emulator._sparse import sparse_vector

PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
V4 = "text-embedding-v4"
PREFIX = "<400> InternalError.Algo.InvalidParameter: "
REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def emu() -> Emulator:
    return Emulator()


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    transport = emu.transport()
    headers = {"Authorization": "Bearer sk-test"}
    with httpx.Client(transport=transport, base_url="https://dashscope.test", headers=headers) as c:
        yield c


def embed(http: httpx.Client, texts: Any, model: str = V4, **parameters: Any) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "input": {"texts": texts}}
    if parameters:
        body["parameters"] = parameters
    return http.post(PATH, json=body)


def test_success_body_shape_key_order_and_headers(http: httpx.Client) -> None:
    """A success has keys output, usage, request_id in order, and x-request-id equals request_id."""
    response = embed(http, ["hello world", "good morning"])
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["output", "usage", "request_id"]
    assert list(body["output"]) == ["embeddings"]
    items = body["output"]["embeddings"]
    assert [list(item) for item in items] == [["embedding", "text_index"]] * 2
    assert body["usage"] == {"total_tokens": 7}
    assert REQUEST_ID.fullmatch(body["request_id"])
    assert response.headers["x-request-id"] == body["request_id"]
    assert response.headers["content-type"] == "application/json"
    vectors_json = response.content.split(b'"usage"')[0]
    assert not re.search(rb"\d[eE][-+]?\d", vectors_json)  # plain decimals only
    vector = np.array(items[0]["embedding"])
    assert vector.shape == (1024,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)


def test_embeddings_follow_input_order(http: httpx.Client) -> None:
    """text_index i carries the vector of texts[i]."""
    texts = ["alpha particles", "beta decay", "gamma rays", "delta wing"]
    items = embed(http, texts, dimension=256).json()["output"]["embeddings"]
    assert [item["text_index"] for item in items] == [0, 1, 2, 3]
    for item, text in zip(items, texts, strict=True):
        np.testing.assert_allclose(
            item["embedding"], text_vector(V4, text, dimension=256), atol=1e-7
        )


def test_texts_may_be_a_single_string(http: httpx.Client) -> None:
    """input.texts given as a string is embedded as one text."""
    items = embed(http, "just one").json()["output"]["embeddings"]
    assert len(items) == 1
    assert items[0]["text_index"] == 0


@pytest.mark.parametrize(
    ("model", "length"),
    [
        (V4, 1024),
        ("text-embedding-v3", 1024),
        ("text-embedding-v1", 1536),
        ("qwen3.7-text-embedding", 1024),
    ],
)
def test_default_dimension_comes_from_the_catalog(
    http: httpx.Client, model: str, length: int
) -> None:
    """Without a dimension each model answers with its catalog default length."""
    item = embed(http, ["x y z"], model=model).json()["output"]["embeddings"][0]
    assert len(item["embedding"]) == length


def test_dimension_prefix_property_over_the_wire(http: httpx.Client) -> None:
    """The 256-d answer equals the renormalised prefix of the 2048-d answer."""
    full = np.array(
        embed(http, ["prefix test"], dimension=2048).json()["output"]["embeddings"][0]["embedding"]
    )
    small = np.array(
        embed(http, ["prefix test"], dimension=256).json()["output"]["embeddings"][0]["embedding"]
    )
    np.testing.assert_allclose(small, full[:256] / np.linalg.norm(full[:256]), atol=1e-6)


def test_sparse_output_shapes(http: httpx.Client) -> None:
    """sparse omits embedding; dense&sparse puts sparse_embedding first; repeated words repeat."""
    text = "the cat saw the cat"
    sparse = embed(http, [text], output_type="sparse").json()["output"]["embeddings"][0]
    assert list(sparse) == ["sparse_embedding", "text_index"]
    assert sparse["sparse_embedding"] == sparse_vector(text)
    indices = [entry["index"] for entry in sparse["sparse_embedding"]]
    assert indices[1] == indices[4]
    assert len(set(indices)) == 3
    both = embed(http, [text, "狗"], output_type="dense&sparse").json()["output"]["embeddings"]
    assert [list(item) for item in both] == [["sparse_embedding", "embedding", "text_index"]] * 2
    assert both[1]["sparse_embedding"] == sparse_vector("狗")
    assert [entry["token"] for entry in both[1]["sparse_embedding"]] == ["狗"]
    assert len(both[0]["embedding"]) == 1024


def test_query_text_type_and_instruct(http: httpx.Client) -> None:
    """query differs from document; instruct steers v4 queries only (not documents, not v3)."""

    def vector(model: str = V4, **parameters: Any) -> np.ndarray:
        answer = embed(http, ["what do cats eat"], model=model, **parameters).json()
        return np.array(answer["output"]["embeddings"][0]["embedding"])

    document, query = vector(), vector(text_type="query")
    assert 0.95 < float(document @ query) < 0.995
    steered = vector(text_type="query", instruct="Find the answer")
    assert not np.allclose(steered, query)
    np.testing.assert_allclose(vector(instruct="Find the answer"), document, atol=1e-8)
    v3_query = vector("text-embedding-v3", text_type="query")
    np.testing.assert_allclose(
        vector("text-embedding-v3", text_type="query", instruct="x"), v3_query, atol=1e-8
    )


def test_usage_counts_approximate_tokens(http: httpx.Client) -> None:
    """usage.total_tokens is the sum of count_tokens over the texts."""
    texts = ["代码改变世界", "The quick brown fox jumps."]
    body = embed(http, texts).json()
    assert body["usage"]["total_tokens"] == sum(map(count_tokens, texts)) == 6 + 9


def test_row_limit_override_and_extra_models() -> None:
    """row_limits lowers a model's batch size; extra_models adds a name with its own limits."""
    custom = ModelSpec("my-embedder", "text", 3, 50, (256, 128), 256)
    config = EmulatorConfig(row_limits={V4: 6}, extra_models={"my-embedder": custom})
    emu = Emulator(config)
    with httpx.Client(
        transport=emu.transport(), base_url="http://e", headers={"Authorization": "Bearer sk-1"}
    ) as http:
        assert embed(http, ["t"] * 6).status_code == 200
        refused = embed(http, ["t"] * 7)
        assert refused.status_code == 400
        assert refused.json()["message"] == (
            PREFIX
            + "Value error, batch size is invalid, it should not be larger than 6.: input.contents"
        )
        ok = embed(http, ["a", "b", "c"], model="my-embedder").json()["output"]["embeddings"]
        assert len(ok[0]["embedding"]) == 256
        assert (
            embed(http, ["a"] * 4, model="my-embedder")
            .json()["message"]
            .endswith("larger than 3.: input.contents")
        )
        assert embed(http, ["a"], model="my-embedder", dimension=64).json()["message"] == (
            PREFIX
            + "Value error, dimension for embedding v3 is invalid, its value shold be in [128, 256]"
        )


ILLEGAL = ("BadRequest.IllegalInput", "The input parameter requires json format.")
EMPTY_INPUT = ("BadRequest.EmptyInput", "Required input parameter missing from request.")
NOT_STR = (
    "InvalidParameter",
    PREFIX + "Value error, contents is neither str nor list of str.: input.contents",
)
V4_DIMS = PREFIX + (
    "Value error, dimension for embedding v3 is invalid, its value shold be in "
    "[64, 128, 256, 512, 768, 1024, 1536, 2048]"
)


def body(texts: Any = ("hi",), model: Any = V4, **parameters: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model,
        "input": {"texts": list(texts) if isinstance(texts, tuple) else texts},
    }
    if parameters:
        out["parameters"] = parameters
    return out


VALIDATION_CASES: list[tuple[str, Any, str, str]] = [
    ("body not json", b"{not json", *ILLEGAL),
    ("body is an array", [1, 2], *ILLEGAL),
    ("input is an array", {"model": V4, "input": ["hi"]}, *ILLEGAL),
    (
        "missing model",
        {"input": {"texts": ["hi"]}},
        "BadRequest.EmptyModel",
        'Required parameter "model" missing from request.',
    ),
    (
        "empty model",
        body(model=""),
        "BadRequest.EmptyModel",
        'Required parameter "model" missing from request.',
    ),
    ("missing input", {"model": V4}, *EMPTY_INPUT),
    ("input without texts", {"model": V4, "input": {}}, *EMPTY_INPUT),
    ("empty texts", body(texts=[]), *EMPTY_INPUT),
    ("unknown model", body(model="text-embedding-v9"), "InvalidParameter", "Model not exist."),
    (
        "multimodal model",
        body(model="multimodal-embedding-v1"),
        "InvalidParameter",
        "Model not exist.",
    ),
    (
        "11 texts for v4",
        body(texts=["a"] * 11),
        "InvalidParameter",
        PREFIX
        + "Value error, batch size is invalid, it should not be larger than 10.: input.contents",
    ),
    (
        "26 texts for v2",
        body(texts=["a"] * 26, model="text-embedding-v2"),
        "InvalidParameter",
        PREFIX
        + "Value error, batch size is invalid, it should not be larger than 25.: input.contents",
    ),
    (
        "21 texts for qwen3.7",
        body(texts=["a"] * 21, model="qwen3.7-text-embedding"),
        "InvalidParameter",
        PREFIX
        + "Value error, batch size is invalid, it should not be larger than 20.: input.contents",
    ),
    ("number item", body(texts=["ok", 5]), *NOT_STR),
    ("token-id list", body(texts=[[1, 2, 3]]), *NOT_STR),
    ("texts is a number", body(texts=7), *NOT_STR),
    (
        "empty text",
        body(texts=["ok", ""]),
        "InvalidParameter",
        PREFIX + "Range of input length should be [1, 8192]",
    ),
    (
        "blank text",
        body(texts=["  \n\t"]),
        "InvalidParameter",
        PREFIX + "Range of input length should be [1, 8192]",
    ),
    (
        "too long for v2",
        body(texts=["word " * 2049], model="text-embedding-v2"),
        "InvalidParameter",
        PREFIX + "Range of input length should be [1, 2048]",
    ),
    (
        "too long for v4",
        body(texts=["word " * 8193]),
        "InvalidParameter",
        PREFIX + "Range of input length should be [1, 8192]",
    ),
    ("dimension not allowed", body(dimension=100), "InvalidParameter", V4_DIMS),
    ("dimension as string", body(dimension="1024"), "InvalidParameter", V4_DIMS),
    ("dimension as bool", body(dimension=True), "InvalidParameter", V4_DIMS),
    (
        "v3 has no 2048",
        body(model="text-embedding-v3", dimension=2048),
        "InvalidParameter",
        PREFIX + "Value error, dimension for embedding v3 is invalid, its value shold be in "
        "[64, 128, 256, 512, 768, 1024]",
    ),
    (
        "bad text_type",
        body(text_type="passage"),
        "InvalidParameter",
        PREFIX + "Value error, text_type is invalid, its value should be in [query, document]",
    ),
    (
        "bad output_type",
        body(output_type="both"),
        "InvalidParameter",
        PREFIX + "Value error, output_type is invalid, its value should be in "
        "[dense, sparse, dense&sparse]",
    ),
    (
        "sparse from v2",
        body(model="text-embedding-v2", output_type="sparse"),
        "InvalidParameter",
        PREFIX + "Value error, output_type sparse is not supported by model text-embedding-v2.",
    ),
    (
        "instruct not a string",
        body(instruct=5),
        "InvalidParameter",
        PREFIX + "Value error, instruct should be a string.",
    ),
    (
        "parameters not an object",
        {"model": V4, "input": {"texts": ["hi"]}, "parameters": "x"},
        "InvalidParameter",
        "Required parameter(s) missing or invalid, please check the request parameters.",
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "code", "message"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES]
)
def test_validation_errors_are_400_with_verbatim_messages(
    http: httpx.Client, emu: Emulator, case: str, payload: Any, code: str, message: str
) -> None:
    """Each invalid request gets 400 with the native envelope, the code and the exact message."""
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = http.post(PATH, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    answer = response.json()
    assert list(answer) == ["code", "message", "request_id"]
    assert (answer["code"], answer["message"]) == (code, message)
    assert response.headers["x-request-id"] == answer["request_id"]
    assert emu.stats.tokens == 0
    assert emu.stats.rows == 0


def test_unknown_path_and_wrong_method(http: httpx.Client) -> None:
    """An unknown path is 404 NotFound and a GET on the embedding path is 405."""
    missing = http.post("/api/v1/services/nothing-here", json={})
    assert missing.status_code == 404
    assert missing.json()["code"] == "NotFound"
    wrong = http.get(PATH)
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "MethodNotAllowed"


async def test_async_client_gets_the_same_answer(emu: Emulator) -> None:
    """The transport serves httpx.AsyncClient with the same vectors as the sync path."""
    headers = {"Authorization": "Bearer sk-async"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url="http://e", headers=headers
    ) as client:
        response = await client.post(PATH, json=body(texts=["async hello"], dimension=64))
    assert response.status_code == 200
    vector = response.json()["output"]["embeddings"][0]["embedding"]
    np.testing.assert_allclose(vector, text_vector(V4, "async hello", dimension=64), atol=1e-7)
