"""A call that fails part-way hands back what it already embedded (``exc.partial``).

Those requests were billed; a caller (the Ray embedder, or a user's own loop) keeps their rows
and re-sends only the rest.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from dashscope_embed import (
    BadRequestError,
    InputTooLongError,
    InvalidInputError,
    PartialResult,
    ServerError,
)

from .conftest import Harness, error, ok_body


def test_rows_finished_before_a_failure_come_with_the_error(harness: Harness) -> None:
    """Batches 0 and 1 succeed, batch 2 is rejected: the error carries rows 0-19, in order."""
    harness.server.order = "forward"
    harness.server.script = [
        lambda body: httpx.Response(200, json=ok_body(body["input"]["texts"], rid="r0")),
        lambda body: httpx.Response(200, json=ok_body(body["input"]["texts"], rid="r1")),
        error(400, "InvalidParameter", "Required parameter(s) missing or invalid"),
    ]
    texts = [f"text number {i:02d}" + "x" * i for i in range(35)]
    with pytest.raises(BadRequestError) as info:
        harness.embed(texts, harness.make(max_concurrency=1))
    partial = info.value.partial
    assert isinstance(partial, PartialResult)
    assert partial.rows == tuple(range(20))
    got = partial.result.embeddings
    assert got.shape == (20, 4)
    # ok_body encodes len(text) in column 0 and the position in its batch in column 1
    assert got[:, 0].tolist() == [float(len(texts[i])) for i in range(20)]
    assert got[:, 1].tolist() == [float(i % 10) for i in range(20)]
    assert partial.result.usage.requests == 2
    assert partial.result.usage.total_tokens == 40
    assert partial.result.request_ids == ("r0", "r1")
    assert info.value.input_indices == tuple(range(20, 30))
    assert len(harness.server.requests) == 3  # the call stopped: batch 3 was never sent


def test_bisected_rows_that_succeeded_are_kept(harness: Harness) -> None:
    """Locating an over-long text embeds its neighbours; they are in the partial result."""
    limit = "Range of input length should be [1, 8192]"

    def answer(body: dict) -> httpx.Response:
        texts = body["input"]["texts"]
        if "LONG" in texts:
            return error(400, "InvalidParameter", limit)
        return httpx.Response(200, json=ok_body(texts))

    harness.server.script = [answer] * 20
    texts = ["a", "bb", "ccc", "LONG", "eeeee", "ffffff"]
    with pytest.raises(InputTooLongError) as info:
        harness.embed(texts, harness.make(max_concurrency=1))
    partial = info.value.partial
    assert partial is not None
    assert 3 not in partial.rows
    assert set(partial.rows) <= {0, 1, 2, 4, 5}
    assert partial.rows == tuple(sorted(partial.rows))
    assert partial.result.embeddings[:, 0].tolist() == [float(len(texts[i])) for i in partial.rows]
    # every row in the partial result was answered by a 200 that carried it
    answered = {t for batch in harness.server.sent_texts if "LONG" not in batch for t in batch}
    assert {texts[i] for i in partial.rows} == answered


def test_nothing_finished_gives_an_empty_partial(harness: Harness) -> None:
    """A failure on the first and only batch: partial has no rows (and no vectors)."""
    harness.server.script = [error(500, "InternalError", "boom")] * 2
    with pytest.raises(ServerError) as info:
        harness.embed(["a", "b"], harness.make(max_retries=1))
    partial = info.value.partial
    assert partial is not None
    assert partial.rows == ()
    assert len(partial.result) == 0
    assert partial.result.usage.requests == 0


def test_sparse_rows_come_with_the_partial(harness: Harness) -> None:
    """dense&sparse: the partial result holds both for its rows."""

    def sparse_answer(body: dict) -> httpx.Response:
        texts = body["input"]["texts"]
        doc = ok_body(texts)
        for i, item in enumerate(doc["output"]["embeddings"]):
            item["sparse_embedding"] = [{"index": 100 + i, "value": 0.5, "token": texts[i]}]
        return httpx.Response(200, json=doc)

    harness.server.script = [sparse_answer, error(400, "InvalidParameter", "bad")]
    texts = [f"t{i}" for i in range(15)]
    with pytest.raises(BadRequestError) as info:
        harness.embed(texts, harness.make(max_concurrency=1), output_type="dense&sparse")
    partial = info.value.partial
    assert partial is not None
    assert partial.rows == tuple(range(10))
    assert partial.result.sparse is not None
    assert [s.tokens for s in partial.result.sparse] == [(f"t{i}",) for i in range(10)]
    assert np.array_equal(partial.result.embeddings[:, 1], np.arange(10, dtype=np.float32))


def test_errors_before_any_request_have_no_partial(harness: Harness) -> None:
    """Bad input is rejected before sending: there is nothing partial to report."""
    with pytest.raises(InvalidInputError) as info:
        harness.embed(["ok", ""])
    assert info.value.partial is None
    assert harness.server.requests == []
