"""``dashscope-embed embed`` / ``batch`` in-process against the emulator on loopback, plus one
run of the real entry point in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dashscope_embed import cli
from dashscope_embed.emulator import EmulatorConfig, EmulatorServer, serve, text_vector

from .conftest import BATCHES, FILES, KEY, count

pytestmark = pytest.mark.integration
V4 = "text-embedding-v4"
NATIVE = "/api/v1/services/embeddings/text-embedding/text-embedding"


def run(server: EmulatorServer, *argv: str) -> int:
    return cli.main([*argv, "--base-url", server.url])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_to_npy(env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]) -> None:
    """One text per line becomes one float32 row each; dimension reaches the wire."""
    lines = ["the first line", "a second, different line", "third"]
    write(env / "in.txt", "\n".join(lines) + "\n")
    assert (
        run(server, "embed", "in.txt", "-o", "out.npy", "--dimension", "256", "--no-progress") == 0
    )
    arr = np.load(env / "out.npy")
    assert arr.shape == (3, 256)
    for row, text in zip(arr, lines, strict=True):
        np.testing.assert_allclose(row, text_vector(V4, text, dimension=256), atol=1e-6)
    sent = [r.json for r in server.emulator.requests if r.path == NATIVE]
    assert [b["parameters"]["dimension"] for b in sent] == [256]
    assert not (env / "out.ids.jsonl").exists()
    assert "wrote 3 256-d dense vectors to out.npy" in capsys.readouterr().err


def test_jsonl_field_ids_and_query_options(env: Path, server: EmulatorServer) -> None:
    """--field picks the text, ids are kept, and text_type/instruct/model go on the wire."""
    docs = [
        {"key": "k1", "body": "how do I reset a password"},
        {"key": "k2", "body": "refund policy"},
    ]
    write(env / "q.jsonl", "".join(json.dumps(d) + "\n" for d in docs))
    argv = ["embed", "q.jsonl", "-o", "q.jsonl.out.jsonl", "--field", "body", "--id-field", "key"]
    argv += [
        "--text-type",
        "query",
        "--instruct",
        "Find the FAQ answer",
        "--model",
        "qwen3.7-text-embedding",
    ]
    assert run(server, *argv, "--dimension", "256") == 0
    rows = [json.loads(x) for x in (env / "q.jsonl.out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["k1", "k2"]
    expected = text_vector(
        "qwen3.7-text-embedding",
        docs[0]["body"],
        dimension=256,
        text_type="query",
        instruct="Find the FAQ answer",
    )
    np.testing.assert_allclose(rows[0]["embedding"], expected, atol=1e-6)
    (body,) = [r.json for r in server.emulator.requests if r.path == NATIVE]
    assert body["model"] == "qwen3.7-text-embedding"
    assert body["parameters"] == {
        "text_type": "query",
        "dimension": 256,
        "instruct": "Find the FAQ answer",
    }


def test_csv_to_parquet_dense_and_sparse(env: Path, server: EmulatorServer) -> None:
    """A CSV column (quoted commas and all) becomes Parquet rows with id, embedding and sparse."""
    pq = pytest.importorskip("pyarrow.parquet")
    write(env / "t.csv", 'id,title,text\n7,a,"apples, pears"\n8,b,plums\n')
    argv = [
        "embed",
        "t.csv",
        "-o",
        "t.parquet",
        "--output-type",
        "dense&sparse",
        "--dimension",
        "64",
    ]
    assert run(server, *argv) == 0
    table = pq.read_table(env / "t.parquet")
    assert table.column("id").to_pylist() == ["7", "8"]
    np.testing.assert_allclose(
        table.column("embedding").to_pylist()[0],
        text_vector(V4, "apples, pears", dimension=64),
        atol=1e-6,
    )
    assert all(table.column("sparse_indices").to_pylist())
    (body,) = [r.json for r in server.emulator.requests if r.path == NATIVE]
    assert body["input"]["texts"] == ["apples, pears", "plums"]
    assert body["parameters"]["output_type"] == "dense&sparse"


def test_progress_bar_on_stderr(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """--progress draws a tqdm bar with a rate on stderr; stdout stays empty."""
    write(env / "in.txt", "".join(f"line {i}\n" for i in range(30)))
    assert run(server, "embed", "in.txt", "-o", "o.npy", "--progress") == 0
    captured = capsys.readouterr()
    assert "30/30" in captured.err
    assert "text/s" in captured.err
    assert captured.out == ""


def test_empty_lines_fail_or_are_skipped(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty line stops the command before any request (exit 2, line named); --skip-empty
    skips it and writes line-number ids so rows stay aligned."""
    write(env / "in.txt", "one\n\nthree\n")
    assert run(server, "embed", "in.txt", "-o", "o.npy") == 2
    assert "in.txt:2: empty text" in capsys.readouterr().err
    assert server.emulator.requests == []
    assert run(server, "embed", "in.txt", "-o", "o.npy", "--skip-empty") == 0
    assert np.load(env / "o.npy").shape == (2, 1024)
    assert [json.loads(x) for x in (env / "o.ids.jsonl").read_text().splitlines()] == ["1", "3"]


@pytest.mark.parametrize(
    ("files", "argv", "message"),
    [
        ({}, ["embed", "missing.txt", "-o", "o.npy"], "input file not found"),
        ({"a.doc": "x"}, ["embed", "a.doc", "-o", "o.npy"], "unsupported input"),
        ({"a.txt": "x\n"}, ["embed", "a.txt", "-o", "o.csv"], "unsupported output"),
        (
            {"a.jsonl": '{"text": "ok"}\n{bad\n'},
            ["embed", "a.jsonl", "-o", "o.npy"],
            "a.jsonl:2: not valid JSON",
        ),
        ({"a.jsonl": '{"body": "x"}\n'}, ["embed", "a.jsonl", "-o", "o.npy"], "no field 'text'"),
        ({"a.csv": "id,body\n1,x\n"}, ["embed", "a.csv", "-o", "o.npy"], "no column 'text'"),
        (
            {"a.txt": "x\n"},
            ["embed", "a.txt", "-o", "o.npy", "--output-type", "sparse"],
            "dense vectors only",
        ),
        (
            {"a.txt": "x\n"},
            ["embed", "a.txt", "-o", "o.npy", "--instruct", "hi"],
            "--text-type query",
        ),
        (
            {"a.txt": "x\n"},
            ["embed", "a.txt", "-o", "o.npy", "--dimension", "100"],
            "dimension=100 is not allowed",
        ),
        (
            {"a.txt": "x\n"},
            ["embed", "a.txt", "-o", "o.npy", "--resume"],
            "only apply with --batch",
        ),
        (
            {"a.txt": "x\n"},
            ["embed", "a.txt", "-o", "o.npy", "--batch", "--text-type", "query"],
            "--text-type cannot be used with --batch",
        ),
        (
            {"a.txt": "x\n"},
            [
                "embed",
                "a.txt",
                "-o",
                "o.npy",
                "--batch",
                "--instruct",
                "x",
                "--output-type",
                "sparse",
            ],
            "--output-type, --instruct cannot",
        ),
        (
            {"a.txt": "x\n"},
            ["embed", "a.txt", "-o", "o.npy", "--batch", "--resume"],
            "nothing to resume",
        ),
        ({}, ["batch", "status", "nope.json"], "no job state file"),
    ],
)
def test_bad_files_and_options_exit_2_before_any_request(
    env: Path,
    server: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    """Every problem the user can fix exits 2 with a message that says what to change, and
    nothing reaches the service."""
    for name, text in files.items():
        write(env / name, text)
    assert run(server, *argv) == 2
    assert message in capsys.readouterr().err
    assert server.emulator.requests == []


def test_missing_key_exits_2_with_the_emulator_hint(
    env: Path,
    server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without DASHSCOPE_API_KEY the command explains how to get going with the emulator."""
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    write(env / "a.txt", "x\n")
    assert cli.main(["embed", "a.txt", "-o", "o.npy"]) == 2
    err = capsys.readouterr().err
    assert "DASHSCOPE_API_KEY" in err
    assert "dashscope-embed emulator" in err
    assert "--base-url http://127.0.0.1:8123" in err


def test_service_errors_exit_1(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rejected key (401, never retried) exits 1 with the server's message and request id."""
    write(env / "a.txt", "x\n")
    server.emulator.enqueue_fault(401, "InvalidApiKey", "Invalid API-key provided.")
    assert run(server, "embed", "a.txt", "-o", "o.npy") == 1
    err = capsys.readouterr().err
    assert "HTTP 401 InvalidApiKey" in err
    assert "request_id=" in err


def test_batch_csv_to_jsonl_then_resume_status_list(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """--batch uploads one file and creates one batch, writes rows with their ids; a second run
    needs --resume and then sends nothing new; status and list show the batch."""
    rows = [(f"r{i}", f"row number {i} text") for i in range(25)]
    write(env / "d.csv", "id,text\n" + "".join(f"{i},{t}\n" for i, t in rows))
    argv = [
        "embed",
        "d.csv",
        "-o",
        "d.jsonl",
        "--batch",
        "--poll-interval",
        "0.01",
        "--dimension",
        "64",
    ]
    assert run(server, *argv) == 0
    out = [json.loads(x) for x in (env / "d.jsonl").read_text().splitlines()]
    assert [o["id"] for o in out] == [i for i, _ in rows]
    np.testing.assert_allclose(
        out[24]["embedding"], text_vector(V4, rows[24][1], dimension=64), atol=1e-6
    )
    emu = server.emulator
    assert count(emu, "POST", FILES) == 1
    assert count(emu, "POST", BATCHES) == 1
    state = json.loads((env / "d.jsonl.batch.json").read_text())
    assert state["total_rows"] == 25
    assert state["parts"][0]["downloaded"] is True
    capsys.readouterr()
    assert run(server, *argv) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert run(server, *argv, "--resume") == 0
    assert count(emu, "POST", FILES) == 1
    assert count(emu, "POST", BATCHES) == 1
    capsys.readouterr()
    assert run(server, *argv[:-1], "128", "--resume") == 2
    assert "--dimension 64; resume it with the same" in capsys.readouterr().err
    capsys.readouterr()
    assert run(server, "batch", "status", "d.jsonl.batch.json") == 0
    status = capsys.readouterr().out
    assert state["job_id"] in status
    assert "completed" in status
    assert run(server, "batch", "list", "--limit", "5") == 0
    assert state["parts"][0]["batch_id"] in capsys.readouterr().out
    assert run(server, "batch", "download", "d.jsonl.batch.json") == 0


def test_batch_failed_rows_exit_3_with_an_errors_file(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row the server rejects is listed by row (and file line) in OUTPUT.errors.jsonl and
    carries an error in the output; the other rows of its ten-row line are sent again one per
    line and get their vectors (issue 14: "0 of 3 rows embedded" before); exit 3."""
    texts = [f"text {i}" for i in range(12)]
    texts[3] = "word " * 9000
    write(env / "d.txt", "\n".join(texts) + "\n")
    argv = [
        "embed",
        "d.txt",
        "-o",
        "d.jsonl",
        "--batch",
        "--poll-interval",
        "0.01",
        "--dimension",
        "64",
    ]
    assert run(server, *argv) == 3
    errors = [json.loads(x) for x in (env / "d.jsonl.errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["line"]) for e in errors] == [(3, 4)]
    assert {e["code"] for e in errors} == {"InvalidParameter"}
    out = [json.loads(x) for x in (env / "d.jsonl").read_text().splitlines()]
    assert "error" in out[3]
    assert "embedding" not in out[3]
    for row in (0, 4, 9, 11):
        np.testing.assert_allclose(
            out[row]["embedding"], text_vector(V4, f"text {row}", dimension=64), atol=1e-6
        )
    err = capsys.readouterr().err
    assert "1 row(s) failed" in err
    assert "batch retry-failed d.jsonl.batch.json" in err


def test_batch_no_wait_cancel_and_collect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-wait submits and exits; `batch cancel` cancels; --resume then collects what finished
    (nothing, here) and reports every row as cancelled."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "d.txt", "".join(f"line {i}\n" for i in range(20)))
    with serve(config=EmulatorConfig(batch_speed=0.0001)) as slow:
        base = ["--base-url", slow.url]
        argv = ["embed", "d.txt", "-o", "d.npy", "--batch", "--poll-interval", "0.01", *base]
        assert cli.main([*argv, "--no-wait"]) == 0
        assert count(slow.emulator, "POST", BATCHES) == 1
        assert cli.main(["batch", "cancel", "d.npy.batch.json", *base]) == 0
        assert "cancelling" in capsys.readouterr().out
        assert cli.main([*argv, "--resume"]) == 3
    errors = [json.loads(x) for x in (tmp_path / "d.npy.errors.jsonl").read_text().splitlines()]
    assert len(errors) == 20
    assert {e["code"] for e in errors} == {"batch_cancelled"}
    assert np.isnan(np.load(tmp_path / "d.npy")).all()


def test_help_and_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """--help exits 0 and lists the commands; an unknown command or missing action exits 2."""
    assert cli.main(["--help"]) == 0
    assert "embed" in capsys.readouterr().out
    assert cli.main(["embed", "--help"]) == 0
    assert "--batch" in capsys.readouterr().out
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["batch"]) == 2


def test_entry_point_in_a_subprocess(env: Path, server: EmulatorServer) -> None:
    """`python -m dashscope_embed.cli embed …` runs as a real process and exits 0."""
    write(env / "a.txt", "hello there\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dashscope_embed.cli",
            "embed",
            "a.txt",
            "-o",
            "a.npy",
            "--base-url",
            server.url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DASHSCOPE_API_KEY": KEY},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(env / "a.npy")[0], text_vector(V4, "hello there"), atol=1e-6)
