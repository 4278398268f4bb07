"""Batch jobs never bill twice, never pass off missing rows as vectors, and only accept their own
input: a lost create answer, partial outputs, appended rows, retries with other texts."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from dashscope_embed import DashScopeClient, InvalidInputError
from dashscope_embed.batch._job import BatchJob, BatchPartStatus
from dashscope_embed.batch._state import check_window
from dashscope_embed.emulator import Emulator, text_vector
from dashscope_embed.emulator._batches import batches_of

from .conftest import BATCHES, FILES, KEY, FakeClock, count, make_client, make_emulator

V4 = "text-embedding-v4"
TOO_LONG = "word " * 9000


def corpus(n: int) -> list[str]:
    return [f"passage {i} on subject {i % 31}" for i in range(n)]


class LoseFirstCreateAnswer(httpx.BaseTransport):
    """The server carries out the first ``POST /batches`` but its answer never arrives."""

    def __init__(self, emu: Emulator) -> None:
        self._inner = emu.transport()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if request.method == "POST" and request.url.path == BATCHES and not self.lost:
            self.lost += 1
            response.read()
            raise httpx.ReadTimeout("read timed out", request=request)
        return response


def test_create_whose_answer_timed_out_is_adopted_not_repeated(tmp_path: Path) -> None:
    """A create that timed out after the server made the batch is not sent again: the job looks
    the batch up by its input file id and uses it, so the server holds exactly one batch."""
    emu = make_emulator()
    transport = LoseFirstCreateAnswer(emu)
    client = DashScopeClient(
        KEY, base_url="http://emulator.test", http_client=httpx.Client(transport=transport)
    )
    client._sleep = lambda _s: None
    job = BatchJob.create(client, tmp_path / "j.json", tmp_path / "o.npy", dimension=64)
    report = job.run(corpus(20), poll_interval=0)
    assert transport.lost == 1
    assert count(emu, "POST", BATCHES) == 1
    (only,) = batches_of(emu).batches
    assert [p.batch_id for p in job.state.parts] == [only]
    assert report.succeeded == 20
    lookups = [r for r in emu.requests if r.method == "GET" and r.path == BATCHES]
    assert len(lookups) == 1  # one look-up, before the one retry


def test_unfinished_job_keeps_its_rows_in_a_nan_filled_partial(
    tmp_path: Path, clock: FakeClock
) -> None:
    """While batches are still running the rows go to OUTPUT.partial, where rows not yet
    downloaded are NaN (never 0.0); OUTPUT itself appears only once the job is complete."""
    emu = make_emulator(clock, batch_speed=10.0)
    texts = corpus(40)
    out = tmp_path / "o.npy"
    job = BatchJob.create(make_client(emu), tmp_path / "j.json", out, max_lines_per_file=3)
    job.submit(texts)  # rows 0-29 in a three-line file, rows 30-39 in a one-line file
    clock.advance(0.15)  # the one-line batch is done; the other has done one line of three
    job.poll()
    status = job.poll()
    assert not status.finished
    assert [p.downloaded for p in status.parts] == [False, True]
    assert not out.exists()
    partial = np.load(tmp_path / "o.npy.partial")
    assert partial.shape == (40, 1024)
    np.testing.assert_allclose(partial[30], text_vector(V4, texts[30]), atol=1e-6)
    assert not np.isnan(partial[30:]).any()
    assert np.isnan(partial[:30]).all()
    clock.advance(10)
    report = job.wait(poll_interval=0)
    assert report.finished
    assert not (tmp_path / "o.npy.partial").exists()
    final = np.load(out)
    assert not np.isnan(final).any()
    np.testing.assert_allclose(final[39], text_vector(V4, texts[39]), atol=1e-6)


def test_job_killed_mid_download_resumes_into_the_same_partial(tmp_path: Path) -> None:
    """A process killed after writing part 0 leaves only o.npy.partial (part 0's rows, NaN
    elsewhere); the resumed job reopens it, fetches only the other parts, then moves it onto
    o.npy."""
    emu = make_emulator()
    texts = corpus(40)

    def kill(event: str, part: BatchPartStatus) -> None:
        if event == "downloaded" and part.index == 0:
            raise RuntimeError("killed")

    state, out = tmp_path / "j.json", tmp_path / "o.npy"
    job = BatchJob.create(
        make_client(emu), state, out, dimension=64, max_lines_per_file=2, on_event=kill
    )
    with pytest.raises(RuntimeError, match="killed"):
        job.run(texts, poll_interval=0)
    job.close()  # the killed process's lock goes with it
    assert not out.exists()
    partial = np.load(tmp_path / "o.npy.partial")
    assert not np.isnan(partial[:20]).any()
    assert np.isnan(partial[20:]).all()
    report = BatchJob.resume(make_client(emu), state).wait(poll_interval=0)
    assert report.succeeded == 40
    assert not (tmp_path / "o.npy.partial").exists()
    final = np.load(out)
    np.testing.assert_allclose(final[5], text_vector(V4, texts[5], dimension=64), atol=1e-6)
    np.testing.assert_allclose(final[39], text_vector(V4, texts[39], dimension=64), atol=1e-6)
    contents = [r.path for r in emu.requests if r.path.endswith("/content")]
    assert len(contents) == len(set(contents)) == 2  # part 0 was not fetched again


def test_rows_appended_after_full_submission_are_a_mismatch(tmp_path: Path) -> None:
    """Resuming a fully submitted job with extra rows at the end raises the resume-mismatch error
    instead of silently dropping them, and sends nothing."""
    emu = make_emulator()
    state = tmp_path / "j.json"
    texts = corpus(25)
    BatchJob.create(make_client(emu), state, tmp_path / "o.npy").run(texts, poll_interval=0)
    before = len(emu.requests)
    job = BatchJob.resume(make_client(emu), state)
    with pytest.raises(InvalidInputError, match="more rows than the 25") as info:
        job.submit([*texts, "an appended row", "another"])
    assert info.value.rule == "resume_mismatch"
    assert len(emu.requests) == before
    job.submit(texts)  # the same input is still fine
    assert count(emu, "POST", FILES) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: ["SHIFTED " + x for x in t], "rows 0..29 differ"),
        (lambda t: t[:-1], "the input ends at row 29"),
        (lambda t: [*t, "one more"], "more than the job's 30 rows"),
    ],
)
def test_retry_failed_checks_the_texts_are_the_jobs_input(
    tmp_path: Path, change: object, message: str
) -> None:
    """retry_failed() proves the texts given are the job's input (digests of the files sent)
    before uploading anything: other, fewer or more texts raise the resume-mismatch error."""
    emu = make_emulator()
    texts = corpus(30)
    texts[13] = TOO_LONG
    job = BatchJob.create(make_client(emu), tmp_path / "j.json", tmp_path / "o.npy", dimension=64)
    job.submit(texts)  # (run() would also narrow the failure down to row 13: not wanted here)
    assert job.wait(poll_interval=0).failed_rows == list(range(10, 20))
    uploads = count(emu, "POST", FILES)
    with pytest.raises(InvalidInputError, match=message) as info:
        job.retry_failed(change(texts))  # type: ignore[operator]
    assert info.value.rule == "resume_mismatch"
    assert count(emu, "POST", FILES) == uploads
    assert len(job.state.parts) == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".jsonl"] == []  # nothing left over
    assert job.retry_failed(texts) == 10  # the job's own input still retries


@pytest.mark.parametrize("window", ["2h", "23h", "337h", "15d", "24", "1w", ""])
def test_bad_completion_window_is_refused_before_the_state_file(
    tmp_path: Path, emu: Emulator, window: str
) -> None:
    """A completion window outside 24h … 336h is refused by create(): no state file is written
    and nothing is sent."""
    with pytest.raises(InvalidInputError, match="24h to 336h") as info:
        BatchJob.create(
            make_client(emu), tmp_path / "j.json", tmp_path / "o.npy", completion_window=window
        )
    assert info.value.rule == "completion_window"
    assert not (tmp_path / "j.json").exists()
    assert emu.requests == []


def test_whole_days_and_hours_in_range_are_sent_as_given(tmp_path: Path, emu: Emulator) -> None:
    """24h, 336h and 14d are valid windows and reach the create call unchanged."""
    assert [check_window(w) for w in ("24h", "336h", "1d", "14d")] == ["24h", "336h", "1d", "14d"]
    job = BatchJob.create(
        make_client(emu), tmp_path / "j.json", tmp_path / "o.npy", completion_window="14d"
    )
    job.run(corpus(3), poll_interval=0)
    (create,) = [r.json for r in emu.requests if r.method == "POST" and r.path == BATCHES]
    assert create["completion_window"] == "14d"
