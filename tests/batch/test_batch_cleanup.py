"""Clean-up and per-row isolation of Batch jobs (issue 14, points 4 and 5): no temporary input
files survive a killed-and-resumed run, the account's files are deleted once the results are on
disk, and one bad row in a ten-row line fails only itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dashscope_embed import DashScopeClient
from dashscope_embed.batch._job import BatchJob, embed_batch
from dashscope_embed.emulator import EmulatorServer, text_vector
from dashscope_embed.emulator._files import files_of

from .conftest import BATCHES, FILES, KEY, FakeClock, count, make_client, make_emulator

V4 = "text-embedding-v4"
TOO_LONG = "word " * 9000


def corpus(n: int) -> list[str]:
    return [f"document {i} about topic {i % 7}" for i in range(n)]


_KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from dashscope_embed import DashScopeClient
    from dashscope_embed.batch import _api
    from dashscope_embed.batch._job import BatchJob

    real = _api.CompatApi.upload
    calls = []

    def upload(self, path, filename):
        calls.append(path)
        if len(calls) == 3:  # SIGKILL while the third input file is being uploaded
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, path, filename)

    _api.CompatApi.upload = upload
    client = DashScopeClient(sys.argv[2], base_url=sys.argv[1])
    job = BatchJob.create(client, "j.json", "o.npy", dimension=64, max_lines_per_file=2)
    job.submit([f"document {i} about topic {i % 7}" for i in range(60)])
    """
)


@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_no_temporary_input_file_survives_a_killed_and_resumed_run(
    tmp_path: Path, env: Path, server: EmulatorServer
) -> None:
    """A process SIGKILLed while uploading its third input file leaves `.dse-<job>-part00002-
    *.jsonl` behind; the resumed job removes it, finishes, and leaves no temporary file."""
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED, server.url, KEY],
        cwd=env,
        env={**os.environ, "DASHSCOPE_API_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    job_id = json.loads((env / "j.json").read_text())["job_id"]
    stale = sorted(p.name for p in env.glob(f".{job_id}-part*.jsonl"))
    assert len(stale) == 1, stale
    assert stale[0].startswith(f".{job_id}-part00002-"), stale
    client = DashScopeClient(KEY, base_url=server.url)
    with BatchJob.resume(client, env / "j.json") as job:
        assert not list(env.glob(".dse-*.jsonl"))  # removed as soon as the lock is held
        report = job.run(corpus(60), poll_interval=0.01)
    assert report.succeeded == 60
    assert sorted(p.name for p in env.iterdir()) == ["j.json", "j.json.lock", "o.npy"]
    assert count(server.emulator, "POST", BATCHES) == 3


def test_account_files_are_deleted_once_written_unless_kept(tmp_path: Path) -> None:
    """After a finished job the account holds none of its input, output or error files (the
    account's cap is 10,000 files); keep_remote_files=True keeps them all."""
    emu = make_emulator()
    texts = corpus(30)
    texts[4] = TOO_LONG  # an error file too
    embed_batch(make_client(emu), texts, tmp_path / "a.npy", state_path=tmp_path / "a.json")
    deletes = [r for r in emu.requests if r.method == "DELETE" and r.path.startswith(FILES)]
    assert files_of(emu).all() == []
    assert len(deletes) >= 4  # input + output + error of the first part, then the follow-up's
    emu.reset_stats()
    embed_batch(
        make_client(emu),
        texts,
        tmp_path / "b.npy",
        state_path=tmp_path / "b.json",
        keep_remote_files=True,
    )
    assert not [r for r in emu.requests if r.method == "DELETE"]
    purposes = sorted(f.purpose for f in files_of(emu).all())
    assert purposes.count("batch") == 2  # the input and the follow-up's input
    state = json.loads((tmp_path / "b.json").read_text())
    assert state["delete_remote"] is False


def test_one_over_long_row_in_a_ten_row_line_fails_alone(tmp_path: Path) -> None:
    """Row 3 of a 12-row job is over the token limit: its ten-row line fails, the job sends
    those ten rows again one per line, and ends with 11 vectors and 1 failure (issue 14: all
    ten rows failed). The follow-up lines on the wire are "0+1" … "9+1"; the rows of
    the failed line are billed once, by the follow-up."""
    emu = make_emulator()
    texts = corpus(12)
    texts[3] = TOO_LONG
    job = BatchJob.create(
        make_client(emu),
        tmp_path / "j.json",
        tmp_path / "o.npy",
        dimension=64,
        keep_remote_files=True,
    )
    with job:
        report = job.run(texts, poll_interval=0)
    assert report.failed_rows == [3]
    assert report.succeeded == 11
    (failure,) = report.failures
    assert failure.code == "InvalidParameter"
    assert "Range of input length" in failure.message
    vectors = np.load(tmp_path / "o.npy")
    assert np.isnan(vectors[3]).all()
    for row in (0, 2, 4, 9, 10, 11):
        np.testing.assert_allclose(
            vectors[row], text_vector(V4, texts[row], dimension=64), atol=1e-6
        )
    inputs = [f for f in reversed(files_of(emu).all()) if f.purpose == "batch"]
    follow_up = [json.loads(x) for x in inputs[-1].data.splitlines()]
    assert [x["custom_id"] for x in follow_up] == [f"{r}+1" for r in range(10)]
    assert all(x["body"]["input"] == [texts[int(x["custom_id"][:-2])]] for x in follow_up)
    assert emu.stats.rows == 11  # each embedded row billed once
    assert report.total_tokens == emu.stats.tokens


def test_transient_line_failures_are_sent_again(tmp_path: Path, clock: FakeClock) -> None:
    """A line throttled inside its batch (TPM: 429 Throttling.AllocationQuota in the error file)
    says nothing about its rows: run() sends them again and every row gets its vector."""
    emu = make_emulator(clock, tpm=6000)  # 100 tokens a second; a ten-row line here costs 80
    job = BatchJob.create(
        make_client(emu),
        tmp_path / "j.json",
        tmp_path / "o.npy",
        dimension=64,
        max_lines_per_file=1,
        sleep=lambda _s: clock.advance(100),  # time passes between polls: the quota refills
    )
    texts = corpus(20)
    with job:
        job.submit(texts)
        first = job.wait(poll_interval=1)
        assert first.failed_rows == list(range(10, 20))
        assert {f.code for f in first.failures} == {"Throttling.AllocationQuota"}
        report = job.settle(lambda: texts, poll_interval=1)
    assert report.failed_rows == []
    vectors = np.load(tmp_path / "o.npy")
    np.testing.assert_allclose(vectors[15], text_vector(V4, texts[15], dimension=64), atol=1e-6)
