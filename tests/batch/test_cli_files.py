"""``dashscope-embed embed`` / ``batch`` on awkward files and unfinished jobs: strict CSV, line
endings, skipped rows, empty inputs, bad windows, partial outputs and their exit codes."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from dashscope_embed import cli
from dashscope_embed.batch._export import export_batch
from dashscope_embed.batch._files import BatchFailure
from dashscope_embed.batch._report import BatchReport
from dashscope_embed.emulator import EmulatorConfig, EmulatorServer, serve, text_vector
from dashscope_embed.io._sinks import NpyWriter

from .conftest import BATCHES, FILES, KEY, count

pytestmark = pytest.mark.integration
V4 = "text-embedding-v4"
NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"


def run(server: EmulatorServer, *argv: str) -> int:
    quiet = ["--no-progress"] if argv[0] == "embed" else []
    return cli.main([*argv, *quiet, "--base-url", server.url])


def sent_texts(server: EmulatorServer) -> list[str]:
    requests = server.emulator.requests
    return [t for r in requests if r.path == NATIVE for t in r.json["input"]["texts"]]


def test_csv_with_an_unclosed_quote_exits_2_naming_its_line(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quote left open on line 3 is a malformed-CSV error naming line 3 (exit 2, nothing sent),
    not a text that swallows the rest of the file."""
    (env / "d.csv").write_bytes(b'text\nfirst\n"abc\nsecond\nthird\n')
    assert run(server, "embed", "d.csv", "-o", "o.jsonl") == 2
    assert "d.csv:3: malformed CSV (unexpected end of data)" in capsys.readouterr().err
    assert server.emulator.requests == []
    assert not (env / "o.jsonl").exists()


def test_quoted_newlines_and_crlf_in_csv_still_parse(env: Path, server: EmulatorServer) -> None:
    """Strict parsing still reads quoted commas and newlines and CRLF line ends; blank lines are
    skipped."""
    (env / "d.csv").write_bytes(b'id,text\r\n1,"a, b\r\nc"\r\n\r\n2,plain\r\n')
    assert run(server, "embed", "d.csv", "-o", "o.jsonl") == 0
    assert sent_texts(server) == ["a, b\r\nc", "plain"]
    rows = [json.loads(x) for x in (env / "o.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2"]


def test_lone_carriage_return_stays_inside_a_txt_line(env: Path, server: EmulatorServer) -> None:
    """A .txt splits on \\n only: "beta\\rgamma" is one text; the \\r of \\r\\n is dropped."""
    (env / "in.txt").write_bytes(b"\xef\xbb\xbfalpha\r\nbeta\rgamma\r\ndelta\nlast")
    assert run(server, "embed", "in.txt", "-o", "o.npy", "--dimension", "64") == 0
    assert sent_texts(server) == ["alpha", "beta\rgamma", "delta", "last"]
    assert np.load(env / "o.npy").shape == (4, 64)


@pytest.mark.parametrize(
    ("name", "content", "ids"),
    [
        ("d.csv", "text,lang\nalpha,en\n,en\ngamma,en\n", ["2", "4"]),
        ("d.jsonl", '{"text":"a"}\n{"text":" "}\n{"text":"c"}\n', ["1", "3"]),
    ],
)
@pytest.mark.parametrize("batch", [False, True])
def test_skip_empty_without_ids_writes_line_numbers(
    env: Path, server: EmulatorServer, name: str, content: str, ids: list[str], batch: bool
) -> None:
    """--skip-empty on a .csv/.jsonl without an id column keeps rows aligned: each row's id is
    the line its record is on, real time and --batch alike."""
    (env / name).write_text(content)
    extra = ["--batch", "--poll-interval", "0.01"] if batch else []
    assert run(server, "embed", name, "-o", "o.jsonl", "--skip-empty", *extra) == 0
    rows = [json.loads(x) for x in (env / "o.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ids
    assert run(server, "embed", name, "-o", "o.npy", "--skip-empty", *extra) == 0
    assert [json.loads(x) for x in (env / "o.ids.jsonl").read_text().splitlines()] == ids


def test_too_long_text_fails_only_its_row_or_exits_2_with_fail_fast(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real time: a text over the token limit on line 26 fails only its row (NaN, listed with
    its line in out.npy.errors.jsonl, exit 3) and every other row gets its vector; with
    --fail-fast it is bad input (exit 2), named by its row and line, and out.npy.partial keeps
    every row billed, those of the failed chunk included (issue 14: they were NaN)."""
    lines = [f"text {i}" for i in range(30)]
    lines[25] = "word " * 9000
    (env / "in.txt").write_text("\n".join(lines) + "\n")
    argv = ["embed", "in.txt", "-o", "out.npy", "--chunk-size", "10", "--dimension", "64"]
    assert run(server, *argv) == 3
    out = np.load(env / "out.npy")
    assert np.isnan(out[25]).all()
    for row in (0, 20, 24, 26, 29):
        np.testing.assert_allclose(out[row], text_vector(V4, lines[row], dimension=64), atol=1e-6)
    errors = [json.loads(x) for x in (env / "out.npy.errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["line"], e["code"]) for e in errors] == [(25, 26, "InvalidParameter")]
    assert "1 row(s) were rejected" in capsys.readouterr().err
    (env / "out.npy").unlink()
    assert run(server, *argv, "--fail-fast") == 2
    err = capsys.readouterr().err
    assert "input 25 is longer than text-embedding-v4 accepts" in err
    assert "input 25 is in.txt:26" in err
    assert "rows embedded so far are in out.npy.partial" in err
    assert not (env / "out.npy").exists()
    partial = np.load(env / "out.npy.partial")
    np.testing.assert_allclose(partial[19], text_vector(V4, "text 19", dimension=64), atol=1e-6)
    assert np.isnan(partial[25]).all()
    billed = [r for r in range(20, 30) if not np.isnan(partial[r]).any()]
    assert billed  # the chunk's rows that were embedded before the stop are kept
    for row in billed:
        np.testing.assert_allclose(
            partial[row], text_vector(V4, lines[row], dimension=64), atol=1e-6
        )


@pytest.mark.parametrize("window", ["2h", "400h", "1w"])
def test_bad_completion_window_exits_2_before_any_upload(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str], window: str
) -> None:
    """--completion-window outside 24h … 336h exits 2 before anything is uploaded or saved, so
    the same command with a good window then simply works."""
    (env / "in.txt").write_text("a\nb\n")
    argv = ["embed", "in.txt", "-o", "o.npy", "--batch", "--poll-interval", "0.01"]
    assert run(server, *argv, "--completion-window", window) == 2
    assert "24h to 336h" in capsys.readouterr().err
    assert server.emulator.requests == []
    assert not (env / "o.npy.batch.json").exists()
    assert run(server, *argv, "--completion-window", "48h") == 0


def test_resume_with_rows_appended_exits_2(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume of a finished job whose input file has grown is a mismatch (exit 2), not a
    success that ignores the new rows; nothing is uploaded."""
    (env / "in.txt").write_text("".join(f"text {i}\n" for i in range(25)))
    argv = ["embed", "in.txt", "-o", "o.npy", "--batch", "--poll-interval", "0.01"]
    assert run(server, *argv) == 0
    with open(env / "in.txt", "a") as fh:
        fh.write("more 1\nmore 2\n")
    capsys.readouterr()
    assert run(server, *argv, "--resume") == 2
    assert "more rows than the 25 this job submitted" in capsys.readouterr().err
    assert count(server.emulator, "POST", FILES) == 1


@pytest.mark.parametrize("suffix", [".npy", ".jsonl", ".parquet"])
def test_empty_input_with_batch_creates_the_empty_output(
    env: Path, server: EmulatorServer, suffix: str
) -> None:
    """No texts, --batch: exit 0 and an empty output of the requested format exists."""
    (env / "in.txt").write_text("")
    out = env / f"o{suffix}"
    assert run(server, "embed", "in.txt", "-o", out.name, "--batch") == 0
    assert out.exists()
    if suffix == ".npy":
        assert np.load(out).shape == (0, 1024)
    elif suffix == ".jsonl":
        assert out.read_bytes() == b""
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        table = pq.read_table(out)
        assert table.num_rows == 0
        assert "embedding" in table.column_names
    assert count(server.emulator, "POST", BATCHES) == 0


def test_download_of_a_running_job_exits_4_and_writes_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`batch download` while the job runs says so and exits 4 (not 0), with no file at the
    output path; once every batch has ended (cancelled here) it writes the output (exit 3: no
    row has a vector) and removes the .partial."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.txt").write_text("".join(f"line {i}\n" for i in range(20)))
    with serve(config=EmulatorConfig(batch_speed=0.0001)) as slow:
        base = ["--base-url", slow.url]
        argv = ["embed", "d.txt", "-o", "d.npy", "--batch", "--no-wait", "--no-progress"]
        assert cli.main([*argv, *base]) == 0
        capsys.readouterr()
        assert cli.main(["batch", "download", "d.npy.batch.json", *base]) == 4
        err = capsys.readouterr().err
        assert "is still running: 0 of 20 rows" in err
        assert "d.npy appears when every batch has ended" in err
        assert not (tmp_path / "d.npy").exists()
        assert cli.main(["batch", "cancel", "d.npy.batch.json", *base]) == 0
        assert cli.main(["batch", "download", "d.npy.batch.json", *base]) == 3
    assert "finished: 0 rows written" in capsys.readouterr().err
    assert np.isnan(np.load(tmp_path / "d.npy")).all()
    assert not (tmp_path / "d.npy.partial").exists()


def test_export_marks_failed_rows_across_chunks_with_bounded_memory(tmp_path: Path) -> None:
    """Exporting a job with 20,000 failed rows walks the failure ranges chunk by chunk: each
    row gets its own range's error, and memory does not grow with the failures."""
    n = 20_000
    src = tmp_path / "job.npy"
    with NpyWriter(src, 1, rows=n) as w:
        w.write(0, np.full((3, 1), 0.5, dtype=np.float32))
    failures = (
        BatchFailure(3, 5000, "InvalidParameter", "too long"),
        BatchFailure(5000, n, "batch_cancelled", "cancelled"),
    )
    report = BatchReport("job", src, n, failures, 0, True)
    tracemalloc.start()
    errors = export_batch(report, tmp_path / "out.jsonl", None, chunk=1024)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.5 * 2**20, peak  # a string per failed row alone: ~2.6 MiB here
    with open(tmp_path / "out.jsonl") as fh:
        rows = [json.loads(next(fh)) for _ in range(5001)]
    assert rows[2] == {"embedding": [0.5]}
    assert rows[3] == {"error": "InvalidParameter: too long"}
    assert rows[1023]["error"] == rows[1024]["error"] == "InvalidParameter: too long"
    assert rows[4999]["error"] == "InvalidParameter: too long"
    assert rows[5000]["error"] == "batch_cancelled: cancelled"
    assert errors == tmp_path / "out.jsonl.errors.jsonl"
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == n
