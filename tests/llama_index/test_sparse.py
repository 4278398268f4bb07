"""Sparse adapters: DashScopeSparseEmbedding, Qdrant functions, Milvus adapter, dense&sparse."""

from __future__ import annotations

import abc
import asyncio
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.instrumentation.events.embedding import (
    SparseEmbeddingEndEvent,
    SparseEmbeddingStartEvent,
)

import llama_index_dashscope_embed.milvus as milvus_mod
from dashscope_embed import AuthenticationError, InvalidInputError, SparseVector
from dashscope_embed.emulator import Emulator, sparse_vector
from llama_index_dashscope_embed import (
    DashScopeEmbedding,
    DashScopeMilvusSparseFunction,
    DashScopeSparseEmbedding,
    qdrant_sparse_fns,
)
from llama_index_dashscope_embed._stash import SparseStash

from .conftest import Recorder, body_params, rows_per_request

Make = Callable[..., Any]


def merged(text: str) -> dict[int, float]:
    """The emulator's sparse vector for ``text`` with repeated indices merged (max weight)."""
    out: dict[int, float] = {}
    for entry in sparse_vector(text):
        idx, val = int(entry["index"]), float(entry["value"])
        out[idx] = max(val, out.get(idx, val))
    return dict(sorted(out.items()))


def run(mode: str, sync_call: Callable[[], Any], async_call: Callable[[], Any]) -> Any:
    return sync_call() if mode == "sync" else asyncio.run(async_call())


REPEATS = "the cat saw the other cat and the cat ran"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sparse_query_and_text_hooks(make: Make, emulator: Emulator, mode: str) -> None:
    """Query hooks send query, text hooks document, both sparse; indices are merged and unique."""
    emb = make(DashScopeSparseEmbedding)
    q = run(
        mode, lambda: emb.get_query_embedding(REPEATS), lambda: emb.aget_query_embedding(REPEATS)
    )
    d = run(
        mode,
        lambda: emb.get_text_embedding("pandas eat bamboo"),
        lambda: emb.aget_text_embedding("pandas eat bamboo"),
    )
    assert body_params(emulator) == [
        {"text_type": "query", "output_type": "sparse"},
        {"text_type": "document", "output_type": "sparse"},
    ]
    assert q == merged(REPEATS)
    assert len(q) < len(sparse_vector(REPEATS))
    assert d == merged("pandas eat bamboo")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sparse_batches_are_real_batches(make: Make, emulator: Emulator, mode: str) -> None:
    """25 texts go out as 10+10+5 sparse requests, one dict per text, in order."""
    emb = make(DashScopeSparseEmbedding)
    texts = [f"sparse text {i} word{i}" for i in range(25)]
    got = run(
        mode,
        lambda: emb.get_text_embedding_batch(texts),
        lambda: emb.aget_text_embedding_batch(texts),
    )
    assert sorted(rows_per_request(emulator)) == [5, 10, 10]
    assert got == [merged(t) for t in texts]


def test_sparse_model_keeps_the_key_private_and_raises_typed_errors(
    make: Make, emulator: Emulator, recorder: Recorder
) -> None:
    """The sparse model's dump, payload and events hold no key; a 401 is an AuthenticationError."""
    emb = make(DashScopeSparseEmbedding, api_key="sk-sparse-secret-99")
    emb.get_text_embedding_batch(["a", "b"])
    emulator.enqueue_fault(401, "InvalidApiKey", "Invalid API-key provided.")
    with pytest.raises(AuthenticationError):
        asyncio.run(emb.aget_query_embedding("q"))
    assert emulator.requests[0].used_key("sk-sparse-secret-99")
    assert recorder.of_type(SparseEmbeddingStartEvent)
    assert recorder.of_type(SparseEmbeddingEndEvent)[0].embeddings == [merged("a"), merged("b")]
    assert emb.to_payload()["class_name"] == "DashScopeSparseEmbedding"
    for text in (repr(emb), emb.model_dump_json(), str(emb.to_payload()), recorder.dump()):
        assert "sk-sparse-secret-99" not in text


def test_sparse_needs_a_model_with_sparse_output(make: Make) -> None:
    """text-embedding-v2 has no sparse output: rejected at construction, before any request."""
    with pytest.raises(InvalidInputError, match="no sparse output"):
        make(DashScopeSparseEmbedding, model_name="text-embedding-v2")


def test_qdrant_functions_send_document_and_query(make: Make, emulator: Emulator) -> None:
    """The doc fn sends text_type=document, the query fn query; both return (indices, values)."""
    fns = qdrant_sparse_fns(make(DashScopeSparseEmbedding))
    indices, values = fns.sparse_doc_fn(["pandas eat bamboo", REPEATS])
    q_indices, q_values = fns.sparse_query_fn(["cat"])
    assert body_params(emulator) == [
        {"text_type": "document", "output_type": "sparse"},
        {"text_type": "query", "output_type": "sparse"},
    ]
    assert rows_per_request(emulator) == [2, 1]
    assert dict(zip(indices[1], values[1], strict=True)) == merged(REPEATS)
    assert indices[1] == sorted(set(indices[1]))
    assert dict(zip(q_indices[0], q_values[0], strict=True)) == merged("cat")
    assert fns._asdict().keys() == {"sparse_doc_fn", "sparse_query_fn"}


def test_qdrant_functions_can_build_their_own_model(emulator: Emulator) -> None:
    """qdrant_sparse_fns(**kwargs) builds a DashScopeSparseEmbedding from those options."""
    import httpx

    fns = qdrant_sparse_fns(
        api_key="sk-test-0000",
        base_url="http://emulator.test",
        http_client=httpx.Client(transport=emulator.transport()),
    )
    fns.sparse_query_fn(["hello world"])
    assert body_params(emulator) == [{"text_type": "query", "output_type": "sparse"}]


def test_dense_and_sparse_share_one_call(make: Make, emulator: Emulator) -> None:
    """With output_type='dense&sparse' the sparse functions reuse the dense call's halves."""
    emb = make(DashScopeEmbedding, output_type="dense&sparse")
    fns = qdrant_sparse_fns(emb)
    texts = [f"shared call text {i}" for i in range(12)]
    emb.get_text_embedding_batch(texts)
    emb.get_query_embedding("shared query")
    assert len(emulator.requests) == 3
    indices, values = fns.sparse_doc_fn(texts)
    q_idx, q_val = fns.sparse_query_fn(["shared query"])
    assert len(emulator.requests) == 3  # served from the stash: no request
    assert [dict(zip(i, v, strict=True)) for i, v in zip(indices, values, strict=True)] == [
        merged(t) for t in texts
    ]
    assert dict(zip(q_idx[0], q_val[0], strict=True)) == merged("shared query")
    fns.sparse_doc_fn([texts[0], "never embedded before"])  # one miss → one sparse request
    assert body_params(emulator)[-1] == {"text_type": "document", "output_type": "sparse"}
    assert rows_per_request(emulator)[-1] == 1


def test_dense_only_model_still_serves_sparse(make: Make, emulator: Emulator) -> None:
    """A dense-only DashScopeEmbedding fetches sparse vectors with a separate request."""
    fns = qdrant_sparse_fns(make(DashScopeEmbedding))
    indices, _ = fns.sparse_doc_fn(["a text"])
    assert body_params(emulator) == [{"text_type": "document", "output_type": "sparse"}]
    assert indices[0] == sorted(merged("a text"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_milvus_adapter_contract(make: Make, emulator: Emulator, mode: str) -> None:
    """encode_documents/encode_queries (and async_*) return merged dicts, right text_type."""
    fn = DashScopeMilvusSparseFunction(make(DashScopeSparseEmbedding))
    docs = run(
        mode,
        lambda: fn.encode_documents(["pandas eat bamboo", REPEATS]),
        lambda: fn.async_encode_documents(["pandas eat bamboo", REPEATS]),
    )
    queries = run(
        mode, lambda: fn.encode_queries(["cat"]), lambda: fn.async_encode_queries(["cat"])
    )
    assert docs == [merged("pandas eat bamboo"), merged(REPEATS)]
    assert queries == [merged("cat")]
    assert body_params(emulator) == [
        {"text_type": "document", "output_type": "sparse"},
        {"text_type": "query", "output_type": "sparse"},
    ]


def test_milvus_adapter_registers_with_milvus_base_class_when_installed(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When Milvus's BaseSparseEmbeddingFunction is importable the adapter is an instance of it."""

    class BaseSparseEmbeddingFunction(abc.ABC):
        @abc.abstractmethod
        def encode_queries(self, queries: list[str]) -> list[dict[int, float]]: ...

    fake = types.ModuleType("llama_index.vector_stores.milvus.utils")
    fake.BaseSparseEmbeddingFunction = BaseSparseEmbeddingFunction  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_index.vector_stores.milvus.utils", fake)
    monkeypatch.setattr(milvus_mod, "_registered", False)
    fn = DashScopeMilvusSparseFunction(make(DashScopeSparseEmbedding))
    assert isinstance(fn, BaseSparseEmbeddingFunction)


def test_milvus_adapter_without_milvus_is_a_plain_class(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without llama-index-vector-stores-milvus nothing is imported and construction works."""
    monkeypatch.setitem(sys.modules, "llama_index.vector_stores.milvus.utils", None)
    monkeypatch.setattr(milvus_mod, "_registered", False)
    fn = DashScopeMilvusSparseFunction(make(DashScopeSparseEmbedding))
    assert milvus_mod._registered is False
    assert "DashScopeSparseEmbedding" in repr(fn)


def test_milvus_adapter_async_reuses_dense_and_sparse_calls(make: Make, emulator: Emulator) -> None:
    """Async encode_* on a dense&sparse model reuse the dense calls; misses cost one request."""
    emb = make(DashScopeEmbedding, output_type="dense&sparse")
    fn = DashScopeMilvusSparseFunction(emb)

    async def go() -> tuple[list[dict[int, float]], list[dict[int, float]]]:
        await emb.aget_text_embedding_batch(["alpha beta", "gamma delta"])
        docs = await fn.async_encode_documents(["gamma delta", "alpha beta"])
        queries = await fn.async_encode_queries(["new query words"])
        return docs, queries

    docs, queries = asyncio.run(go())
    assert docs == [merged("gamma delta"), merged("alpha beta")]
    assert queries == [merged("new query words")]
    assert body_params(emulator) == [
        {"text_type": "document", "output_type": "dense&sparse"},
        {"text_type": "query", "output_type": "sparse"},
    ]


def test_stash_is_a_bounded_lru() -> None:
    """The dense&sparse stash keeps at most its capacity and evicts the least recently used."""
    stash = SparseStash(capacity=2)
    prefix = ("m", "document", None)
    vec = SparseVector((3, 1, 3), (0.1, 0.2, 0.5), ("x", "y", "x"))
    stash.put(prefix, ["a", "b"], [vec, vec])
    assert stash.get(prefix, ["a"]) == [SparseVector((1, 3), (0.2, 0.5))]  # merged, no tokens
    stash.put(prefix, ["c"], [vec])  # "b" is now the least recently used
    assert len(stash) == 2
    assert [v is not None for v in stash.get(prefix, ["a", "b", "c"])] == [True, False, True]
    assert stash.get(("m", "query", None), ["a"]) == [None]  # keyed by text_type too
