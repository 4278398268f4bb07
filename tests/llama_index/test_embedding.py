"""Contract tests of DashScopeEmbedding: hooks, batching, text types, serialisation, errors."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
from llama_index.core.callbacks.schema import EventPayload
from llama_index.core.ingestion.pipeline import get_transformation_hash
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.schema import TextNode

import llama_index_dashscope_embed
from dashscope_embed import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InvalidInputError,
    Usage,
    get_model,
)
from dashscope_embed.emulator import Emulator, EmulatorConfig, EmulatorServer, text_vector
from llama_index_dashscope_embed import (
    DashScopeEmbedding,
    DashScopeUsageEvent,
    DashScopeUsageHandler,
)

from .conftest import EMU_URL, TEST_KEY, Recorder, body_params, rows_per_request

Make = Callable[..., Any]
V4 = "text-embedding-v4"


def close_to(got: list[float], want: np.ndarray) -> bool:
    return bool(np.allclose(np.asarray(got, dtype=np.float32), want, atol=1e-6))


def run(mode: str, sync_call: Callable[[], Any], async_call: Callable[[], Any]) -> Any:
    """Run the sync call, or the async one in a fresh event loop."""
    return sync_call() if mode == "sync" else asyncio.run(async_call())


def test_exported_names_are_pinned() -> None:
    """The package exports exactly this sorted list."""
    assert llama_index_dashscope_embed.__all__ == [
        "DashScopeEmbedding",
        "DashScopeMilvusSparseFunction",
        "DashScopeMultiModalEmbedding",
        "DashScopeSparseEmbedding",
        "DashScopeUsageEvent",
        "DashScopeUsageHandler",
        "QdrantSparseFns",
        "image_nodes",
        "qdrant_sparse_fns",
    ]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_query_hook_sends_query_and_instruct(make: Make, emulator: Emulator, mode: str) -> None:
    """get/aget_query_embedding send text_type=query with the instruct and return its vector."""
    emb = make(DashScopeEmbedding, query_instruct="Find the passage")
    got = run(
        mode,
        lambda: emb.get_query_embedding("what is a panda"),
        lambda: emb.aget_query_embedding("what is a panda"),
    )
    assert body_params(emulator) == [{"text_type": "query", "instruct": "Find the passage"}]
    want = text_vector(V4, "what is a panda", text_type="query", instruct="Find the passage")
    assert close_to(got, want)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_text_hook_sends_document(make: Make, emulator: Emulator, mode: str) -> None:
    """get/aget_text_embedding send text_type=document (no instruct) and return its vector."""
    emb = make(DashScopeEmbedding, query_instruct="Find the passage")
    got = run(
        mode,
        lambda: emb.get_text_embedding("pandas eat bamboo"),
        lambda: emb.aget_text_embedding("pandas eat bamboo"),
    )
    assert body_params(emulator) == [{"text_type": "document"}]
    assert close_to(got, text_vector(V4, "pandas eat bamboo"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_25_texts_with_batch_size_10_go_out_as_10_10_5(
    make: Make, emulator: Emulator, mode: str
) -> None:
    """get/aget_text_embedding_batch send real batches (10+10+5 rows), vectors in input order."""
    emb = make(DashScopeEmbedding, embed_batch_size=10)
    texts = [f"document number {i} about topic {i % 7}" for i in range(25)]
    got = run(
        mode,
        lambda: emb.get_text_embedding_batch(texts),
        lambda: emb.aget_text_embedding_batch(texts),
    )
    assert sorted(rows_per_request(emulator)) == [5, 10, 10]
    assert all(p["text_type"] == "document" for p in body_params(emulator))
    assert len(got) == 25
    for text, vec in zip(texts, got, strict=True):
        assert close_to(vec, text_vector(V4, text))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_node_transform_embeds_25_nodes_in_three_requests(
    make: Make, emulator: Emulator, mode: str
) -> None:
    """Using the model as a transformation (__call__ / acall) batches nodes the same way."""
    emb = make(DashScopeEmbedding)
    nodes = [TextNode(text=f"node {i} text") for i in range(25)]
    run(mode, lambda: emb(nodes), lambda: emb.acall(nodes))
    assert sorted(rows_per_request(emulator)) == [5, 10, 10]
    assert all(n.embedding is not None and len(n.embedding) == 1024 for n in nodes)


def test_embed_batch_size_default_is_not_the_row_limit(make: Make, emulator: Emulator) -> None:
    """embed_batch_size defaults to 2048 texts per call (VectorStoreIndex's insert batch);
    the core sends 10-row requests: 2,050 texts are two calls, 205 requests."""
    emb = make(DashScopeEmbedding)
    assert emb.embed_batch_size == 2048
    calls: list[int] = []
    hook = emb._get_text_embeddings
    object.__setattr__(emb, "_get_text_embeddings", lambda t: calls.append(len(t)) or hook(t))
    emb.get_text_embedding_batch([f"text {i}" for i in range(2050)])
    assert calls == [2048, 2]
    assert sorted(rows_per_request(emulator)) == [2] + [8] + [10] * 204


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_embed_batch_size_below_one_is_a_clear_value_error(make: Make, size: object) -> None:
    """A batch size that is not an int >= 1 fails at construction, naming the value."""
    with pytest.raises(ValueError, match=r"embed_batch_size"):
        make(DashScopeEmbedding, embed_batch_size=size)


def test_unknown_model_takes_any_batch_size() -> None:
    """An unknown model is batched by the core's row limit, not by embed_batch_size."""
    spec = replace(get_model("text-embedding-v4"), name="text-embedding-v9", max_batch_size=40)
    emu = Emulator(EmulatorConfig(extra_models={"text-embedding-v9": spec}))
    emb = DashScopeEmbedding(
        api_key=TEST_KEY,
        base_url=EMU_URL,
        model_name="text-embedding-v9",
        embed_batch_size=40,
        http_client=httpx.Client(transport=emu.transport()),
    )
    got = emb.get_text_embedding_batch([f"text {i}" for i in range(40)])
    assert rows_per_request(emu) == [10] * 4  # the conservative default for unknown names
    want = text_vector("text-embedding-v9", "text 3", dimension=1024, max_dimension=2048)
    assert close_to(got[3], want)


def test_invalid_options_fail_at_construction(make: Make) -> None:
    """A dimension the model lacks and instruct with document-only policy are rejected early."""
    with pytest.raises(InvalidInputError, match="allowed: 2048"):
        make(DashScopeEmbedding, dimension=333)
    with pytest.raises(ValueError, match="query_instruct applies to queries only"):
        make(DashScopeEmbedding, text_type="document", query_instruct="x")
    with pytest.raises(InvalidInputError, match="instruct"):
        make(DashScopeEmbedding, model_name="text-embedding-v3", query_instruct="x")


def test_symmetric_policy_sends_document_for_queries(make: Make, emulator: Emulator) -> None:
    """text_type='document' embeds queries as documents (for symmetric tasks)."""
    emb = make(DashScopeEmbedding, text_type="document")
    got = emb.get_query_embedding("pandas eat bamboo")
    assert body_params(emulator) == [{"text_type": "document"}]
    assert close_to(got, text_vector(V4, "pandas eat bamboo"))


def test_dimension_reaches_the_wire(make: Make, emulator: Emulator) -> None:
    """dimension=256 is sent and the vectors have 256 values, equal to the emulator's."""
    emb = make(DashScopeEmbedding, dimension=256)
    got = emb.get_text_embedding_batch(["alpha", "beta"])
    assert body_params(emulator) == [{"text_type": "document", "dimension": 256}]
    assert close_to(got[1], text_vector(V4, "beta", dimension=256))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_agg_embedding_from_queries_is_the_mean_of_query_vectors(
    make: Make, emulator: Emulator, mode: str
) -> None:
    """The inherited (a)get_agg_embedding_from_queries averages query-typed vectors."""
    emb = make(DashScopeEmbedding)
    queries = ["red apples", "green pears"]
    got = run(
        mode,
        lambda: emb.get_agg_embedding_from_queries(queries),
        lambda: emb.aget_agg_embedding_from_queries(queries),
    )
    want = sum(text_vector(V4, q, text_type="query") for q in queries) / 2
    assert close_to(got, want)
    assert [p["text_type"] for p in body_params(emulator)] == ["query", "query"]


def test_empty_batch_sends_nothing(make: Make, emulator: Emulator) -> None:
    """An empty list gives an empty list and no request."""
    emb = make(DashScopeEmbedding)
    assert emb.get_text_embedding_batch([]) == []
    assert emulator.requests == []


FULL = {
    "model_name": "text-embedding-v3",
    "dimension": 512,
    "output_type": "dense&sparse",
    "text_type": "auto",
    "query_instruct": None,
    "embed_batch_size": 8,
    "num_workers": 4,
}


def test_to_dict_from_dict_round_trip(make: Make) -> None:
    """Every vector-affecting option survives to_dict/from_dict and to_json/from_json."""
    emb = make(DashScopeEmbedding, **FULL)
    data = emb.to_dict()
    assert data["class_name"] == DashScopeEmbedding.class_name() == "DashScopeEmbedding"
    assert {k: data[k] for k in FULL} == FULL
    assert data["base_url"] == EMU_URL
    assert "region" in data
    again = DashScopeEmbedding.from_dict(data, api_key=TEST_KEY)
    assert again.to_dict() == data
    assert DashScopeEmbedding.from_json(emb.to_json(), api_key=TEST_KEY).to_dict() == data


@pytest.mark.parametrize(
    ("change", "invalidates"),
    [
        ({"model_name": "text-embedding-v3"}, True),
        ({"dimension": 512}, True),
        ({"output_type": "dense&sparse"}, True),
        ({"query_instruct": "Find answers"}, True),
        ({"text_type": "document"}, True),
        ({"base_url": "http://other.test"}, True),
        ({"timeout": 5.0, "max_retries": 1, "max_concurrency": 2}, False),
    ],
)
def test_ingestion_cache_key_tracks_vector_options(
    make: Make, change: dict[str, Any], invalidates: bool
) -> None:
    """IngestionPipeline's cache key changes with each vector option, not transport knobs."""
    nodes = [TextNode(text="same text")]
    base = get_transformation_hash(nodes, make(DashScopeEmbedding))
    other = get_transformation_hash(nodes, make(DashScopeEmbedding, **change))
    assert (base != other) is invalidates


def test_region_is_resolved_and_serialised() -> None:
    """region='intl' is pinned as ap-southeast-1 with its host, and round-trips."""
    emb = DashScopeEmbedding(api_key=TEST_KEY, region="intl")
    data = emb.to_dict()
    assert (data["region"], data["base_url"]) == (
        "ap-southeast-1",
        "https://dashscope-intl.aliyuncs.com",
    )
    assert DashScopeEmbedding.from_dict(data, api_key=TEST_KEY).to_dict() == data


SECRET = "sk-very-secret-key-4242"


def test_key_never_leaves_through_any_serialised_form_or_event(
    make: Make, emulator: Emulator, recorder: Recorder
) -> None:
    """The key is absent from repr, to_dict, to_json, to_payload, events, spans and callbacks."""
    emb = make(DashScopeEmbedding, api_key=SECRET, callback_manager=recorder.callback_manager)
    emb.get_query_embedding("q")
    emb.get_text_embedding_batch(["a", "b"])
    asyncio.run(emb.aget_text_embedding_batch(["c"]))
    emulator.enqueue_fault(400, "InvalidParameter", "bad input")
    with pytest.raises(BadRequestError):
        emb.get_text_embedding("d")
    assert emulator.requests[0].used_key(SECRET)
    starts = recorder.of_type(EmbeddingStartEvent)
    assert starts
    assert all(e.model_dict == emb.to_payload() for e in starts)
    seen = recorder.dump()
    assert "EmbeddingEndEvent" in seen
    assert "DashScopeUsageEvent" in seen
    assert recorder.spans.seen
    assert "BadRequestError" in seen
    assert any(p and EventPayload.EXCEPTION in p for _, _, p in recorder.callbacks.seen)
    for text in (
        repr(emb),
        str(emb),
        json.dumps(emb.to_dict()),
        emb.to_json(),
        json.dumps(emb.to_payload()),
        emb.model_dump_json(),
        seen,
    ):
        assert SECRET not in text
        assert "sk-very" not in text


def test_key_comes_from_the_environment(
    make: Make, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without api_key=, DASHSCOPE_API_KEY is used; without either, a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="DASHSCOPE_API_KEY"):
        DashScopeEmbedding()
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-from-env")
    emb = make(DashScopeEmbedding, api_key=None)
    emb.get_text_embedding("x")
    assert emulator.requests[0].used_key("sk-from-env")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(400, "InvalidParameter", BadRequestError), (401, "InvalidApiKey", AuthenticationError)],
)
def test_failures_raise_typed_errors_and_no_end_event(
    make: Make,
    emulator: Emulator,
    recorder: Recorder,
    mode: str,
    status: int,
    code: str,
    error: type[Exception],
) -> None:
    """A 400 or 401 raises the core's typed error; LlamaIndex never sees an EmbeddingEndEvent."""
    emb = make(DashScopeEmbedding, callback_manager=recorder.callback_manager)
    emulator.enqueue_fault(status, code, "refused by the test")
    with pytest.raises(error) as info:
        run(
            mode,
            lambda: emb.get_text_embedding_batch(["a", "b"]),
            lambda: emb.aget_text_embedding_batch(["a", "b"]),
        )
    assert info.value.status == status
    assert info.value.code == code
    assert len(emulator.requests) == 1  # 400/401 are never retried
    assert recorder.of_type(EmbeddingEndEvent) == []


@pytest.mark.integration
def test_two_event_loops_in_a_row_each_get_their_own_async_client(
    emulator_server: EmulatorServer,
) -> None:
    """Two asyncio.run calls both work; each loop gets a connection pool of its own."""
    emb = DashScopeEmbedding(api_key=TEST_KEY, base_url=emulator_server.url)
    clients: list[object] = []

    async def once() -> list[float]:
        vec = await emb.aget_query_embedding("hello")
        clients.append(await emb._rt.aclient._http())
        return vec

    assert asyncio.run(once()) == asyncio.run(once())
    assert clients[0] is not clients[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_usage_totals_and_usage_events(
    make: Make, emulator: Emulator, recorder: Recorder, mode: str
) -> None:
    """usage/last_usage hold the server's counts and each call emits a DashScopeUsageEvent."""
    handler = DashScopeUsageHandler()
    recorder.events.seen.clear()
    emb = make(DashScopeEmbedding)
    assert emb.usage == Usage()
    assert emb.last_usage is None
    texts = [f"some words number {i}" for i in range(25)]
    get_dispatcher().add_event_handler(handler)
    try:
        run(
            mode,
            lambda: emb.get_text_embedding_batch(texts),
            lambda: emb.aget_text_embedding_batch(texts),
        )
    finally:
        get_dispatcher().event_handlers.remove(handler)
    events = recorder.of_type(DashScopeUsageEvent)
    assert sum(e.rows for e in events) == 25 == handler.row_count
    assert emb.usage.requests == 3 == handler.request_count
    assert emb.usage.total_tokens == handler.total_embedding_token_count == emulator.stats.tokens
    assert emb.usage.total_tokens > 0
    assert emb.last_usage is not None
    assert emb.last_usage.requests == 3  # one batch call of 25 texts: 3 requests of <= 10
    assert all(e.model_name == V4 and e.text_type == "document" for e in events)
    assert [len(e.request_ids) for e in events] == [3]


def test_pickled_copy_keeps_key_and_options(make: Make) -> None:
    """A pickled model (IngestionPipeline workers) keeps its key and its settings."""
    emb = make(DashScopeEmbedding, api_key=SECRET, dimension=128, base_url=EMU_URL)
    copy = pickle.loads(pickle.dumps(emb))
    assert copy.to_dict() == emb.to_dict()
    assert copy._rt.sync.config.api_key == SECRET
