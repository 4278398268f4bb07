"""Every adapter's default entry point sends requests side by side, one vector per input, in order.

The emulator's transport waits 200 ms per request and counts requests in flight; nothing here
times anything (speed is the benchmark's job): it checks that more than one request is on the
wire at once and that each node or text gets exactly its own vector.
"""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter

from dashscope_embed.emulator import Emulator, EmulatorConfig, text_vector
from dashscope_embed.emulator._mm_vectors import multimodal_vector
from langchain_dashscope_embed import DashScopeEmbeddings
from llama_index_dashscope_embed import DashScopeEmbedding
from llama_index_dashscope_embed.multimodal import DashScopeMultiModalEmbedding

from .test_runtime import KEY, URL, Counting

V4 = "text-embedding-v4"
TEXTS = [f"document number {i} about tea, rivers and hills" for i in range(100)]


def emulator() -> tuple[Emulator, Counting]:
    emu = Emulator(EmulatorConfig(latency=0.2))
    return emu, Counting(emu)


def expected(texts: list[str]) -> np.ndarray:
    return np.array([text_vector(V4, t) for t in texts], dtype=np.float32)


def langchain(transport: Counting) -> DashScopeEmbeddings:
    return DashScopeEmbeddings(
        api_key=KEY,
        base_url=URL,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
    )


def llama(transport: Counting) -> DashScopeEmbedding:
    return DashScopeEmbedding(
        api_key=KEY,
        base_url=URL,
        http_client=httpx.Client(transport=transport),
        async_http_client=httpx.AsyncClient(transport=transport),
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langchain_embed_documents_is_concurrent(mode: str) -> None:
    """embed_documents / aembed_documents: 10 requests, several at once, vectors in order."""
    emu, transport = emulator()
    emb = langchain(transport)
    sync = mode == "sync"
    got = emb.embed_documents(TEXTS) if sync else asyncio.run(emb.aembed_documents(TEXTS))
    assert transport.peak > 1
    assert len(emu.requests) == 10
    np.testing.assert_allclose(np.array(got), expected(TEXTS), atol=1e-6)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_llama_index_get_text_embedding_batch_is_concurrent(mode: str) -> None:
    """get_text_embedding_batch / its async twin with the default embed_batch_size."""
    emu, transport = emulator()
    emb = llama(transport)
    sync = mode == "sync"
    batch, abatch = emb.get_text_embedding_batch, emb.aget_text_embedding_batch
    got = batch(TEXTS) if sync else asyncio.run(abatch(TEXTS))
    assert transport.peak > 1
    assert len(emu.requests) == 10
    np.testing.assert_allclose(np.array(got), expected(TEXTS), atol=1e-6)


@pytest.mark.parametrize("use_async", [False, True])
def test_llama_index_from_documents_is_concurrent(use_async: bool) -> None:
    """VectorStoreIndex.from_documents (sync and use_async): each node gets its own vector."""
    emu, transport = emulator()
    emb = llama(transport)
    docs = [Document(text=t, id_=f"doc-{i}") for i, t in enumerate(TEXTS)]
    index = VectorStoreIndex.from_documents(docs, embed_model=emb, use_async=use_async)
    assert transport.peak > 1
    assert len(emu.requests) == 10
    store = index.vector_store
    for node in index.docstore.docs.values():
        vec = np.array(store.get(node.node_id), dtype=np.float32)
        text = node.get_content(metadata_mode="embed")
        np.testing.assert_allclose(vec, text_vector(V4, text), atol=1e-6)


def test_llama_index_ingestion_pipeline_is_concurrent() -> None:
    """IngestionPipeline.run with the embedding as its last transformation."""
    emu, transport = emulator()
    emb = llama(transport)
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=512), emb])
    nodes = pipeline.run(documents=[Document(text=t) for t in TEXTS])
    assert transport.peak > 1
    assert len(nodes) == 100
    assert len(emu.requests) == 10
    for node in nodes:
        text = node.get_content(metadata_mode="embed")
        np.testing.assert_allclose(np.array(node.embedding), text_vector(V4, text), atol=1e-6)


@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_a_known_quota_given_to_the_adapter_paces_from_the_first_request(framework: str) -> None:
    """rpm= on the adapter reaches the core throttle: paced at 98 % of it, no 429 at all, even
    against a sliding one-second window (no burst allowance)."""
    emu = Emulator(EmulatorConfig(latency=0.02, rpm=3000, quota_model="window"))
    transport = Counting(emu)
    common = {"api_key": KEY, "base_url": URL, "http_client": httpx.Client(transport=transport)}
    texts = TEXTS[:60]
    if framework == "langchain":
        lc = DashScopeEmbeddings(**common, rpm=3000)
        got, throttle = lc.embed_documents(texts), lc._rt.client.throttle
    else:
        li = DashScopeEmbedding(**common, rpm=3000)
        got = li.get_text_embedding_batch(texts)
        throttle = li._rt.client.throttle
        assert "rpm" not in li.to_dict()  # a transport knob: not part of the cache key
    assert throttle.rpm == 3000
    assert throttle.snapshot(V4).rate_per_second == pytest.approx(0.98 * 50)
    assert [r.status for r in emu.requests] == [200] * 6
    np.testing.assert_allclose(np.array(got), expected(texts), atol=1e-6)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_llama_index_image_batch_is_concurrent(mode: str) -> None:
    """get_image_embedding_batch with the default embed_batch_size (100): LlamaIndex hands the
    core one chunk, the core sends its 5 requests of 20 images side by side, vectors in order."""
    emu, transport = emulator()
    emb = DashScopeMultiModalEmbedding(
        api_key=KEY,
        base_url=URL,
        http_client=httpx.Client(transport=transport),
        async_http_client=httpx.AsyncClient(transport=transport),
    )
    assert emb.embed_batch_size == 100
    urls = [f"https://img.test/photo-{i}.png" for i in range(100)]
    batch, abatch = emb.get_image_embedding_batch, emb.aget_image_embedding_batch
    got = batch(urls) if mode == "sync" else asyncio.run(abatch(urls))
    assert transport.peak > 1
    sent = [[c["image"] for c in r.json["input"]["contents"]] for r in emu.requests]
    assert sorted(sent) == [urls[i : i + 20] for i in range(0, 100, 20)]
    model = emb.model_name
    want = np.array([multimodal_vector(model, {"image": u}) for u in urls], dtype=np.float32)
    np.testing.assert_allclose(np.array(got), want, atol=1e-6)
