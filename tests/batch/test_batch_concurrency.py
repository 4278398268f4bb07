"""One writer per Batch job (issue 14, point 1): a job's state file is locked while a process
runs it, so two processes resuming the same job never bill a row twice."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from dashscope_embed import DashScopeClient, cli
from dashscope_embed.batch import JobBusyError
from dashscope_embed.batch._job import BatchJob, BatchPartStatus
from dashscope_embed.batch._lock import lock_path
from dashscope_embed.emulator import Emulator, EmulatorConfig, EmulatorServer, serve
from dashscope_embed.emulator._batches import batches_of

from .conftest import BATCHES, FILES, KEY, FakeClock, count, make_client, make_emulator

pytestmark = pytest.mark.integration


class Crash(RuntimeError):
    """Stands in for a process killed at a chosen point."""


def _held(state: Path) -> bool:
    """Whether some process holds the job's lock (probed without taking it for long)."""
    with open(lock_path(state), "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def test_a_second_job_on_the_same_state_is_refused_and_sends_nothing(tmp_path: Path) -> None:
    """While one BatchJob holds a state file, resume() of it raises JobBusyError before any
    request (also with a short lock_timeout); once the first is closed, resume works."""
    emu = make_emulator()
    state = tmp_path / "j.json"
    first = BatchJob.create(make_client(emu), state, tmp_path / "o.npy", dimension=64)
    before = len(emu.requests)
    with pytest.raises(JobBusyError, match="another process is running"):
        BatchJob.resume(make_client(emu), state)
    started = time.monotonic()
    with pytest.raises(JobBusyError):
        BatchJob.resume(make_client(emu), state, lock_timeout=0.3)
    assert time.monotonic() - started >= 0.3
    assert len(emu.requests) == before
    readonly = BatchJob.resume(make_client(emu), state, readonly=True)  # a look is fine
    assert readonly.status(refresh=False).phase == "submitting"
    first.close()
    with BatchJob.resume(make_client(emu), state) as again:
        again.submit(["one", "two"])
        assert again.wait(poll_interval=0).succeeded == 2


def test_two_processes_resuming_one_job_bill_each_part_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14's case: a submit killed after 4 of 20 parts, then `embed … --batch --resume`
    started three times at once. The one that gets the lock finishes the job; one exits 5 at
    once having sent nothing; one waits (--lock-timeout) and then finds the job finished. The
    server saw exactly one batch per part (20), 200 rows billed, no duplicate custom_id."""
    texts = [f"row {i} of the concurrent job" for i in range(200)]
    (tmp_path / "in.txt").write_text("".join(t + "\n" for t in texts))
    state, out = tmp_path / "out.npy.batch.json", tmp_path / "out.npy"
    # batches move only when the test advances the emulator's clock: the first resumer keeps
    # polling (holding the job) until the other two have been started
    clock = FakeClock()
    emulator = Emulator(EmulatorConfig(batch_speed=1.0), clock=clock)
    with serve(emulator) as server:
        client = DashScopeClient(KEY, base_url=server.url)

        def kill(event: str, part: BatchPartStatus) -> None:
            if event == "created" and part.index == 3:
                raise Crash("killed after 4 of 20 parts")

        job = BatchJob.create(client, state, out, max_lines_per_file=1, on_event=kill)
        with pytest.raises(Crash):
            job.submit(texts)
        job.close()  # the killed process's lock goes with it
        assert count(server.emulator, "POST", BATCHES) == 4

        def resume(*extra: str) -> subprocess.Popen[str]:
            argv = ["embed", "in.txt", "-o", "out.npy", "--batch", "--resume", "--no-progress"]
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dashscope_embed.cli",
                    *argv,
                    "--poll-interval",
                    "0.05",
                    "--base-url",
                    server.url,
                    *extra,
                ],
                cwd=tmp_path,
                env={**os.environ, "DASHSCOPE_API_KEY": KEY},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        winner = resume()
        deadline = time.monotonic() + 30
        while not _held(state):
            assert winner.poll() is None, winner.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        refused = resume()
        assert refused.wait(timeout=120) == 5  # at once, while the winner still holds the job
        waiter = resume("--lock-timeout", "60")
        time.sleep(1.0)  # (the waiter is up and waiting for the lock)
        clock.advance(10)  # now every batch can finish
        codes = [p.wait(timeout=120) for p in (winner, refused, waiter)]
        errs = [p.communicate()[1] for p in (winner, refused, waiter)]
        assert codes == [0, 5, 0], errs
        assert "another process is running the batch job" in errs[1]
        emu = server.emulator
        batches = list(batches_of(emu).batches.values())
        assert len(batches) == count(emu, "POST", BATCHES) == 20
        by_file = Counter(b.input_file_id for b in batches)
        assert set(by_file.values()) == {1}
        assert count(emu, "POST", FILES) == 20
        custom_ids = [line["custom_id"] for b in batches for line in b.lines]
        assert len(custom_ids) == len(set(custom_ids)) == 20
        assert emu.stats.rows == 200  # every row billed once
        monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
        capsys.readouterr()
        assert cli.main(["batch", "list", "--limit", "100", "--base-url", server.url]) == 0
        listed = capsys.readouterr().out.splitlines()  # the account's batch list, as users see it
        assert len(listed) == 20
        assert all(" completed " in line for line in listed)
    saved = json.loads(state.read_text())
    assert saved["planned"] is True
    assert all(p["downloaded"] for p in saved["parts"])
    assert not (tmp_path / "out.npy.partial").exists()


def test_cli_on_a_job_another_process_runs(
    env: Path, server: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """While another process holds the job: `batch status` shows it read-only (exit 0, state
    file untouched), `batch download` and `embed --resume` exit 5 having sent nothing."""
    (env / "in.txt").write_text("a\nb\nc\n")
    argv = ["embed", "in.txt", "-o", "o.npy", "--batch", "--no-wait", "--base-url", server.url]
    assert cli.main(argv) == 0
    state = env / "o.npy.batch.json"
    holder = BatchJob.resume(DashScopeClient(KEY, base_url=server.url), state)
    try:
        saved = state.read_bytes()
        requests = len(server.emulator.requests)
        capsys.readouterr()
        assert cli.main(["batch", "status", str(state)]) == 0
        captured = capsys.readouterr()
        assert "showing it read-only" in captured.err
        assert "3 rows" in captured.out
        assert state.read_bytes() == saved
        status_requests = len(server.emulator.requests) - requests
        assert cli.main(["batch", "download", str(state), "--wait"]) == 5
        assert cli.main([*argv[:-3], "--resume", "--base-url", server.url]) == 5
        assert "another process is running" in capsys.readouterr().err
        assert len(server.emulator.requests) == requests + status_requests
    finally:
        holder.close()
    assert cli.main(["batch", "download", str(state), "--wait", "--poll-interval", "0.01"]) == 0
