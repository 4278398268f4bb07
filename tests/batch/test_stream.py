"""Real-time streaming: chunked embedding with bounded memory, written to .npy/.jsonl/.parquet."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed import AsyncDashScopeClient, DashScopeClient, EmbeddingResult
from dashscope_embed.emulator import Emulator, sparse_vector, text_vector
from dashscope_embed.io._stream import (
    aiter_embeddings,
    embed_to_file,
    embed_to_npy,
    iter_embeddings,
)

from .conftest import KEY, make_client

V4 = "text-embedding-v4"
NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"


def texts_gen(n: int) -> Iterator[str]:
    """A generator, so nothing can take len() of it or read it twice."""
    return (f"line {i} of a long corpus about {i % 13}" for i in range(n))


def collect(
    kind: str, emu: Emulator, n: int, chunk: int, **kw: Any
) -> list[tuple[int, EmbeddingResult]]:
    if kind == "sync":
        return list(iter_embeddings(make_client(emu), texts_gen(n), chunk_size=chunk, **kw))

    async def go() -> list[tuple[int, EmbeddingResult]]:
        http = httpx.AsyncClient(transport=emu.transport())
        client = AsyncDashScopeClient(KEY, base_url="http://emulator.test", http_client=http)
        out = [
            item async for item in aiter_embeddings(client, texts_gen(n), chunk_size=chunk, **kw)
        ]
        await http.aclose()
        return out

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_chunks_go_through_embed_texts_in_order(kind: str, emu: Emulator) -> None:
    """Each chunk is one embed_texts call (ten-row requests on the wire), yielded with its start
    row, and the vectors are the emulator's for those texts."""
    chunks = collect(kind, emu, 45, 20, dimension=64, text_type="query")
    assert [(start, len(res)) for start, res in chunks] == [(0, 20), (20, 20), (40, 5)]
    sent = [r.json["input"]["texts"] for r in emu.requests if r.path == NATIVE]
    assert [len(t) for t in sent] == [10, 10, 10, 10, 5] or sorted(map(len, sent)) == [
        5,
        10,
        10,
        10,
        10,
    ]
    assert {r.json["parameters"]["text_type"] for r in emu.requests} == {"query"}
    texts = list(texts_gen(45))
    start, res = chunks[2]
    for i in range(len(res)):
        np.testing.assert_allclose(
            res.embeddings[i],
            text_vector(V4, texts[start + i], dimension=64, text_type="query"),
            atol=1e-6,
        )


def test_async_iterable_input_is_accepted(emu: Emulator) -> None:
    """aiter_embeddings also reads an async iterable, chunk by chunk."""

    async def source() -> Any:
        for t in texts_gen(7):
            yield t

    async def go() -> list[int]:
        http = httpx.AsyncClient(transport=emu.transport())
        client = AsyncDashScopeClient(KEY, base_url="http://emulator.test", http_client=http)
        sizes = [len(r) async for _, r in aiter_embeddings(client, source(), chunk_size=3)]
        await http.aclose()
        return sizes

    assert asyncio.run(go()) == [3, 3, 1]


@pytest.mark.parametrize("known_n", [True, False])
def test_embed_to_npy_writes_every_row(
    tmp_path: Path, bclient: DashScopeClient, known_n: bool
) -> None:
    """embed_to_npy fills a float32 (n, dim) file from a generator, with or without n given."""
    path = tmp_path / "v.npy"
    summary = embed_to_npy(
        bclient, texts_gen(53), path, n=53 if known_n else None, chunk_size=16, dimension=128
    )
    arr = np.load(path)
    assert arr.shape == (53, 128)
    assert arr.dtype == np.float32
    assert (summary.rows, summary.dimension) == (53, 128)
    texts = list(texts_gen(53))
    for row in (0, 15, 16, 52):
        np.testing.assert_allclose(arr[row], text_vector(V4, texts[row], dimension=128), atol=1e-6)
    assert summary.usage.requests == 7  # chunks of 16, 16, 16, 5 rows: 2 + 2 + 2 + 1 requests


def test_jsonl_with_ids_and_sparse(tmp_path: Path, bclient: DashScopeClient) -> None:
    """A .jsonl output holds id, embedding and the merged sparse vector of every row."""
    path = tmp_path / "v.jsonl"
    texts = ["apples and pears", "pears and plums and pears"]
    embed_to_file(bclient, texts, path, ids=["a", "b"], output_type="dense&sparse", dimension=64)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    np.testing.assert_allclose(
        rows[1]["embedding"], text_vector(V4, texts[1], dimension=64), atol=1e-6
    )
    expected: dict[int, float] = {}
    for item in sparse_vector(texts[1]):
        index, value = int(item["index"]), float(item["value"])
        expected[index] = max(value, expected.get(index, value))
    assert rows[1]["sparse"]["indices"] == sorted(expected)
    np.testing.assert_allclose(
        rows[1]["sparse"]["values"], [expected[i] for i in sorted(expected)], rtol=1e-6
    )


def test_parquet_output(tmp_path: Path, bclient: DashScopeClient) -> None:
    """A .parquet output has id and a fixed-size float32 embedding column."""
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "v.parquet"
    embed_to_file(
        bclient, texts_gen(30), path, ids=(str(i) for i in range(30)), chunk_size=7, dimension=64
    )
    table = pq.read_table(path)
    assert table.num_rows == 30
    assert table.column("id").to_pylist()[:3] == ["0", "1", "2"]
    matrix = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(
        matrix[29], text_vector(V4, list(texts_gen(30))[29], dimension=64), atol=1e-6
    )


def test_progress_callback_and_missing_tqdm(
    tmp_path: Path, bclient: DashScopeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """progress= receives finished rows per request; progress=True without tqdm names the pip
    command."""
    done: list[int] = []
    embed_to_npy(
        bclient,
        texts_gen(25),
        tmp_path / "a.npy",
        progress=done.append,
        chunk_size=10,
        dimension=64,
    )
    assert sum(done) == 25
    assert max(done) <= 10
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"pip install 'dashscope-embed\[progress\]'"):
        embed_to_npy(bclient, texts_gen(3), tmp_path / "b.npy", progress=True)


def canned_transport(dim: int) -> httpx.MockTransport:
    """Instant native answers (the same vector for every row), so tracemalloc sees only the
    client, the stream and the writer, not an in-process emulator's caches."""
    row = b"[" + b",".join([b"0.031249999999999997"] * dim) + b"]"
    bodies = {
        n: b'{"output":{"embeddings":[%s]},"usage":{"total_tokens":%d},"request_id":"r"}'
        % (b",".join(b'{"embedding":%s,"text_index":%d}' % (row, i) for i in range(n)), n)
        for n in range(1, 11)
    }

    def handler(request: httpx.Request) -> httpx.Response:
        rows = len(json.loads(request.content)["input"]["texts"])
        return httpx.Response(
            200, content=bodies[rows], headers={"content-type": "application/json"}
        )

    return httpx.MockTransport(handler)


def test_memory_is_bounded_by_the_chunk(tmp_path: Path) -> None:
    """Peak Python allocations (tracemalloc) depend on the chunk, not the corpus: eight times the
    texts at the same chunk size peak about the same, far under the corpus's vector bytes.

    (How many answers are in flight at the peak varies by ~25 % from run to run, hence the 1.5;
    memory that grew with the corpus would add 7 MiB of vectors here.)"""
    http = httpx.Client(transport=canned_transport(256))
    client = DashScopeClient(
        KEY, base_url="http://canned.test", http_client=http, max_concurrency=4
    )
    embed_to_npy(client, texts_gen(300), tmp_path / "warm.npy", chunk_size=200)  # warm caches
    peaks = {}
    for n in (1000, 8000):
        gc.collect()  # start both runs from the same heap, whatever ran before in the process
        tracemalloc.start()
        embed_to_npy(client, texts_gen(n), tmp_path / f"v{n}.npy", chunk_size=200)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    arr = np.load(tmp_path / "v8000.npy", mmap_mode="r")
    assert arr.shape == (8000, 256)
    assert float(arr[7999, 0]) == pytest.approx(0.03125)
    assert peaks[8000] < 1.5 * peaks[1000], peaks
    assert peaks[8000] < arr.nbytes / 4, peaks  # 8 MiB of vectors never all in memory
