"""Real vector stores in-process: InMemory, Qdrant hybrid, CacheBackedEmbeddings, Milvus Lite."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from langchain_classic.storage import InMemoryByteStore, LocalFileStore
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import QdrantClient, models

from dashscope_embed.emulator import Emulator, text_vector
from langchain_dashscope_embed import DashScopeEmbeddings, cached_embeddings

from .conftest import wire_params, wire_rows

Make = Callable[..., DashScopeEmbeddings]

CORPUS = [
    "Hangzhou is the capital of Zhejiang province and famous for West Lake.",
    "Longjing green tea is grown in the hills around Hangzhou.",
    "The Great Wall stretches across northern China for thousands of kilometres.",
    "Pandas eat bamboo and live in the mountains of Sichuan.",
    "Shanghai is a global financial centre on the Yangtze River delta.",
    "Dumplings are a traditional food eaten during the Spring Festival.",
]
QUERIES = {
    "Which province has Hangzhou as its capital?": 0,
    "Where is Longjing green tea grown?": 1,
    "How long is the Great Wall?": 2,
    "What do pandas eat?": 3,
    "Which city is a financial centre on the Yangtze delta?": 4,
}


def test_in_memory_store_ranks_the_relevant_document_first(make_emb: Make) -> None:
    """InMemoryVectorStore retrieval puts the matching document first for every query."""
    store = InMemoryVectorStore.from_texts(CORPUS, make_emb(dimension=512))
    for query, expected in QUERIES.items():
        assert store.similarity_search(query, k=1)[0].page_content == CORPUS[expected], query


async def test_in_memory_store_async_path(make_emb: Make, emulator: Emulator) -> None:
    """The async store API uses aembed_* (text types on the wire) and ranks correctly too."""
    store = await InMemoryVectorStore.afrom_texts(CORPUS, make_emb(dimension=512))
    hits = await store.asimilarity_search("What do pandas eat?", k=1)
    assert hits[0].page_content == CORPUS[3]
    assert [p["text_type"] for p in wire_params(emulator)] == ["document", "query"]


def _hybrid_store(dense: DashScopeEmbeddings, dim: int) -> QdrantVectorStore:
    client = QdrantClient(":memory:")
    client.create_collection(
        "docs",
        vectors_config={"dense": models.VectorParams(size=dim, distance=models.Distance.COSINE)},
        sparse_vectors_config={"sparse": models.SparseVectorParams()},
    )
    return QdrantVectorStore(
        client=client,
        collection_name="docs",
        embedding=dense,
        sparse_embedding=dense.sparse_view(),
        retrieval_mode=RetrievalMode.HYBRID,
        vector_name="dense",
        sparse_vector_name="sparse",
    )


@pytest.mark.parametrize("n", [6, 25, 64])
def test_qdrant_hybrid_indexing_costs_one_call_per_batch(
    make_emb: Make, emulator: Emulator, n: int
) -> None:
    """Indexing N texts into Qdrant HYBRID sends ceil(N/10) requests, not twice that."""
    dense = make_emb(output_type="dense&sparse", dimension=256)
    store = _hybrid_store(dense, 256)
    assert wire_rows(emulator) == [1]  # QdrantVectorStore's own probe of the collection config
    emulator.reset_stats()
    texts = [*CORPUS, *(f"filler passage {i} about rivers and mountains" for i in range(n - 6))]
    store.add_texts(texts)
    assert len(emulator.requests) == math.ceil(n / 10)
    assert sum(wire_rows(emulator)) == n
    assert {p["output_type"] for p in wire_params(emulator)} == {"dense&sparse"}
    points, _ = store.client.scroll("docs", limit=n + 1, with_vectors=True)
    assert len(points) == n
    assert all(set(p.vector) == {"dense", "sparse"} for p in points)  # type: ignore[arg-type]


def test_qdrant_hybrid_search_returns_the_right_documents(
    make_emb: Make, emulator: Emulator
) -> None:
    """Hybrid search (dense + sparse, RRF) finds the right document with 1 request per query."""
    dense = make_emb(output_type="dense&sparse", dimension=256)
    store = _hybrid_store(dense, 256)
    store.add_texts(CORPUS)
    for query, expected in QUERIES.items():
        before = len(emulator.requests)
        assert store.similarity_search(query, k=1)[0].page_content == CORPUS[expected], query
        assert len(emulator.requests) == before + 1
        assert emulator.requests[-1].json["parameters"]["text_type"] == "query"


def test_qdrant_dense_vectors_are_the_emulators(make_emb: Make) -> None:
    """The dense vectors stored in Qdrant are exactly the emulator's document vectors."""
    dense = make_emb(output_type="dense&sparse", dimension=256)
    store = _hybrid_store(dense, 256)
    (point_id,) = store.add_texts([CORPUS[1]])
    point = store.client.retrieve("docs", [point_id], with_vectors=True)[0]
    stored = point.vector["dense"]  # type: ignore[index,call-overload]
    expected = text_vector("text-embedding-v4", CORPUS[1], dimension=256)
    assert max(abs(a - b) for a, b in zip(stored, expected, strict=True)) < 1e-5


def test_cache_backed_embeddings_round_trip(make_emb: Make, emulator: Emulator) -> None:
    """cached_embeddings: a second embed_documents sends nothing and returns identical floats."""
    cached = cached_embeddings(make_emb(dimension=128), InMemoryByteStore())
    first = cached.embed_documents(CORPUS[:3])
    sent = len(emulator.requests)
    assert cached.embed_documents(CORPUS[:3]) == first
    assert len(emulator.requests) == sent == 1
    assert all(type(x) is float for x in first[0])


def test_cache_never_serves_a_document_vector_for_a_query(
    make_emb: Make, emulator: Emulator
) -> None:
    """A cached document text, asked as a query, is embedded as a query and then cached as one."""
    emb = make_emb(dimension=128)
    cached = cached_embeddings(emb, InMemoryByteStore())
    doc = cached.embed_documents(["green tea"])[0]
    query = cached.embed_query("green tea")
    assert query != doc
    assert cached.embed_query("green tea") == query
    assert [p["text_type"] for p in wire_params(emulator)] == ["document", "query"]


def test_cache_keys_differ_per_dimension(make_emb: Make, emulator: Emulator) -> None:
    """Two dimensions sharing one store never read each other's vectors."""
    store = InMemoryByteStore()
    small = cached_embeddings(make_emb(dimension=64), store).embed_documents(["shared text"])
    large = cached_embeddings(make_emb(dimension=128), store).embed_documents(["shared text"])
    assert (len(small[0]), len(large[0])) == (64, 128)
    assert len(emulator.requests) == 2


def test_cache_async_and_local_file_store(
    make_emb: Make, emulator: Emulator, tmp_path: Path
) -> None:
    """The async path caches too, on disk (LocalFileStore keys accept the namespace)."""
    cached = cached_embeddings(make_emb(dimension=64), LocalFileStore(tmp_path))

    async def twice() -> tuple[list[list[float]], list[list[float]]]:
        return await cached.aembed_documents(CORPUS), await cached.aembed_documents(CORPUS)

    first, second = asyncio.run(twice())
    assert first == second
    assert len(emulator.requests) == 1
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == len(CORPUS)
    assert all(n.startswith("dashscope.text-embedding-v4.d64.document.") for n in names)


@pytest.mark.integration
@pytest.mark.slow
def test_milvus_lite_hybrid(make_emb: Make, emulator: Emulator, tmp_path: Path) -> None:
    """Milvus Lite takes [dense, sparse_view("milvus")] and indexing costs one call per batch."""
    from langchain_milvus import Milvus
    from pymilvus import Function, FunctionType

    rrf = Function(
        name="rrf",
        input_field_names=[],
        function_type=FunctionType.RERANK,
        params={"reranker": "rrf", "k": 60},
    )

    dense = make_emb(output_type="dense&sparse", dimension=128)
    store = Milvus(
        embedding_function=[dense, dense.sparse_view("milvus")],
        vector_field=["dense", "sparse"],
        connection_args={"uri": str(tmp_path / "milvus.db")},
        auto_id=True,
        drop_old=True,
        search_params=[
            {"metric_type": "COSINE", "params": {}},
            {"metric_type": "IP", "params": {}},
        ],
    )
    try:
        store.add_texts(CORPUS)
        assert len(emulator.requests) == 1
        hit = store.similarity_search("Where is Longjing green tea grown?", k=1, reranker=rrf)
        assert hit[0].page_content == CORPUS[1]
        assert len(emulator.requests) == 2
    finally:
        store.client.close()
