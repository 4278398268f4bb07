"""DashScopeEmbeddings on the wire: text types, instruct, batching, outputs, errors, config."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable

import httpx
import numpy as np
import pytest

import langchain_dashscope_embed
from dashscope_embed import DEFAULT_TEXT_MODEL, ConfigurationError, InvalidInputError, Usage
from dashscope_embed.emulator import Emulator, EmulatorServer, count_tokens, text_vector
from langchain_dashscope_embed import DashScopeEmbeddings
from tests.conftest import TEST_KEY

from .conftest import EMU_URL, Caller, wire_params, wire_rows

Make = Callable[..., DashScopeEmbeddings]
INSTRUCT = "Given a web search query, retrieve relevant passages that answer the query"


def close(vec: list[float], expected: np.ndarray) -> bool:
    return bool(np.allclose(np.asarray(vec, dtype=np.float32), expected, atol=1e-5))


def test_exports_are_pinned_and_sorted() -> None:
    """The package exports exactly this sorted __all__, each name resolvable."""
    expected = [
        "DashScopeEmbeddings",
        "DashScopeMilvusSparseEmbeddings",
        "DashScopeMultimodalEmbeddings",
        "DashScopeSparseEmbeddings",
        "cached_embeddings",
    ]
    assert langchain_dashscope_embed.__all__ == expected
    for name in expected:
        assert getattr(langchain_dashscope_embed, name).__name__ == name


def test_defaults_match_a_current_model(make_emb: Make) -> None:
    """The default model is text-embedding-v4 (not community's text-embedding-v1)."""
    emb = make_emb()
    assert emb.model == DEFAULT_TEXT_MODEL == "text-embedding-v4"
    assert emb.output_type == "dense"


def test_documents_send_document_and_query_sends_query(
    make_emb: Make, emulator: Emulator, call: Caller
) -> None:
    """embed_documents sends text_type=document; embed_query sends query (no instruct unset)."""
    emb = make_emb()
    docs = call(emb, "embed_documents", ["Hangzhou is in Zhejiang.", "Tea grows on hills."])
    query = call(emb, "embed_query", "Where is Hangzhou?")
    assert wire_params(emulator) == [{"text_type": "document"}, {"text_type": "query"}]
    assert close(
        docs[0], text_vector("text-embedding-v4", "Hangzhou is in Zhejiang.", dimension=1024)
    )
    assert close(docs[1], text_vector("text-embedding-v4", "Tea grows on hills.", dimension=1024))
    expected_q = text_vector(
        "text-embedding-v4", "Where is Hangzhou?", dimension=1024, text_type="query"
    )
    assert close(query, expected_q)


def test_query_instruct_goes_to_queries_only(
    make_emb: Make, emulator: Emulator, call: Caller
) -> None:
    """query_instruct is sent as instruct with queries and never with documents."""
    emb = make_emb(query_instruct=INSTRUCT, dimension=256)
    call(emb, "embed_documents", ["green tea"])
    query = call(emb, "embed_query", "which tea?")
    assert wire_params(emulator) == [
        {"text_type": "document", "dimension": 256},
        {"text_type": "query", "dimension": 256, "instruct": INSTRUCT},
    ]
    expected = text_vector(
        "text-embedding-v4", "which tea?", dimension=256, text_type="query", instruct=INSTRUCT
    )
    assert close(query, expected)


def test_outputs_are_plain_float_lists_one_per_input_in_order(
    make_emb: Make, emulator: Emulator, call: Caller
) -> None:
    """25 texts go out as 10+10+5 (v4) and come back as 25 plain-float lists in input order."""
    texts = [f"document number {i} about topic {i % 7}" for i in range(25)]
    vectors = call(make_emb(dimension=128), "embed_documents", texts)
    assert sorted(wire_rows(emulator), reverse=True) == [10, 10, 5]  # batches run concurrently
    assert len(vectors) == 25
    assert all(type(v) is list and type(v[0]) is float and len(v) == 128 for v in vectors)
    for text, vec in zip(texts, vectors, strict=True):
        assert close(vec, text_vector("text-embedding-v4", text, dimension=128))


def test_v2_batches_by_25(make_emb: Make, emulator: Emulator, call: Caller) -> None:
    """The row limit comes from the model catalog: 30 texts on v2 are sent as 25+5."""
    call(make_emb(model="text-embedding-v2"), "embed_documents", [f"t {i}" for i in range(30)])
    assert sorted(wire_rows(emulator), reverse=True) == [25, 5]


def test_empty_list_sends_nothing(make_emb: Make, emulator: Emulator, call: Caller) -> None:
    """An empty list returns [] without any request."""
    assert call(make_emb(), "embed_documents", []) == []
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("texts", "rule"),
    [(["ok", ""], "empty_text"), (["ok", 3], "not_a_string"), ("a bare string", "not_a_list")],
)
def test_bad_input_raises_the_core_error_unsent(
    make_emb: Make, emulator: Emulator, call: Caller, texts: object, rule: str
) -> None:
    """Bad input propagates the core's InvalidInputError (with its rule) and sends nothing."""
    with pytest.raises(InvalidInputError) as info:
        call(make_emb(), "embed_documents", texts)
    assert info.value.rule == rule
    assert emulator.requests == []


def test_async_uses_the_event_loop_not_threads(make_emb: Make, emulator: Emulator) -> None:
    """aembed_* never go through run_in_executor and run on the event loop's own thread."""
    emb = make_emb()

    async def main() -> list[list[float]]:
        loop = asyncio.get_running_loop()

        def refuse(*_a: object, **_k: object) -> None:
            raise AssertionError("run_in_executor used")

        loop.run_in_executor = refuse  # type: ignore[assignment,method-assign]
        return await emb.aembed_documents([f"text {i}" for i in range(12)])

    assert len(asyncio.run(main())) == 12
    assert sorted(wire_rows(emulator), reverse=True) == [10, 2]


@pytest.mark.integration
def test_two_event_loops_in_a_row_over_loopback(emulator_server: EmulatorServer) -> None:
    """Two asyncio.run() calls both work: the async core client is created per event loop."""
    emb = DashScopeEmbeddings(api_key=TEST_KEY, base_url=emulator_server.url)
    first = asyncio.run(emb.aembed_query("first loop"))
    second = asyncio.run(emb.aembed_documents(["second loop"]))
    assert close(
        first, text_vector("text-embedding-v4", "first loop", dimension=1024, text_type="query")
    )
    assert close(second[0], text_vector("text-embedding-v4", "second loop", dimension=1024))
    emb.close()


def test_usage_totals_and_last_call(make_emb: Make, call: Caller) -> None:
    """usage sums the server's total_tokens over every request; last_usage is the latest call."""
    emb = make_emb()
    texts = [f"usage text number {i}" for i in range(12)]
    call(emb, "embed_documents", texts)
    first = emb.last_usage
    call(emb, "embed_query", "one query")
    assert (first.requests, first.total_tokens) == (2, sum(count_tokens(t) for t in texts))
    assert emb.last_usage.requests == 1
    assert emb.last_usage.total_tokens == count_tokens("one query")
    assert emb.usage == first + emb.last_usage
    emb.reset_usage()
    assert emb.usage == Usage() == emb.last_usage


def test_usage_is_thread_safe(make_emb: Make) -> None:
    """Eight threads embedding at once leave a total equal to the sum of their parts."""
    emb = make_emb()
    single = make_emb()
    single.embed_documents(["thread text"])
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                emb.embed_documents(["thread text"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert emb.usage.requests == 80
    assert emb.usage.total_tokens == 80 * single.usage.total_tokens


def test_old_field_name_and_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """dashscope_api_key= (langchain-community's name) and DASHSCOPE_API_KEY both set the key."""
    old = DashScopeEmbeddings(dashscope_api_key="sk-old-name", base_url=EMU_URL)
    assert old.dashscope_api_key is not None
    assert old.dashscope_api_key.get_secret_value() == "sk-old-name"
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env-name")
    env = DashScopeEmbeddings(base_url=EMU_URL)
    assert env.dashscope_api_key is not None
    assert env.dashscope_api_key.get_secret_value() == "sk-env-name"


def test_missing_key_is_a_configuration_error() -> None:
    """No key anywhere raises the core's ConfigurationError naming DASHSCOPE_API_KEY."""
    with pytest.raises(ConfigurationError, match="DASHSCOPE_API_KEY"):
        DashScopeEmbeddings()


@pytest.mark.parametrize(
    ("field", "hint"),
    [
        ("dimensions", "did you mean 'dimension'"),
        ("model_name", "did you mean 'model'"),
        ("instruct", "did you mean 'query_instruct'"),
        ("colour", "accepts:"),
    ],
)
def test_unknown_fields_are_rejected_clearly(field: str, hint: str) -> None:
    """Unknown fields raise TypeError naming the field, a close match and the accepted fields."""
    with pytest.raises(TypeError, match=f"unknown field '{field}'") as info:
        DashScopeEmbeddings(api_key=TEST_KEY, **{field: 1})
    assert hint in str(info.value)


def test_every_unknown_field_is_named_in_one_error() -> None:
    """Several wrong names are all reported in one TypeError, each with its own hint."""
    with pytest.raises(TypeError) as info:
        DashScopeEmbeddings(api_key=TEST_KEY, model_name="text-embedding-v3", dimensions=512)
    text = str(info.value)
    assert "got 2 unknown fields 'dimensions' (did you mean 'dimension'?), " in text
    assert "'model_name' (did you mean 'model'?)" in text
    assert TEST_KEY not in text


def test_invalid_dimension_fails_at_construction(emulator: Emulator) -> None:
    """A dimension the model does not offer is rejected when the object is built, unsent."""
    with pytest.raises(InvalidInputError, match="dimension"):
        DashScopeEmbeddings(api_key=TEST_KEY, base_url=EMU_URL, dimension=500)
    assert emulator.requests == []


def test_settings_reach_the_core(make_emb: Make, emulator: Emulator) -> None:
    """workspace goes out as X-DashScope-WorkSpace; region/timeout/retries/concurrency resolve."""
    emb = make_emb(workspace="ws-lc-1", timeout=7.5, max_retries=2, max_concurrency=3)
    emb.embed_query("hello")
    assert emulator.requests[0].headers["x-dashscope-workspace"] == "ws-lc-1"
    config = emb._rt.client.config
    assert (config.timeout, config.max_retries, config.max_concurrency) == (7.5, 2, 3)
    intl = DashScopeEmbeddings(api_key=TEST_KEY, region="intl")
    assert intl._rt.client.config.base_url == "https://dashscope-intl.aliyuncs.com"


def test_instances_are_frozen(make_emb: Make) -> None:
    """Changing a field after construction is refused (the core client was built from it)."""
    emb = make_emb()
    with pytest.raises(ValueError, match="frozen"):
        emb.dimension = 512  # type: ignore[misc]


def test_cache_namespace_separates_vector_spaces(make_emb: Make) -> None:
    """Namespaces differ by model, effective dimension, text type and instruct; None == default."""
    base = make_emb()
    assert base.cache_namespace() == "dashscope.text-embedding-v4.d1024.document."
    assert base.cache_namespace() == make_emb(dimension=1024).cache_namespace()
    assert base.cache_namespace("query") == "dashscope.text-embedding-v4.d1024.query.noinstruct."
    spaces = {
        base.cache_namespace(),
        base.cache_namespace("query"),
        make_emb(dimension=512).cache_namespace(),
        make_emb(model="text-embedding-v3").cache_namespace(),
        make_emb(query_instruct=INSTRUCT).cache_namespace("query"),
    }
    assert len(spaces) == 5
    assert make_emb(query_instruct=INSTRUCT).cache_namespace() == base.cache_namespace()
    with pytest.raises(ValueError, match="kind"):
        base.cache_namespace("image")  # type: ignore[arg-type]


def test_user_http_clients_are_not_closed(emulator: Emulator) -> None:
    """close() leaves a caller-supplied http_client open (the caller owns it)."""
    http = httpx.Client(transport=emulator.transport())
    emb = DashScopeEmbeddings(api_key=TEST_KEY, base_url=EMU_URL, http_client=http)
    emb.close()
    assert not http.is_closed
    assert math.isclose(sum(x * x for x in emb.embed_query("still works")), 1.0, rel_tol=1e-4)
