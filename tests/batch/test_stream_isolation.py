"""Per-row failure isolation in the real-time stream (issue 14, point 5): a failure one input
causes fails only that row, and every row that was billed is kept."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from dashscope_embed import (
    AsyncDashScopeClient,
    AuthenticationError,
    EmbeddingResult,
    InputTooLongError,
    cli,
)
from dashscope_embed.emulator import Emulator, EmulatorServer, text_vector
from dashscope_embed.io._isolate import Chunk, aembed_chunk, embed_chunk
from dashscope_embed.io._stream import embed_to_file

from .conftest import KEY, make_client

V4 = "text-embedding-v4"
TOO_LONG = "word " * 9000
NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"
MODERATION = ("DataInspectionFailed", "Input or output data may contain inappropriate content.")


def test_one_too_long_row_in_3000_fails_alone_and_every_billed_row_is_kept(
    tmp_path: Path, emu: Emulator
) -> None:
    """Issue 14's case: 3,000 texts, row 2500 too long. Before: 952 NaN rows, and the failed
    chunk's 951 billed rows dropped. Now: exactly row 2500 is NaN and listed, the other 2,999
    rows have their vectors, and they are exactly the rows the emulator billed."""
    texts = [f"line {i} of the long stream" for i in range(3000)]
    texts[2500] = TOO_LONG
    summary = embed_to_file(make_client(emu), texts, tmp_path / "o.npy", dimension=64)
    assert summary.rows == 3000
    assert [(f.start, f.stop, f.code) for f in summary.failures] == [
        (2500, 2501, "InvalidParameter")
    ]
    vectors = np.load(tmp_path / "o.npy")
    nan_rows = np.flatnonzero(np.isnan(vectors).any(axis=1)).tolist()
    assert nan_rows == [2500]
    for row in (0, 1999, 2000, 2499, 2501, 2999):
        np.testing.assert_allclose(
            vectors[row], text_vector(V4, texts[row], dimension=64), atol=1e-6
        )
    assert emu.stats.rows == 2999  # billed, and every one of them is in the output
    assert summary.usage.total_tokens == emu.stats.tokens
    assert not (tmp_path / "o.npy.partial").exists()


def test_a_moderated_request_is_narrowed_to_its_rows(tmp_path: Path, emu: Emulator) -> None:
    """A 10-row request refused by moderation says nothing about which row: each of its rows is
    sent alone, so only a row refused on its own is marked failed (here row 0: the refusal is
    injected twice), and rows that pass alone get their vectors."""
    emu.enqueue_fault(400, *MODERATION, count=2)
    texts = [f"text {i}" for i in range(30)]
    client = make_client(emu, max_concurrency=1)  # one request at a time: the faults are ordered
    summary = embed_to_file(client, texts, tmp_path / "o.jsonl", chunk_size=30, dimension=64)
    assert [(f.start, f.code) for f in summary.failures] == [(0, "DataInspectionFailed")]
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows[0] == {"error": f"DataInspectionFailed: {rows[0]['error'].split(': ', 1)[1]}"}
    np.testing.assert_allclose(
        rows[1]["embedding"], text_vector(V4, "text 1", dimension=64), atol=1e-6
    )
    sizes = [len(r.json["input"]["texts"]) for r in emu.requests if r.path == NATIVE]
    assert sizes.count(1) >= 10  # the ten rows of the refused request, each alone


def test_cli_keeps_every_row_but_the_bad_one(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`embed` with ids to .parquet: the bad row carries an error (no vector), the command
    exits 3 and OUTPUT.errors.jsonl names its row and line."""
    pq = pytest.importorskip("pyarrow.parquet")
    docs = [{"id": f"k{i}", "text": f"text {i}"} for i in range(25)]
    docs[12]["text"] = TOO_LONG
    (env / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    argv = ["embed", "in.jsonl", "-o", "o.parquet", "--dimension", "64", "--no-progress"]
    assert cli.main([*argv, "--base-url", server.url]) == 3
    table = pq.read_table(env / "o.parquet").to_pylist()
    assert [r["id"] for r in table] == [d["id"] for d in docs]
    assert table[12]["embedding"] is None
    assert table[12]["error"].startswith("InvalidParameter")
    assert all(r["embedding"] is not None for i, r in enumerate(table) if i != 12)
    errors = [json.loads(x) for x in (env / "o.parquet.errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["line"]) for e in errors] == [(12, 13)]
    assert "wrote 24 64-d dense vectors" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_plan_is_the_same_for_sync_and_async_clients(kind: str, emu: Emulator) -> None:
    """One plan, two drivers: a 30-row chunk with one too-long row gives 29 vectors and one
    failure through DashScopeClient and AsyncDashScopeClient alike."""
    texts = [f"text {i}" for i in range(30)]
    texts[17] = TOO_LONG
    chunk = Chunk(len(texts))
    if kind == "sync":
        client = make_client(emu)
        embed_chunk(lambda pos: client.embed_texts([texts[p] for p in pos], dimension=64), chunk)
    else:

        async def go() -> None:
            http = httpx.AsyncClient(transport=emu.transport())
            aclient = AsyncDashScopeClient(KEY, base_url="http://emulator.test", http_client=http)

            async def embed(pos: list[int]) -> EmbeddingResult:
                return await aclient.embed_texts([texts[p] for p in pos], dimension=64)

            try:
                await aembed_chunk(embed, chunk)
            finally:
                await http.aclose()

        asyncio.run(go())
    assert [f.start for f in chunk.failures(0)] == [17]
    assert chunk.dense is not None
    assert np.isnan(chunk.dense[17]).all()
    assert not np.isnan(np.delete(chunk.dense, 17, axis=0)).any()
    np.testing.assert_allclose(chunk.dense[29], text_vector(V4, texts[29], dimension=64), atol=1e-6)
    assert emu.stats.rows == 29


def test_an_empty_text_fails_only_its_row(tmp_path: Path, emu: Emulator) -> None:
    """embed_to_file with an empty text (the core refuses it before any request): that row is
    failed with rule empty_text, the other rows of its chunk are sent and embedded."""
    texts = [f"text {i}" for i in range(12)]
    texts[4] = "   "
    summary = embed_to_file(make_client(emu), texts, tmp_path / "o.npy", dimension=64)
    assert [(f.start, f.code) for f in summary.failures] == [(4, "empty_text")]
    vectors = np.load(tmp_path / "o.npy")
    assert np.isnan(vectors[4]).all()
    np.testing.assert_allclose(vectors[5], text_vector(V4, "text 5", dimension=64), atol=1e-6)
    sent = [t for r in emu.requests if r.path == NATIVE for t in r.json["input"]["texts"]]
    assert sorted(sent) == sorted(t for i, t in enumerate(texts) if i != 4)


def test_an_error_of_a_follow_up_call_names_positions_of_the_chunk() -> None:
    """The plan without a server: call 1 (rows 0-9) names row 3 as too long → row 3 fails and
    the other nine are sent again; call 2 fails with a 401 naming its 4th input, which the
    raised error reports as chunk row 4 (not 3), so the stream can place it in the input."""
    calls: list[list[int]] = []

    def embed(positions: list[int]) -> EmbeddingResult:
        calls.append(positions)
        if len(calls) == 1:
            raise InputTooLongError("input 3 is too long", status=400, input_indices=(3,))
        raise AuthenticationError("input 3 was in the request", status=401, input_indices=(3,))

    chunk = Chunk(10)
    with pytest.raises(AuthenticationError) as info:
        embed_chunk(embed, chunk)
    assert calls == [list(range(10)), [0, 1, 2, 4, 5, 6, 7, 8, 9]]
    assert chunk.errors[3] == "InputTooLongError: this input is too long"  # (no server code)
    assert info.value.input_indices == (4,)
    assert "input 4 was in the request" in str(info.value)
