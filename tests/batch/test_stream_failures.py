"""A real-time stream that fails: errors name positions in the whole input, and the output is
left as ``.partial`` (missing rows NaN) instead of a complete-looking file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from dashscope_embed import AsyncDashScopeClient, InputTooLongError, InvalidInputError
from dashscope_embed.emulator import Emulator, text_vector
from dashscope_embed.io._stream import aiter_embeddings, embed_to_file, iter_embeddings

from .conftest import KEY, make_client

V4 = "text-embedding-v4"
TOO_LONG = "word " * 9000


def texts_with(row: int, bad: str, n: int = 30) -> list[str]:
    texts = [f"sentence {i} of the stream" for i in range(n)]
    texts[row] = bad
    return texts


def drain(kind: str, emu: Emulator, texts: list[str], chunk: int) -> None:
    if kind == "sync":
        for _ in iter_embeddings(make_client(emu), texts, chunk_size=chunk, dimension=64):
            pass
        return

    async def go() -> None:
        http = httpx.AsyncClient(transport=emu.transport())
        client = AsyncDashScopeClient(KEY, base_url="http://emulator.test", http_client=http)
        try:
            async for _ in aiter_embeddings(client, texts, chunk_size=chunk, dimension=64):
                pass
        finally:
            await http.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_too_long_text_is_named_by_its_row_in_the_whole_input(kind: str, emu: Emulator) -> None:
    """Row 25 over the token limit, read in chunks of ten, raises InputTooLongError naming input
    25 (not 5): input_indices, message and partial rows are positions in the whole input."""
    with pytest.raises(InputTooLongError) as info:
        drain(kind, emu, texts_with(25, TOO_LONG), 10)
    exc = info.value
    assert exc.input_indices == (25,)
    assert "input 25 is longer than" in str(exc)
    assert "(inputs 25)" in str(exc)
    assert "input 5 " not in str(exc)
    assert exc.partial is not None
    assert set(exc.partial.rows) <= set(range(20, 30)) - {25}
    assert exc.partial.rows  # the rows of the chunk that did succeed, by their whole-input row


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_invalid_text_is_named_by_its_row_in_the_whole_input(kind: str, emu: Emulator) -> None:
    """An empty text at row 23 (chunks of ten) raises InvalidInputError with index 23."""
    with pytest.raises(InvalidInputError) as info:
        drain(kind, emu, texts_with(23, "   "), 10)
    assert info.value.index == 23
    assert info.value.rule == "empty_text"
    assert str(info.value).startswith("input 23 is empty")


def test_failed_npy_stream_leaves_a_nan_partial_and_the_old_output(
    tmp_path: Path, emu: Emulator
) -> None:
    """A stream stopped at row 25 (``on_error="raise"``) writes no output: a file already there
    is untouched, and out.npy.partial holds rows 0-19 and every row of the failed chunk that was
    billed, with their vectors, and NaN for the rest (never 0.0). Issue 14: the billed rows of
    the failed chunk used to be dropped (NaN from row 20 on)."""
    out = tmp_path / "out.npy"
    np.save(out, np.ones((2, 2), dtype=np.float32))
    texts = texts_with(25, TOO_LONG)
    before = emu.stats.rows
    with pytest.raises(InputTooLongError) as info:
        embed_to_file(
            make_client(emu),
            iter(texts),
            out,
            ids=[f"id{i}" for i in range(30)],
            n=30,
            chunk_size=10,
            dimension=64,
            on_error="raise",
        )
    np.testing.assert_array_equal(np.load(out), np.ones((2, 2)))
    partial = np.load(tmp_path / "out.npy.partial")
    assert partial.shape == (30, 64)
    np.testing.assert_allclose(partial[19], text_vector(V4, texts[19], dimension=64), atol=1e-6)
    assert not np.isnan(partial[:20]).any()
    kept = [r for r in range(20, 30) if not np.isnan(partial[r]).any()]
    assert info.value.partial is not None
    assert kept == sorted(info.value.partial.rows)
    assert len(kept) + 20 == emu.stats.rows - before  # every billed row is in the .partial
    for row in kept:
        np.testing.assert_allclose(
            partial[row], text_vector(V4, texts[row], dimension=64), atol=1e-6
        )
    assert np.isnan(partial[25]).all()
    assert not (tmp_path / "out.ids.jsonl").exists()
    ids = (tmp_path / "out.ids.jsonl.partial").read_text().splitlines()
    assert [json.loads(i) for i in ids] == [f"id{i}" for i in range(30)]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_failed_jsonl_or_parquet_stream_is_left_as_partial(
    tmp_path: Path, emu: Emulator, suffix: str
) -> None:
    """A stopped stream to .jsonl/.parquet leaves OUTPUT.partial with the rows written (the
    failed chunk's rows too, those without a vector carrying an error) and nothing at OUTPUT."""
    out = tmp_path / f"out{suffix}"
    with pytest.raises(InputTooLongError):
        embed_to_file(
            make_client(emu),
            texts_with(25, TOO_LONG),
            out,
            chunk_size=10,
            dimension=64,
            on_error="raise",
        )
    assert not out.exists()
    partial = tmp_path / f"out{suffix}.partial"
    if suffix == ".jsonl":
        rows = [json.loads(x) for x in partial.read_text().splitlines()]
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        rows = pq.read_table(partial).to_pylist()
    assert len(rows) == 30
    assert all(r.get("embedding") is not None for r in rows[:20])
    assert rows[25].get("error")
    assert rows[25].get("embedding") is None


def test_successful_stream_leaves_no_partial(tmp_path: Path, emu: Emulator) -> None:
    """A complete run moves the .partial files onto the output and its ids sidecar."""
    out = tmp_path / "out.npy"
    texts = texts_with(3, "still fine", n=12)
    embed_to_file(
        make_client(emu), texts, out, ids=[str(i) for i in range(12)], chunk_size=5, dimension=64
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ids.jsonl", "out.npy"]
    np.testing.assert_allclose(
        np.load(out)[11], text_vector(V4, texts[11], dimension=64), atol=1e-6
    )
