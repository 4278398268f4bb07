"""Downloads that finish the job (issue 14, point 3): `batch download|status|cancel` need only
the state file, and `download` writes the same files as a foreground `embed --batch` run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dashscope_embed import cli
from dashscope_embed.emulator import EmulatorServer, text_vector

from .conftest import BATCHES, count

pytestmark = pytest.mark.integration
V4 = "text-embedding-v4"


def _input(path: Path) -> list[dict[str, str]]:
    docs = [{"id": f"doc-{i}", "text": f"document {i} on the export path"} for i in range(23)]
    docs[14]["text"] = "word " * 9000  # too long: fails alone, its neighbours are narrowed out
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return docs


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".npy"])
def test_download_writes_what_a_foreground_run_writes(
    env: Path, server: EmulatorServer, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`embed --batch` (foreground) and `embed --batch --no-wait` + `batch download --wait`
    (with no --base-url: the state file records the host) produce byte-identical outputs,
    errors.jsonl and ids; before issue 14 download wrote only OUTPUT.batch.npy."""
    pq = pytest.importorskip("pyarrow.parquet") if suffix == ".parquet" else None
    docs = _input(env / "in.jsonl")
    common = ["in.jsonl", "--batch", "--dimension", "64", "--poll-interval", "0.01"]
    url = ["--base-url", server.url]
    assert cli.main(["embed", *common, "-o", f"fg{suffix}", "--no-progress", *url]) == 3
    assert cli.main(["embed", *common, "-o", f"bg{suffix}", "--no-wait", *url]) == 0
    assert not (env / f"bg{suffix}").exists()
    capsys.readouterr()
    argv = ["batch", "download", f"bg{suffix}.batch.json", "--wait", "--poll-interval", "0.01"]
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    assert f"finished: 22 rows written to {(env / f'bg{suffix}').resolve()}, 1 failed" in err
    assert f"batch retry-failed bg{suffix}.batch.json" in err
    for name in ("", ".errors.jsonl"):
        assert (env / f"fg{suffix}{name}").read_bytes() == (env / f"bg{suffix}{name}").read_bytes()
    errors = [json.loads(x) for x in (env / f"bg{suffix}.errors.jsonl").read_text().splitlines()]
    assert [(e["row"], e["line"], e["code"]) for e in errors] == [(14, 15, "InvalidParameter")]
    if suffix == ".npy":
        ids = [json.loads(x) for x in (env / "bg.ids.jsonl").read_text().splitlines()]
        assert ids == [d["id"] for d in docs]
        assert (env / "fg.ids.jsonl").read_bytes() == (env / "bg.ids.jsonl").read_bytes()
        vectors = np.load(env / "bg.npy")
        assert np.isnan(vectors[14]).all()
        np.testing.assert_allclose(
            vectors[15], text_vector(V4, docs[15]["text"], dimension=64), atol=1e-6
        )
    elif pq is not None:
        table = pq.read_table(env / "bg.parquet")
        assert table.column("id").to_pylist() == [d["id"] for d in docs]
        vectors = table.column("embedding").to_pylist()
        assert vectors[14] is None
        np.testing.assert_allclose(
            vectors[13], text_vector(V4, docs[13]["text"], dimension=64), atol=1e-6
        )
    else:
        rows = [json.loads(x) for x in (env / "bg.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == [d["id"] for d in docs]
        assert "error" in rows[14]


def test_status_words_follow_the_jobs_real_state_without_base_url(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`batch status STATE` needs no --base-url; a job whose batches have all ended but whose
    results are not downloaded says so (not "running, 0 written"), and says "finished" once
    `batch download` wrote them; `batch cancel` of an ended job needs no --base-url either."""
    (env / "in.txt").write_text("".join(f"line {i}\n" for i in range(30)))
    argv = ["embed", "in.txt", "-o", "o.jsonl", "--batch", "--no-wait", "--base-url", server.url]
    assert cli.main(argv) == 0
    capsys.readouterr()
    words = []
    for _ in range(3):
        assert cli.main(["batch", "status", "o.jsonl.batch.json"]) == 0
        words.append(capsys.readouterr().out.splitlines()[0])
    assert "running" in words[0]
    assert "every batch has ended; results not all written: run `batch download`" in words[-1]
    assert cli.main(["batch", "status", "o.jsonl.batch.json", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["phase"] == "downloading"
    assert cli.main(["batch", "download", "o.jsonl.batch.json"]) == 0
    assert (env / "o.jsonl").exists()
    capsys.readouterr()
    assert cli.main(["batch", "status", "o.jsonl.batch.json"]) == 0
    assert "30 rows, 30 written, 0 failed, finished" in capsys.readouterr().out
    assert cli.main(["batch", "cancel", "o.jsonl.batch.json"]) == 0
    assert "nothing to cancel" in capsys.readouterr().err
    assert count(server.emulator, "POST", BATCHES) == 1


def test_retry_failed_resubmits_only_failed_rows(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`batch retry-failed STATE --wait` re-reads the recorded input, sends only the failed row
    (one per line: custom_id "5+1"), and exports again; the row still fails (exit 3)."""
    texts = [f"text {i}" for i in range(8)]
    texts[5] = "word " * 9000
    (env / "in.txt").write_text("\n".join(texts) + "\n")
    argv = ["embed", "in.txt", "-o", "o.npy", "--batch", "--poll-interval", "0.01"]
    assert cli.main([*argv, "--keep-remote-files", "--base-url", server.url]) == 3
    err = capsys.readouterr().err
    assert "batch retry-failed o.npy.batch.json" in err
    before = count(server.emulator, "POST", BATCHES)
    argv = ["batch", "retry-failed", "o.npy.batch.json", "--wait", "--poll-interval", "0.01"]
    assert cli.main(argv) == 3
    assert "re-submitted 1 failed row(s)" in capsys.readouterr().err
    assert count(server.emulator, "POST", BATCHES) == before + 1
    from dashscope_embed.emulator._files import files_of

    newest = next(f for f in files_of(server.emulator).all() if f.purpose == "batch")
    assert [json.loads(x)["custom_id"] for x in newest.data.splitlines()] == ["5+1"]
    errors = [json.loads(x) for x in (env / "o.npy.errors.jsonl").read_text().splitlines()]
    assert [e["row"] for e in errors] == [5]
