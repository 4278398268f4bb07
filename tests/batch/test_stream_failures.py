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
    """A stream that fails at row 25 writes no output: a file already there is untouched, and
    out.npy.partial holds rows 0-19 with their vectors and NaN from row 20 on (never 0.0)."""
    out = tmp_path / "out.npy"
    np.save(out, np.ones((2, 2), dtype=np.float32))
    texts = texts_with(25, TOO_LONG)
    with pytest.raises(InputTooLongError):
        embed_to_file(
            make_client(emu),
            iter(texts),
            out,
            ids=[f"id{i}" for i in range(30)],
            n=30,
            chunk_size=10,
            dimension=64,
        )
    np.testing.assert_array_equal(np.load(out), np.ones((2, 2)))
    partial = np.load(tmp_path / "out.npy.partial")
    assert partial.shape == (30, 64)
    np.testing.assert_allclose(partial[19], text_vector(V4, texts[19], dimension=64), atol=1e-6)
    assert not np.isnan(partial[:20]).any()
    assert np.isnan(partial[20:]).all()
    assert not (tmp_path / "out.ids.jsonl").exists()
    ids = (tmp_path / "out.ids.jsonl.partial").read_text().splitlines()
    assert [json.loads(i) for i in ids] == [f"id{i}" for i in range(20)]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_failed_jsonl_or_parquet_stream_is_left_as_partial(
    tmp_path: Path, emu: Emulator, suffix: str
) -> None:
    """A failed stream to .jsonl/.parquet leaves OUTPUT.partial with the 20 rows written and no
    truncated file at OUTPUT."""
    out = tmp_path / f"out{suffix}"
    with pytest.raises(InputTooLongError):
        embed_to_file(make_client(emu), texts_with(25, TOO_LONG), out, chunk_size=10, dimension=64)
    assert not out.exists()
    partial = tmp_path / f"out{suffix}.partial"
    if suffix == ".jsonl":
        assert len(partial.read_text().splitlines()) == 20
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        assert pq.read_table(partial).num_rows == 20


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
