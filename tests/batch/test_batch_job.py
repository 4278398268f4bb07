"""Batch jobs end to end against the in-process emulator: splitting, resume, failures, cancel."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dashscope_embed import AuthenticationError, ConfigurationError, InvalidInputError
from dashscope_embed.batch._job import BatchJob, BatchPartStatus, embed_batch
from dashscope_embed.batch._state import load_state
from dashscope_embed.emulator import Emulator, text_vector

from .conftest import BATCHES, FILES, FakeClock, count, make_client, make_emulator

V4 = "text-embedding-v4"
TOO_LONG = "word " * 9000  # over text-embedding-v4's 8192 tokens: the server rejects its line


def corpus(n: int) -> list[str]:
    return [f"document {i} about topic {i % 97} and item {i * 7919 % 1000}" for i in range(n)]


def uploaded_lines(emu: Emulator) -> list[dict[str, object]]:
    """Every input line of every uploaded batch file, from the emulator's store."""
    from dashscope_embed.emulator._files import files_of

    out = []
    for f in reversed(files_of(emu).all()):  # oldest first
        if f.purpose == "batch":
            out.extend(json.loads(x) for x in f.data.splitlines())
    return out


class Crash(RuntimeError):
    """Stands in for a process killed at a chosen point."""


def test_twenty_thousand_texts_over_several_files(tmp_path: Path) -> None:
    """20,000 texts become 2,000 ten-row lines in four files of 500 lines, each uploaded and
    batched once, and every row gets the emulator's vector for its text."""
    emu = make_emulator()
    client = make_client(emu)
    texts = corpus(20_000)
    job = BatchJob.create(
        client,
        tmp_path / "job.json",
        tmp_path / "out.npy",
        dimension=64,
        max_lines_per_file=500,
        keep_remote_files=True,  # the test reads the uploaded files back
    )
    report = job.run(texts, poll_interval=0)
    assert report.finished
    assert report.failures == ()
    assert report.succeeded == 20_000
    assert count(emu, "POST", FILES) == 4
    assert count(emu, "POST", BATCHES) == 4
    creates = [r.json for r in emu.requests if r.method == "POST" and r.path == BATCHES]
    assert {c["endpoint"] for c in creates} == {"/v1/embeddings"}
    assert {c["completion_window"] for c in creates} == {"24h"}
    lines = uploaded_lines(emu)
    assert len(lines) == 2000
    assert sorted(int(str(x["custom_id"]).split("+")[0]) for x in lines) == list(
        range(0, 20_000, 10)
    )
    assert all(
        x["body"]
        == {
            "model": V4,
            "input": texts[int(str(x["custom_id"]).split("+")[0]) :][:10],
            "encoding_format": "float",
            "dimensions": 64,
        }
        for x in lines[:50]
    )  # type: ignore[index]
    vectors = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert vectors.shape == (20_000, 64)
    assert not np.isnan(vectors).any()
    for row in (0, 9, 10, 4999, 5000, 19_999):
        np.testing.assert_allclose(
            vectors[row], text_vector(V4, texts[row], dimension=64), atol=1e-6
        )
    assert report.total_tokens == emu.stats.tokens


@pytest.mark.parametrize("crash_at", ["uploaded", "created", "downloaded"])
def test_killed_and_resumed_job_submits_nothing_twice(tmp_path: Path, crash_at: str) -> None:
    """A run killed after part 1 is uploaded / created / written resumes from the state file:
    the log shows each file uploaded once and each batch created once, and all rows arrive."""
    emu = make_emulator()
    texts = corpus(95)  # 10 lines, 3 per file: 4 parts

    def kill(event: str, part: BatchPartStatus) -> None:
        if event == crash_at and part.index == 1:
            raise Crash(f"killed after {event} of part 1")

    state, out = tmp_path / "job.json", tmp_path / "out.npy"
    first = BatchJob.create(
        make_client(emu), state, out, dimension=64, max_lines_per_file=3, on_event=kill
    )
    with pytest.raises(Crash):
        first.run(texts, poll_interval=0)
    first.close()  # the killed process's lock goes with it
    saved = load_state(state)
    assert saved.parts[1].file_id is not None
    second = BatchJob.resume(make_client(emu), state)
    report = second.run(texts, poll_interval=0)
    assert report.finished
    assert report.succeeded == 95
    uploads = count(emu, "POST", FILES)
    creates = count(emu, "POST", BATCHES)
    assert uploads == creates == 4
    file_ids = [p.file_id for p in second.state.parts]
    assert len(set(file_ids)) == 4
    creates_by_file = Counter(
        r.json["input_file_id"] for r in emu.requests if r.method == "POST" and r.path == BATCHES
    )
    assert set(creates_by_file.values()) == {1}
    vectors = np.load(out)
    for row in (0, 29, 30, 94):
        np.testing.assert_allclose(
            vectors[row], text_vector(V4, texts[row], dimension=64), atol=1e-6
        )
    if crash_at == "downloaded":  # parts 0 and 1 were written before the kill: not fetched again
        contents = Counter(r.path for r in emu.requests if r.path.endswith("/content"))
        assert set(contents.values()) == {1}


def test_resume_adopts_a_batch_whose_create_answer_was_lost(tmp_path: Path) -> None:
    """If the process died after the server created a batch but before the state said so, the
    resumed job finds that batch by its input file id instead of creating a second one."""
    emu = make_emulator()
    texts = corpus(20)

    def kill(event: str, part: BatchPartStatus) -> None:
        if event == "uploaded":
            raise Crash("killed before the state recorded the batch")

    state = tmp_path / "job.json"
    job = BatchJob.create(make_client(emu), state, tmp_path / "o.npy", dimension=64, on_event=kill)
    with pytest.raises(Crash):
        job.submit(texts)
    job.close()  # the killed process's lock goes with it
    file_id = load_state(state).parts[0].file_id
    client = make_client(emu)
    client._http.post(  # the create whose answer never reached the state file
        f"{client.config.compatible_url}/batches",
        headers=client.config.headers(),
        json={"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"},
    )
    report = BatchJob.resume(client, state).run(texts, poll_interval=0)
    assert report.succeeded == 20
    assert count(emu, "POST", BATCHES) == 1
    lookups = [r for r in emu.requests if r.method == "GET" and r.path == BATCHES]
    assert lookups  # the resumed job asked before creating


def test_failed_lines_are_reported_by_row_and_retried(tmp_path: Path) -> None:
    """An over-long text fails its whole ten-row line: those rows are NaN and listed with the
    server's code; a retry sends them one per line, so only the bad row stays failed."""
    emu = make_emulator()
    texts = corpus(50)
    texts[23] = TOO_LONG
    job = BatchJob.create(
        make_client(emu),
        tmp_path / "job.json",
        tmp_path / "o.npy",
        dimension=64,
        keep_remote_files=True,  # the test reads the uploaded files back
    )
    job.submit(texts)  # (run() would narrow the failure down by itself: see test_batch_cleanup)
    report = job.wait(poll_interval=0)
    assert report.finished
    assert report.failed_rows == list(range(20, 30))
    (failure,) = report.failures
    assert failure.code == "InvalidParameter"
    assert "Range of input length should be [1, 8192]" in failure.message
    vectors = np.load(tmp_path / "o.npy")
    assert np.isnan(vectors[20:30]).all()
    assert not np.isnan(vectors[:20]).any()
    assert job.retry_failed(texts) == 10
    retry_lines = uploaded_lines(emu)[-10:]
    assert sorted(str(x["custom_id"]) for x in retry_lines) == sorted(
        f"{r}+1" for r in range(20, 30)
    )
    after = job.wait(poll_interval=0)
    assert after.failed_rows == [23]
    vectors = np.load(tmp_path / "o.npy")
    np.testing.assert_allclose(vectors[24], text_vector(V4, texts[24], dimension=64), atol=1e-6)
    assert job.retry_failed(texts) == 1  # still too long: fails again, still reported
    assert job.wait(poll_interval=0).failed_rows == [23]


def test_a_batch_that_fails_validation_fails_every_row(tmp_path: Path) -> None:
    """A model the server does not know fails the batch at validation; every row is reported with
    the server's code and line."""
    emu = make_emulator()
    job = BatchJob.create(
        make_client(emu), tmp_path / "j.json", tmp_path / "o.npy", model="text-embedding-v9"
    )
    report = job.run(corpus(12), poll_interval=0)
    assert report.failed_rows == list(range(12))
    assert {f.code for f in report.failures} == {"model_not_found"}
    assert "(line 1)" in report.failures[0].message


def test_cancel_keeps_finished_rows(tmp_path: Path, clock: FakeClock) -> None:
    """Cancelling mid-way keeps the vectors of lines already processed and reports the rest."""
    emu = make_emulator(clock, batch_speed=10.0)
    job = BatchJob.create(make_client(emu), tmp_path / "j.json", tmp_path / "o.npy", dimension=64)
    job.submit(corpus(100))
    clock.advance(0.35)  # three ten-row lines
    status = job.cancel()
    assert {p.status for p in status.parts} == {"cancelling"}
    report = job.wait(poll_interval=0)
    assert report.finished
    assert report.failed_rows == list(range(30, 100))
    assert {f.code for f in report.failures} == {"batch_cancelled"}
    assert count(emu, "POST", f"{BATCHES}/{status.parts[0].batch_id}/cancel") == 1


def test_progress_and_polling_backoff(tmp_path: Path, clock: FakeClock) -> None:
    """wait() polls with growing sleeps while nothing moves and reports rows as lines finish."""
    emu = make_emulator(clock, batch_speed=1.0)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    job = BatchJob.create(
        make_client(emu), tmp_path / "j.json", tmp_path / "o.npy", dimension=64, sleep=sleep
    )
    job.submit(corpus(30))
    seen: list[int] = []
    report = job.wait(
        poll_interval=0.5,
        max_poll_interval=2.0,
        on_progress=lambda s: seen.append(s.processed_rows),
    )
    assert report.succeeded == 30
    assert sleeps[:2] == [0.75, 1.125]  # quiet rounds back off (× 1.5)
    assert max(sleeps) <= 2.0
    assert seen == sorted(seen)
    assert seen[-1] == 30


def test_resume_checks_input_and_host(tmp_path: Path) -> None:
    """Resuming with other texts or against another host fails before anything is sent."""
    emu = make_emulator()
    texts = corpus(40)
    state = tmp_path / "j.json"
    BatchJob.create(make_client(emu), state, tmp_path / "o.npy", max_lines_per_file=2).submit(texts)
    before = len(emu.requests)
    changed = [*texts[:5], "something else", *texts[6:]]
    with pytest.raises(InvalidInputError, match="differ") as info:
        BatchJob.resume(make_client(emu), state).submit(changed)
    assert info.value.rule == "resume_mismatch"
    assert len(emu.requests) == before
    other = make_client(emu)
    other._config = type(other.config)(
        **{**other.config.__dict__, "base_url": "http://elsewhere.test"}
    )
    with pytest.raises(ConfigurationError, match=r"created on http://emulator\.test"):
        BatchJob.resume(other, state)


def test_options_and_texts_are_checked_before_any_request(tmp_path: Path, emu: Emulator) -> None:
    """Empty texts, bad dimensions and an existing state file are refused with nothing sent."""
    client = make_client(emu)
    with pytest.raises(InvalidInputError) as info:
        BatchJob.create(client, tmp_path / "a.json", tmp_path / "a.npy").submit(["ok", "  ", "x"])
    assert (info.value.index, info.value.rule) == (1, "empty_text")
    with pytest.raises(InvalidInputError, match="dimension=100"):
        BatchJob.create(client, tmp_path / "b.json", tmp_path / "b.npy", dimension=100)
    with pytest.raises(FileExistsError):
        BatchJob.create(client, tmp_path / "a.json", tmp_path / "a.npy")
    assert emu.requests == []


def test_management_calls_use_the_core_retry_policy(tmp_path: Path, emu: Emulator) -> None:
    """A 500 on upload is retried (one retry layer: the client's policy); a 401 is not."""
    emu.enqueue_fault(500, "InternalError", "An internal error has occured.", count=1)
    report = embed_batch(
        make_client(emu), corpus(5), tmp_path / "o.npy", state_path=tmp_path / "j.json"
    )
    assert report.succeeded == 5
    assert count(emu, "POST", FILES) == 2
    emu.enqueue_fault(401, "InvalidApiKey", "Invalid API-key provided.", count=1)
    with pytest.raises(AuthenticationError):
        embed_batch(
            make_client(emu), corpus(5), tmp_path / "o2.npy", state_path=tmp_path / "j2.json"
        )
    assert count(emu, "POST", FILES) == 3


def test_embed_batch_resumes_an_existing_state(tmp_path: Path, emu: Emulator) -> None:
    """embed_batch() on an existing state file continues that job; other options are refused."""
    texts = corpus(15)
    embed_batch(
        make_client(emu), texts, tmp_path / "o.npy", state_path=tmp_path / "j.json", dimension=64
    )
    again = embed_batch(
        make_client(emu), texts, tmp_path / "o.npy", state_path=tmp_path / "j.json", dimension=64
    )
    assert again.succeeded == 15
    assert count(emu, "POST", FILES) == 1
    with pytest.raises(InvalidInputError, match="another job"):
        embed_batch(make_client(emu), texts, tmp_path / "o.npy", state_path=tmp_path / "j.json")


def test_empty_job_writes_an_empty_array(tmp_path: Path, emu: Emulator) -> None:
    """No texts: no upload, a finished report and a (0, dim) array."""
    report = embed_batch(
        make_client(emu), [], tmp_path / "o.npy", state_path=tmp_path / "j.json", dimension=64
    )
    assert report.finished
    assert report.total_rows == 0
    assert np.load(tmp_path / "o.npy").shape == (0, 64)
    assert emu.requests == []


def test_deleted_output_is_downloaded_again(tmp_path: Path, emu: Emulator) -> None:
    """A finished job whose .npy was deleted fetches its results again on resume (downloads are
    free), without uploading or creating anything."""
    texts = corpus(25)
    out, state = tmp_path / "o.npy", tmp_path / "j.json"
    embed_batch(
        make_client(emu), texts, out, state_path=state, dimension=64, keep_remote_files=True
    )
    out.unlink()
    report = embed_batch(make_client(emu), texts, out, state_path=state, dimension=64)
    assert report.finished
    assert report.succeeded == 25
    np.testing.assert_allclose(
        np.load(out)[24], text_vector(V4, texts[24], dimension=64), atol=1e-6
    )
    assert count(emu, "POST", FILES) == 1
    assert count(emu, "POST", BATCHES) == 1
    assert sum(r.path.endswith("/content") for r in emu.requests) == 2


def test_cancel_after_the_batch_ended_is_harmless(tmp_path: Path, emu: Emulator) -> None:
    """Cancelling a batch that ended since the last poll (the server answers 400) just records
    its final status, and its results are still collected."""
    job = BatchJob.create(make_client(emu), tmp_path / "j.json", tmp_path / "o.npy", dimension=64)
    job.submit(corpus(10))
    batch_id = job.state.parts[0].batch_id
    client = make_client(emu)
    for _ in range(2):  # the server finishes it behind the job's back
        client._http.get(
            f"{client.config.compatible_url}/batches/{batch_id}", headers=client.config.headers()
        )
    status = job.cancel()
    assert [p.status for p in status.parts] == ["completed"]
    assert job.wait(poll_interval=0).succeeded == 10
