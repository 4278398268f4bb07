"""The smaller items of issue 14 (point 6), one test each: ids and ``n`` checked before a chunk
is paid for, empty Parquet output, JSONL ids, CSV headers, invalid UTF-8, unknown models, the
default chunk size, Ray's vector type and globs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dashscope_embed import MODELS, cli
from dashscope_embed.emulator import Emulator, EmulatorServer
from dashscope_embed.io._stream import DEFAULT_CHUNK_SIZE, embed_to_file

from .conftest import make_client

NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"


def texts(n: int) -> list[str]:
    return [f"text number {i}" for i in range(n)]


def billed_rows(emu: Emulator) -> int:
    return emu.stats.rows


def test_fewer_ids_than_texts_fail_before_the_chunk_is_sent(tmp_path: Path, emu: Emulator) -> None:
    """Fewer ids: a ValueError naming the row (not a bare StopIteration), raised before the
    chunk without ids is sent; with sized ids and texts, before anything is sent."""
    with pytest.raises(ValueError, match="15 ids for 25 texts"):
        embed_to_file(
            make_client(emu), texts(25), tmp_path / "a.npy", ids=[str(i) for i in range(15)]
        )
    assert emu.requests == []
    ids = (str(i) for i in range(15))
    with pytest.raises(ValueError, match="ids ran out at row 15"):
        embed_to_file(make_client(emu), iter(texts(25)), tmp_path / "b.npy", ids=ids, chunk_size=10)
    assert billed_rows(emu) == 10  # chunk 2 (rows 10-19) was never sent


def test_more_ids_than_texts_are_an_error(tmp_path: Path, emu: Emulator) -> None:
    """More ids than texts are refused (they used to be accepted silently), before the last
    chunk is sent."""
    ids = (str(i) for i in range(30))
    with pytest.raises(ValueError, match="more ids than the 25 texts"):
        embed_to_file(make_client(emu), iter(texts(25)), tmp_path / "a.npy", ids=ids, chunk_size=10)
    assert billed_rows(emu) == 20
    assert not (tmp_path / "a.npy").exists()


def test_n_smaller_than_the_input_stops_before_paying_for_more(
    tmp_path: Path, emu: Emulator
) -> None:
    """n=10 with 25 texts: a clear error before the second chunk is sent (it used to pay for
    the chunk and then fail with "rows 10..20 outside the file")."""
    with pytest.raises(ValueError, match="more than the n=10 rows") as info:
        embed_to_file(make_client(emu), iter(texts(25)), tmp_path / "a.npy", n=10, chunk_size=10)
    assert "outside the file" not in str(info.value)
    assert billed_rows(emu) == 10


def test_empty_input_to_parquet_has_an_embedding_column(tmp_path: Path, emu: Emulator) -> None:
    """No texts, no dimension, .parquet: the file still has its `embedding` column, sized to the
    model's default dimension."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    embed_to_file(make_client(emu), [], tmp_path / "e.parquet")
    schema = pq.read_schema(tmp_path / "e.parquet")
    assert schema.field("embedding").type == pa.list_(pa.float32(), 1024)


@pytest.mark.parametrize(
    ("name", "content", "argv", "message"),
    [
        (
            "in.jsonl",
            b'{"text": "a"}\n{"text": "b", "id": "x"}\n',
            [],
            "in.jsonl:1: no 'id', but line 2 has one",
        ),
        (
            "in.jsonl",
            b'{"text": "a", "id": "x"}\n{"text": "b"}\n',
            [],
            "in.jsonl:2: no 'id', but line 1 has one",
        ),
        ("in.csv", b"text,text\na,b\n", [], "in.csv:1: the header names column 'text' 2 times"),
        ("in.csv", b"id,text,id\n1,a,2\n", [], "names column 'id' 2 times"),
        ("in.txt", b"good\nalso good\nbad \xff\xfe byte\n", [], "in.txt:3: not valid UTF-8"),
        ("in.jsonl", b'{"text": "ok"}\n{"text": "\xc3"}\n', [], "in.jsonl:2: not valid UTF-8"),
    ],
)
def test_ambiguous_or_broken_inputs_exit_2_naming_the_line(
    env: Path,
    server: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    argv: list[str],
    message: str,
) -> None:
    """Ids on some JSONL records only, a duplicated CSV column, invalid UTF-8: exit 2 with the
    file and line, before any request (they used to drop ids / take the last column / name no
    line)."""
    (env / name).write_bytes(content)
    assert cli.main(["embed", name, "-o", "o.npy", *argv, "--base-url", server.url]) == 2
    assert message in capsys.readouterr().err
    assert server.emulator.requests == []


def test_unknown_model_exits_2(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--model nope` is a usage error (exit 2, the server's "Model not exist."), not 1."""
    (env / "in.txt").write_text("hello\n")
    argv = ["embed", "in.txt", "-o", "o.npy", "--model", "nope", "--no-progress"]
    assert cli.main([*argv, "--base-url", server.url]) == 2
    assert "Model not exist" in capsys.readouterr().err


def test_default_chunk_is_a_multiple_of_every_row_limit(tmp_path: Path, emu: Emulator) -> None:
    """The default chunk holds whole requests for every text model (2,048 left an 8-row
    request per chunk for v4), so 4,000 rows go out as 400 ten-row requests."""
    for spec in MODELS.values():
        if spec.kind == "text" and spec.max_batch_size > 1:
            assert DEFAULT_CHUNK_SIZE % spec.max_batch_size == 0, spec.name
    embed_to_file(make_client(emu), texts(4000), tmp_path / "o.npy", dimension=64)
    sizes = [len(r.json["input"]["texts"]) for r in emu.requests if r.path == NATIVE]
    assert sizes == [10] * 400


def test_ray_pyarrow_vectors_are_fixed_size_lists_like_the_sinks() -> None:
    """Ray's pyarrow batches get `fixed_size_list<float32>[dim]` (null for a failed row), the
    type the core's Parquet sink writes (they were `list<float>`)."""
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("ray")
    from dashscope_embed.ray._batch import Columns, write_columns

    dense = np.arange(6, dtype=np.float32).reshape(3, 2)
    failed = np.array([False, True, False])
    cols = Columns(dense, failed, None, [None, "InvalidParameter: too long", None])
    table = write_columns(
        pa.table({"text": ["a", "b", "c"]}),
        "pyarrow",
        cols,
        vector_column="embedding",
        sparse_column="sparse",
        error_column="error",
    )
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 2)
    assert table.column("embedding").to_pylist() == [[0.0, 1.0], None, [4.0, 5.0]]


def test_ray_embed_files_expands_a_local_glob(tmp_path: Path) -> None:
    """`embed_files("dir/*.jsonl")` (the README's form) reads the matching files instead of
    raising FileNotFoundError; a pattern matching nothing names itself."""
    pytest.importorskip("ray")
    from dashscope_embed.ray._pipeline import _expand

    for name in ("b.jsonl", "a.jsonl", "c.csv"):
        (tmp_path / name).write_text(json.dumps({"id": 1, "text": "x"}) + "\n")
    pattern = str(tmp_path / "*.jsonl")
    assert _expand([pattern]) == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]
    assert _expand(["s3://bucket/*.jsonl"]) == ["s3://bucket/*.jsonl"]
    with pytest.raises(FileNotFoundError, match=r"no file matches .*\*\.parquet"):
        _expand([str(tmp_path / "*.parquet")])


def test_our_own_file_errors_are_not_bad_input(
    env: Path,
    server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An OSError writing our own output (a full disk here) exits 1 and says it is a local file
    error; it used to exit 2, "fix your input"."""
    import errno

    from dashscope_embed.io import _npy

    def full(self: object, start: int, block: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_npy.NpyWriter, "write", full)
    (env / "in.txt").write_text("a\nb\n")
    argv = ["embed", "in.txt", "-o", "o.npy", "--no-progress", "--base-url", server.url]
    assert cli.main(argv) == 1
    assert "a local file error, not a problem with the input" in capsys.readouterr().err
