"""Real LlamaIndex indexes and pipelines against the emulator on loopback (no mocked stores)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.vector_stores.types import VectorStoreQueryMode
from qdrant_client import AsyncQdrantClient, QdrantClient

from dashscope_embed.emulator import EmulatorServer
from llama_index_dashscope_embed import (
    DashScopeEmbedding,
    DashScopeSparseEmbedding,
    qdrant_sparse_fns,
)

from .conftest import TEST_KEY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

CORPUS = {
    "panda": "Giant pandas live in the mountains of Sichuan and eat bamboo almost all day.",
    "volcano": "A volcano erupts when molten rock, ash and gases escape from a magma chamber.",
    "espresso": "Espresso is brewed by forcing hot water through finely ground coffee beans.",
    "python": "Python lists are mutable sequences; tuples are immutable sequences in Python.",
    "tides": "Ocean tides rise and fall because of the gravitational pull of the moon.",
    "violin": "A violin has four strings and is played with a bow made of horsehair.",
    "sourdough": "Sourdough bread rises with a starter of wild yeast and lactic acid bacteria.",
    "glacier": "Glaciers are slow rivers of ice that carve valleys as they move downhill.",
}
QUERIES = {
    "what do giant pandas eat": "panda",
    "why does a volcano erupt with magma": "volcano",
    "how is espresso coffee brewed": "espresso",
    "what makes the ocean tides rise": "tides",
}


def documents() -> list[Document]:
    return [Document(text=t, doc_id=k, metadata={"topic": k}) for k, t in CORPUS.items()]


@pytest.fixture
def server(emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The loopback emulator, configured the way a user would: two environment variables."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", emulator_server.url)
    return emulator_server


@pytest.fixture
def settings_embed_model() -> Iterator[None]:
    """Restore Settings.embed_model after a test that sets it."""
    previous = Settings._embed_model
    yield
    Settings._embed_model = previous


def top_topic(nodes: list) -> str:  # type: ignore[type-arg]
    return str(nodes[0].node.metadata["topic"])


def test_vector_store_index_retrieves_the_relevant_node_first(
    server: EmulatorServer, settings_embed_model: None
) -> None:
    """VectorStoreIndex (SimpleVectorStore) + retriever ranks the matching document first."""
    Settings.embed_model = DashScopeEmbedding()
    index = VectorStoreIndex.from_documents(documents())
    retriever = index.as_retriever(similarity_top_k=3)
    for query, topic in QUERIES.items():
        assert top_topic(retriever.retrieve(query)) == topic
    sent = [r.json["parameters"]["text_type"] for r in server.emulator.requests]
    assert sent == ["document"] + ["query"] * len(QUERIES)  # 8 documents fit one request


def test_async_retrieval_over_two_event_loops(server: EmulatorServer) -> None:
    """aretrieve works from two asyncio.run calls in a row over real sockets."""
    embed_model = DashScopeEmbedding()
    index = VectorStoreIndex.from_documents(documents(), embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=1)

    async def ask(query: str) -> str:
        try:
            return top_topic(await retriever.aretrieve(query))
        finally:
            await embed_model.aclose()  # this loop's connection pool

    for query, topic in list(QUERIES.items())[:2]:
        assert asyncio.run(ask(query)) == topic
    embed_model.close()


def test_ingestion_cache_reembeds_only_when_an_option_changes(server: EmulatorServer) -> None:
    """A pipeline cache hit sends nothing; a new dimension re-embeds; a new timeout does not."""
    cache = IngestionCache()
    docs = [
        Document(text=f"{t} ({i})", doc_id=f"{k}{i}") for i in range(3) for k, t in CORPUS.items()
    ]

    def run(**options: object) -> int:
        before = len(server.emulator.requests)
        pipeline = IngestionPipeline(transformations=[DashScopeEmbedding(**options)], cache=cache)
        nodes = pipeline.run(documents=docs)
        assert all(n.embedding is not None for n in nodes)
        return len(server.emulator.requests) - before

    first = run(dimension=512)
    assert first == 3  # 24 documents: 10 + 10 + 4 rows
    assert run(dimension=512) == 0
    assert run(dimension=512, timeout=5.0) == 0
    assert run(dimension=256) == first
    assert run(dimension=256, query_instruct="Find the passage") == first


def test_ingestion_pipeline_with_worker_processes(server: EmulatorServer) -> None:
    """IngestionPipeline(num_workers=2) pickles the model into workers, which embed correctly."""
    docs = [
        Document(text=f"{t} ({i})", doc_id=f"{k}{i}") for i in range(2) for k, t in CORPUS.items()
    ]
    embed_model = DashScopeEmbedding(api_key="sk-explicit-key", dimension=64)
    nodes = IngestionPipeline(transformations=[embed_model]).run(documents=docs, num_workers=2)
    assert len(nodes) == 16
    assert {len(n.embedding or []) for n in nodes} == {64}
    assert all(r.used_key("sk-explicit-key") for r in server.emulator.requests)
    assert sum(len(r.json["input"]["texts"]) for r in server.emulator.requests) == 16


@pytest.mark.parametrize("shared_call", [True, False])
def test_qdrant_hybrid_index_answers_queries(server: EmulatorServer, shared_call: bool) -> None:
    """A Qdrant local-mode hybrid index with our sparse functions ranks the right node first."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    if shared_call:
        embed_model = DashScopeEmbedding(output_type="dense&sparse")
        fns = qdrant_sparse_fns(embed_model)
    else:
        embed_model = DashScopeEmbedding()
        fns = qdrant_sparse_fns(DashScopeSparseEmbedding())
    store = QdrantVectorStore(
        collection_name="hybrid",
        client=QdrantClient(location=":memory:"),
        enable_hybrid=True,
        **fns._asdict(),
    )
    index = VectorStoreIndex.from_documents(
        documents(),
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
    )
    built = len(server.emulator.requests)
    assert built == (1 if shared_call else 2)  # dense&sparse: one call serves both halves
    hybrid = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2)
    for query, topic in QUERIES.items():
        assert top_topic(hybrid.retrieve(query)) == topic
    per_query = (len(server.emulator.requests) - built) / len(QUERIES)
    assert per_query == (1 if shared_call else 2)  # dense + sparse query vectors
    params = [r.json["parameters"] for r in server.emulator.requests]
    assert {p["text_type"] for p in params[:built]} == {"document"}
    assert {p["text_type"] for p in params[built:]} == {"query"}
    sparse_only = index.as_retriever(
        vector_store_query_mode=VectorStoreQueryMode.SPARSE, sparse_top_k=2
    )
    for query, topic in QUERIES.items():
        assert top_topic(sparse_only.retrieve(query + " today")) == topic


def test_qdrant_hybrid_async_index(server: EmulatorServer) -> None:
    """The async path (AsyncQdrantClient, use_async, aretrieve) builds and queries hybrid."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    embed_model = DashScopeEmbedding(output_type="dense&sparse")

    async def go() -> list[str]:
        store = QdrantVectorStore(
            collection_name="hybrid_async",
            aclient=AsyncQdrantClient(location=":memory:"),
            enable_hybrid=True,
            **qdrant_sparse_fns(embed_model)._asdict(),
        )
        index = VectorStoreIndex.from_documents(
            documents(),
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed_model,
            use_async=True,
        )
        retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2)
        return [top_topic(await retriever.aretrieve(q)) for q in QUERIES]

    assert asyncio.run(go()) == list(QUERIES.values())
    assert len(server.emulator.requests) == 1 + len(QUERIES)
