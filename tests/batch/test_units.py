"""Pure pieces: JSONL lines, custom ids, result lines, failure ranges, the state file, writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dashscope_embed.batch._files import (
    BatchFailure,
    add_failures,
    build_line,
    parse_custom_id,
    parse_result_line,
    subtract_rows,
)
from dashscope_embed.batch._state import JobState, Part, load_state, save_state
from dashscope_embed.io._sinks import NpyWriter, open_sink, read_npy_rows


def test_input_line_is_the_compatible_embeddings_body() -> None:
    """A line carries custom_id "start+count", POST, /v1/embeddings and the §4 body."""
    raw = build_line(40, ["a", "é"], model="text-embedding-v4", dimension=512)
    assert raw.endswith(b"\n")
    assert raw.count(b"\n") == 1
    assert "é".encode() in raw  # UTF-8, not \\u escapes
    assert json.loads(raw) == {
        "custom_id": "40+2",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {
            "model": "text-embedding-v4",
            "input": ["a", "é"],
            "encoding_format": "float",
            "dimensions": 512,
        },
    }
    no_dim = json.loads(build_line(0, ["a"], model="m", dimension=None))
    assert "dimensions" not in no_dim["body"]


def test_custom_ids_round_trip() -> None:
    """Only ids of the form start+count (count >= 1) map back to rows."""
    assert parse_custom_id("40+2") == (40, 2)
    for bad in ("40", "a+1", "3+0", 7, None, "1+2+3"):
        assert parse_custom_id(bad) is None


def test_result_line_places_vectors_by_index() -> None:
    """A success line's vectors are ordered by their index, with its tokens and request id."""
    body = {
        "data": [
            {"embedding": [0.0, 1.0], "index": 1, "object": "embedding"},
            {"embedding": [1.0, 0.0], "index": 0, "object": "embedding"},
        ],
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    raw = json.dumps(
        {
            "id": "r",
            "custom_id": "8+2",
            "response": {"status_code": 200, "request_id": "r", "body": body},
            "error": None,
        }
    ).encode()
    res = parse_result_line(raw)
    assert (res.start, res.count, res.tokens, res.request_id, res.ok) == (8, 2, 5, "r", True)
    assert res.vectors is not None
    np.testing.assert_array_equal(res.vectors, [[1.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        (
            {
                "custom_id": "0+1",
                "response": None,
                "error": {"code": "batch_cancelled", "message": "gone"},
            },
            "batch_cancelled",
            "gone",
        ),
        (
            {
                "custom_id": "0+1",
                "response": {
                    "status_code": 400,
                    "body": {"error": {"code": "InvalidParameter", "message": "too long"}},
                },
                "error": None,
            },
            "InvalidParameter",
            "too long",
        ),
        (
            {
                "custom_id": "0+1",
                "response": {"status_code": 200, "body": {"data": []}},
                "error": None,
            },
            "protocol_error",
            "expected 1 vectors, got 0",
        ),
        (
            {
                "custom_id": "0+2",
                "response": {
                    "status_code": 200,
                    "body": {
                        "data": [
                            {"index": 0, "embedding": [0.5, None]},
                            {"index": 1, "embedding": [0.5, 0.5]},
                        ]
                    },
                },
                "error": None,
            },
            "protocol_error",
            "null in embeddings",
        ),
        (
            {
                "custom_id": "0+2",
                "response": {
                    "status_code": 200,
                    "body": {
                        "data": [
                            {"index": 0, "embedding": [0.5]},
                            {"index": 1, "embedding": [0.5, 0.5]},
                        ]
                    },
                },
                "error": None,
            },
            "protocol_error",
            "ragged embeddings",
        ),
    ],
)
def test_failed_result_lines(line: dict[str, object], code: str, message: str) -> None:
    """error{code,message}, a non-200 response body, or a short answer all become failures."""
    res = parse_result_line(json.dumps(line).encode())
    assert (res.ok, res.code, res.message) == (False, code, message)


def test_failure_ranges_merge_and_split() -> None:
    """Adjacent failures with one reason merge; rows retried successfully are cut out."""
    merged = add_failures(
        [BatchFailure(0, 10, "c", "m")],
        [BatchFailure(10, 20, "c", "m"), BatchFailure(30, 40, "d", "n")],
    )
    assert merged == [BatchFailure(0, 20, "c", "m"), BatchFailure(30, 40, "d", "n")]
    left = subtract_rows(merged, [0, 5, 6, 19, 35])
    assert left == [
        BatchFailure(1, 5, "c", "m"),
        BatchFailure(7, 19, "c", "m"),
        BatchFailure(30, 35, "d", "n"),
        BatchFailure(36, 40, "d", "n"),
    ]


def test_state_round_trips_atomically(tmp_path: Path) -> None:
    """The state file reloads equal, and no temporary file is left behind."""
    state = JobState("dse-1", "text-embedding-v4", 64, 10, 500, 10**8, "24h", "/x.npy", "http://h")
    state.parts.append(Part(0, 0, 100, lines=10, sha256="ab", file_id="f", batch_id="b"))
    state.parts.append(Part(1, 3, 8, rows=[3, 7], lines=2))
    state.failures = [BatchFailure(3, 4, "c", "m")]
    path = tmp_path / "job.json"
    save_state(path, state)
    save_state(path, state)
    assert load_state(path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a dashscope-embed batch state"):
        load_state(tmp_path / "bad.json")


def test_npy_writer_random_and_append(tmp_path: Path) -> None:
    """Rows written in any order, or appended with the count fixed on close, load with numpy; a
    row never written reads NaN, not 0.0."""
    with NpyWriter(tmp_path / "r.npy", 3, rows=4) as w:
        w.write(2, np.ones((2, 3)))
        w.write(0, np.full((1, 3), 2.0))
    arr = np.load(tmp_path / "r.npy")
    assert arr.dtype == np.float32
    assert arr.shape == (4, 3)
    np.testing.assert_array_equal(arr[:, 0], [2, np.nan, 1, 1])
    assert np.isnan(arr[1]).all()
    with NpyWriter(tmp_path / "a.npy", 2) as w:
        for i in range(3):
            w.append(np.full((i + 1, 2), i, dtype=np.float32))
    appended = np.load(tmp_path / "a.npy")
    assert appended.shape == (6, 2)
    np.testing.assert_array_equal(read_npy_rows(tmp_path / "a.npy", 3, 10)[:, 0], [2, 2, 2])
    again = NpyWriter.reopen(tmp_path / "r.npy")
    again.write(1, np.full((1, 3), 5.0))
    again.close()
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy")[:, 0], [2, 5, 1, 1])


def test_unsupported_outputs_are_refused(tmp_path: Path) -> None:
    """An unknown suffix, or sparse vectors into .npy, is a ValueError naming the fix."""
    with pytest.raises(ValueError, match=r"\.npy, \.jsonl, \.parquet"):
        open_sink(tmp_path / "x.csv", dim=4)
    with pytest.raises(ValueError, match="dense vectors only"):
        open_sink(tmp_path / "x.npy", dim=4, sparse=True)
