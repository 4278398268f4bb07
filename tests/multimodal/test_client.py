"""embed_multimodal through both shells: batching to every cap, order, usage, retries, errors."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed import (
    APIStatusError,
    AsyncDashScopeClient,
    BadRequestError,
    BatchSizeError,
    DashScopeClient,
    EmbeddingResult,
    Image,
    MultiImages,
    RateLimitError,
    Video,
)
from dashscope_embed.emulator import Emulator, EmulatorConfig, text_vector
from dashscope_embed.emulator._mm_vectors import multimodal_vector
from dashscope_embed.multimodal._inputs import Element
from dashscope_embed.multimodal._job import plan_batches
from tests.conftest import TEST_KEY

from .conftest import Shell, contents, make_png

PLUS = "tongyi-embedding-vision-plus"


def uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_vectors_are_the_emulators_in_input_order(shell: Shell) -> None:
    """Each row is the emulator's vector for that input, and a text equals its text vector."""
    cat = make_png("cat", (1, 2, 3))
    inputs: list[object] = ["a cat", Image.from_bytes(cat), Image("https://img.test/dog.png")]
    res = shell.embed(inputs, dimension=256)
    expected = [
        multimodal_vector(PLUS, {"text": "a cat"}, dimension=256),
        multimodal_vector(PLUS, {"image": uri(cat)}, dimension=256),
        multimodal_vector(PLUS, {"image": "https://img.test/dog.png"}, dimension=256),
    ]
    np.testing.assert_allclose(res.embeddings, np.array(expected), atol=1e-6)
    np.testing.assert_allclose(
        res.embeddings[0], text_vector(PLUS, "a cat", dimension=256), atol=1e-6
    )
    assert res.dimension == 256
    assert res.model == PLUS
    assert res.types == ("text", "image", "image")


def test_text_and_image_sharing_a_label_are_close(shell: Shell) -> None:
    """A text is closest to the image with its label (the property text→image search needs)."""
    labels = ["cat", "dog", "red car", "mountain lake", "bicycle"]
    images = [Image.from_bytes(make_png(lb, (i, i, i))) for i, lb in enumerate(labels)]
    queries = [f"a photo of a {lb}" for lb in labels]
    res = shell.embed([*images, *queries])
    sims = res.embeddings[5:] @ res.embeddings[:5].T
    assert sims.argmax(axis=1).tolist() == [0, 1, 2, 3, 4]
    off_diagonal = sims[~np.eye(5, dtype=bool)]
    assert sims.diagonal().min() > 0.5 > 0.1 > off_diagonal.max()


@pytest.mark.parametrize(
    ("model", "inputs", "sizes"),
    [
        (PLUS, [f"t{i}" for i in range(45)], [20, 20, 5]),
        # multimodal-embedding-v1 takes one image and one video per request
        ("multimodal-embedding-v1", ["a", "b", "IMG", "c", "IMG", "VID", "VID", "d"], [4, 2, 2]),
        # qwen3-vl-embedding: at most 5 images, 1 video per request
        ("qwen3-vl-embedding", ["IMG"] * 7 + ["t"] * 3 + ["VID", "VID"], [5, 6, 1]),
    ],
)
def test_batches_respect_element_image_and_video_caps(
    shell: Shell, emulator: Emulator, model: str, inputs: list[str], sizes: list[int]
) -> None:
    """No request exceeds the model's element, image or video cap, and the rows come back in
    input order whatever the batching."""

    def build(tag: str, i: int) -> object:
        if tag == "IMG":
            return Image(f"https://img.test/{i}.png")
        if tag == "VID":
            return Video(f"https://video.test/{i}.mp4")
        return f"{tag} number {i}"

    items = [build(tag, i) for i, tag in enumerate(inputs)]
    res = shell.embed(items, model=model)
    sent = contents(emulator)
    assert sorted(len(c) for c in sent) == sorted(sizes)
    spec_images = {"multimodal-embedding-v1": 1, "qwen3-vl-embedding": 5}.get(model)
    for batch in sent:
        if spec_images is not None:
            assert sum("image" in item for item in batch) <= spec_images
        assert sum("video" in item for item in batch) <= 1
    flat = [item for batch in sorted(sent, key=lambda b: _first_pos(b, items)) for item in batch]
    assert len(flat) == len(items)
    dims = res.embeddings.shape[1]
    expected = [multimodal_vector(model, _content(x), dimension=dims) for x in items]
    np.testing.assert_allclose(res.embeddings, np.array(expected), atol=1e-6)


def _content(item: object) -> dict[str, Any]:
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, Image):
        return {"image": item.source}
    assert isinstance(item, Video)
    return {"video": item.url}


def _first_pos(batch: list[dict[str, Any]], items: list[object]) -> int:
    return [_content(x) for x in items].index(batch[0])


def test_plan_counts_each_image_of_multi_images() -> None:
    """A multi_images element counts all its images against max_images when batching."""
    els = [
        Element({}, "multi_images", images=3),
        Element({}, "image", images=1),
        Element({}, "image", images=1),
        Element({}, "text"),
    ]
    batches = plan_batches(els, size=20, max_images=4, max_videos=1)
    assert [b.indices for b in batches] == [(0, 1), (2, 3)]


def test_a_too_big_element_names_its_index(shell: Shell, emulator: Emulator) -> None:
    """A multi_images element with more images than a request may hold is refused up front."""
    from dashscope_embed import InvalidInputError, get_model
    from dashscope_embed.multimodal._encode import encode_inputs

    spec = get_model("tongyi-embedding-vision-plus-2026-03-06")
    els = encode_inputs(["a", MultiImages(["https://a.test/1.png"] * 8)], spec)
    with pytest.raises(InvalidInputError) as info:
        plan_batches(els, size=20, max_images=5, max_videos=None)
    assert info.value.index == 1
    assert info.value.rule == "too_many_images"


def test_usage_shapes_are_passed_through(shell: Shell) -> None:
    """Tokens, image tokens, image count and duration reach Usage from every documented shape."""
    png = make_png("cat")
    tongyi = shell.embed(["a cat", Image.from_bytes(png)])
    assert tongyi.usage.requests == 1
    assert tongyi.usage.image_tokens == 64 + len(png) // 1024
    assert tongyi.usage.total_tokens == tongyi.usage.input_tokens > tongyi.usage.image_tokens
    v1 = shell.embed(
        ["a", Image.from_bytes(png), Video("https://v.test/a.mp4")], model="multimodal-embedding-v1"
    )
    assert (v1.usage.image_count, v1.usage.duration, v1.usage.requests) == (1, 10.0, 1)
    assert v1.usage.total_tokens == v1.usage.input_tokens == 1
    six = [Image(f"https://img.test/{i}.png") for i in range(6)]
    vl = shell.embed(six, model="qwen3-vl-embedding")
    assert (vl.usage.requests, vl.usage.image_tokens) == (2, 6 * 256)
    assert len(vl.request_ids) == 2


def test_enable_fusion_gives_one_vector(shell: Shell, emulator: Emulator) -> None:
    """qwen3-vl-embedding with enable_fusion=True sends one request and returns one fused row."""
    items = [{"text": "a red car"}, {"image": "https://img.test/red-car.png"}]
    res = shell.embed(
        ["a red car", Image("https://img.test/red-car.png")],
        model="qwen3-vl-embedding",
        enable_fusion=True,
        dimension=256,
    )
    assert res.embeddings.shape == (1, 256)
    assert res.types == ("fused",)
    np.testing.assert_allclose(
        res.embeddings[0],
        multimodal_vector("qwen3-vl-embedding", items, dimension=256),
        atol=1e-6,
    )
    assert len(emulator.requests) == 1


def test_throttled_batch_is_retried_alone(shell: Shell, emulator: Emulator) -> None:
    """A 429 is retried after the server's Retry-After, only for the failed batch."""
    emulator.enqueue_fault(
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded, please try again later.",
        retry_after=2,
    )
    res = shell.embed([f"text {i}" for i in range(25)], max_batch_size=15)
    assert shell.sleeps == [2.0]
    assert sorted(r.status for r in emulator.requests) == [200, 200, 429]
    assert sorted(len(c) for c in contents(emulator)) == [10, 15, 15]
    assert len(res) == 25


def test_server_errors_then_success(shell: Shell, emulator: Emulator) -> None:
    """5xx and dropped connections are retried with backoff; the call then succeeds."""
    emulator.enqueue_fault(500, "InternalError", "An internal error has occured", count=1)
    emulator.enqueue_fault(0, "", "", drop=True)
    res = shell.embed(["a", Image("https://img.test/cat.png")])
    assert len(shell.sleeps) == 2
    assert [r.status for r in emulator.requests] == [500, 0, 200]
    assert res.types == ("text", "image")


def test_bad_request_is_not_retried(shell: Shell, emulator: Emulator) -> None:
    """A 400 from the server is raised at once with its code, request id and input indices."""
    emulator.enqueue_fault(400, "InvalidParameter", "Invalid image.")
    with pytest.raises(BadRequestError) as info:
        shell.embed(["a", "b"])
    assert info.value.code == "InvalidParameter"
    assert info.value.input_indices == (0, 1)
    assert info.value.request_id
    assert shell.sleeps == []
    assert len(emulator.requests) == 1


def test_retries_are_bounded(shell: Shell, emulator: Emulator) -> None:
    """After max_retries the last RateLimitError is raised."""
    emulator.enqueue_fault(429, "Throttling", "Requests throttling triggered.", count=10)
    client = shell.make(max_retries=2)
    with pytest.raises(RateLimitError):
        shell.embed(["a"], client=client)
    assert len(emulator.requests) == 3


def test_server_row_limit_resplits_and_is_learned() -> None:
    """A smaller server element limit re-splits the batch and later calls use it directly."""
    emu = Emulator(EmulatorConfig(row_limits={PLUS: 4}))
    client = DashScopeClient(
        TEST_KEY,
        base_url="http://emulator.test",
        http_client=httpx.Client(transport=emu.transport()),
    )
    res = client.embed_multimodal([f"t{i}" for i in range(10)])
    assert [r.status for r in emu.requests] == [400, 200, 200, 200]
    assert client.learned_limits == {PLUS: 4}
    expected = np.array([text_vector(PLUS, f"t{i}") for i in range(10)])
    np.testing.assert_allclose(res.embeddings, expected, atol=1e-6)
    emu.reset_stats()
    client.embed_multimodal([f"t{i}" for i in range(8)])
    assert [len(r.json["input"]["contents"]) for r in emu.requests] == [4, 4]


def test_fused_call_is_never_resplit() -> None:
    """With enable_fusion a server batch-size error is raised, not split (a split would change
    what is embedded)."""
    emu = Emulator(EmulatorConfig(row_limits={"qwen3-vl-embedding": 2}))
    client = DashScopeClient(
        TEST_KEY,
        base_url="http://emulator.test",
        http_client=httpx.Client(transport=emu.transport()),
    )
    with pytest.raises(BatchSizeError):
        client.embed_multimodal(["a", "b", "c"], model="qwen3-vl-embedding", enable_fusion=True)
    assert len(emu.requests) == 1


def _reply(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body, headers={"x-request-id": "rid-1"})


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_response_placed_by_index(kind: str) -> None:
    """Rows are placed by their ``index`` even when the server answers out of order, and a
    missing type falls back to the input's kind."""

    def handler(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["input"]["contents"])
        items = [{"index": i, "embedding": [float(i), 1.0]} for i in reversed(range(n))]
        return _reply(
            {"output": {"embeddings": items}, "usage": {"input_tokens": 7}, "request_id": "rid-1"}
        )

    res = _mock_call(kind, handler, ["a", Image("https://img.test/x.png"), "c"])
    assert res.tolist() == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
    assert res.types == ("text", "image", "text")
    assert res.usage.total_tokens == 7
    assert res.request_ids == ("rid-1",)


@pytest.mark.parametrize(
    "output",
    [
        {"embeddings": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]},
        {"embeddings": [{"index": 0, "embedding": [1.0]}]},
        {"embedding": [1.0, 2.0]},
        {"embeddings": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}]},
        {"embeddings": [{"index": 0, "embedding": [None]}, {"index": 1, "embedding": [1.0]}]},
    ],
)
def test_malformed_success_is_an_error(output: dict[str, Any]) -> None:
    """A 200 with duplicate, missing, ragged or null rows raises a ProtocolError status error."""

    def handler(request: httpx.Request) -> httpx.Response:
        return _reply({"output": output, "usage": {}, "request_id": "rid-1"})

    with pytest.raises(APIStatusError) as info:
        _mock_call("sync", handler, ["a", "b"])
    assert info.value.code == "ProtocolError"
    assert info.value.status == 200


def _mock_call(
    kind: str, handler: Any, inputs: list[object], max_concurrency: int = 8, **options: Any
) -> EmbeddingResult:
    transport = httpx.MockTransport(handler)
    if kind == "sync":
        client = DashScopeClient(
            TEST_KEY,
            base_url="http://x.test",
            max_concurrency=max_concurrency,
            http_client=httpx.Client(transport=transport),
        )
        return client.embed_multimodal(inputs, **options)

    async def go() -> EmbeddingResult:
        aclient = AsyncDashScopeClient(
            TEST_KEY,
            base_url="http://x.test",
            max_concurrency=max_concurrency,
            http_client=httpx.AsyncClient(transport=transport),
        )
        return await aclient.embed_multimodal(inputs, **options)

    return asyncio.run(go())


def test_progress_counts_every_input(shell: Shell) -> None:
    """on_progress receives the number of inputs finished per request, summing to the total."""
    seen: list[int] = []
    shell.embed([f"t{i}" for i in range(45)], on_progress=seen.append)
    assert sorted(seen) == [5, 20, 20]


def test_concurrent_batches_keep_order(emulator: Emulator) -> None:
    """Many batches in flight at once still return rows in input order."""
    client = DashScopeClient(
        TEST_KEY,
        base_url="http://emulator.test",
        max_concurrency=4,
        http_client=httpx.Client(transport=emulator.transport()),
    )
    texts = [f"item {i}" for i in range(100)]
    res = client.embed_multimodal(texts, dimension=64)
    expected = np.array([text_vector(PLUS, t, dimension=64) for t in texts])
    np.testing.assert_allclose(res.embeddings, expected, atol=1e-6)
    assert len(emulator.requests) == 5


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_failed_call_hands_back_the_inputs_it_embedded(kind: str, emulator: Emulator) -> None:
    """The first request (20 inputs) succeeds, the second fails: exc.partial has inputs 0-19."""
    calls: list[int] = []
    inner = emulator.transport()

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 2:
            return httpx.Response(400, json={"code": "InvalidParameter", "message": "bad input"})
        return inner.handle_request(request)

    texts = [f"item {i}" for i in range(30)]
    with pytest.raises(APIStatusError) as info:
        _mock_call(kind, handler, texts, max_concurrency=1, dimension=64)
    partial = info.value.partial
    assert partial is not None
    assert partial.rows == tuple(range(20))
    expected = np.array([text_vector(PLUS, t, dimension=64) for t in texts[:20]])
    np.testing.assert_allclose(partial.result.embeddings, expected, atol=1e-6)
    assert partial.result.types == ("text",) * 20
    assert len(calls) == 2
