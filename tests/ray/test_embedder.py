"""DashScopeEmbedder called directly on Ray Data batches (no cluster), against the emulator.

Ray Data calls the same ``__call__`` on its workers; ``test_cluster.py`` runs it in a real pool.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dashscope_embed import AuthenticationError, InputTooLongError, InvalidInputError, get_model
from dashscope_embed.emulator import (
    EmulatorConfig,
    EmulatorServer,
    serve,
    sparse_vector,
    text_vector,
)
from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._text import NATIVE_PATH, handle_native
from dashscope_embed.ray import DashScopeEmbedder

KEY = "sk-test"
MODEL = "text-embedding-v4"
FORMATS = ["pyarrow", "pandas", "numpy"]
WORDS = ["cats", "dogs", "tea", "rain", "maps", "jazz", "salt", "moss"]


def _texts(n: int) -> list[str]:
    return [f"row {i} is about {WORDS[i % len(WORDS)]} and {WORDS[(3 * i) % 8]}" for i in range(n)]


def _batch(kind: str, columns: dict[str, list[Any]]) -> Any:
    if kind == "pyarrow":
        return pa.table(columns)
    if kind == "pandas":
        return pd.DataFrame(columns)
    return {name: np.array(values) for name, values in columns.items()}


def _column(kind: str, out: Any, name: str) -> list[Any]:
    """A column as Python values; pandas' missing-value NaN (string columns) read as None."""
    if kind == "pyarrow":
        return list(out.column(name).to_pylist())
    return [None if isinstance(v, float) and np.isnan(v) else v for v in out[name]]


def _vectors(kind: str, out: Any, name: str = "embedding") -> list[np.ndarray | None]:
    """Vectors as arrays; a failed row as None (pyarrow null, or an all-NaN row)."""
    rows: list[np.ndarray | None] = []
    for value in _column(kind, out, name):
        if value is None or np.isnan(np.asarray(value, dtype=np.float32)).all():
            rows.append(None)
        else:
            rows.append(np.asarray(value, dtype=np.float32))
    return rows


def _embedder(server: EmulatorServer, **kwargs: Any) -> DashScopeEmbedder:
    return DashScopeEmbedder(base_url=server.url, api_key=KEY, **kwargs)


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    """The emulator on loopback with its default limits."""
    with serve(config=EmulatorConfig()) as s:
        yield s


@pytest.fixture
def small_limit_server() -> Iterator[EmulatorServer]:
    """An emulator whose text-embedding-v4 takes 40 tokens a text (the client thinks 8192)."""
    spec = replace(get_model(MODEL), max_tokens=40)
    with serve(config=EmulatorConfig(extra_models={MODEL: spec})) as s:
        yield s


@pytest.mark.parametrize("kind", FORMATS)
def test_every_row_gets_its_vector_in_order(kind: str, server: EmulatorServer) -> None:
    """Each row gets the vector of its own text, in order, and the other columns are kept."""
    texts = _texts(23)
    ids = list(range(100, 123))
    embedder = _embedder(server, dimension=128)
    out = embedder(_batch(kind, {"id": ids, "text": texts}))
    expected = [text_vector(MODEL, t, dimension=128) for t in texts]
    got = _vectors(kind, out)
    for vec, want in zip(got, expected, strict=True):
        assert vec is not None
        assert vec.dtype == np.float32
        np.testing.assert_allclose(vec, want, atol=1e-6)
    assert [int(i) for i in _column(kind, out, "id")] == ids
    assert _column(kind, out, "embedding_error") == [None] * 23
    sent = server.emulator.requests
    assert sorted(len(r.json["input"]["texts"]) for r in sent) == [3, 10, 10]
    assert sorted(t for r in sent for t in r.json["input"]["texts"]) == sorted(texts)
    assert {(r.json["model"], r.json["parameters"]["dimension"]) for r in sent} == {(MODEL, 128)}
    assert {r.json["parameters"]["text_type"] for r in sent} == {"document"}


def test_arrow_vector_column_type(server: EmulatorServer) -> None:
    """The pyarrow vector column is fixed_size_list<float32>[dim] and the error column a string."""
    out = _embedder(server, dimension=64)(pa.table({"text": _texts(3)}))
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 64)
    assert out.schema.field("embedding_error").type == pa.string()


def test_query_options_reach_the_wire(server: EmulatorServer) -> None:
    """text_type, instruct, dimension and max_batch_size are sent and shape the vectors."""
    texts = _texts(5)
    instruct = "Given a question, retrieve passages that answer it"
    embedder = _embedder(
        server,
        text_column="question",
        vector_column="qvec",
        dimension=256,
        text_type="query",
        instruct=instruct,
        max_batch_size=2,
    )
    out = embedder(pa.table({"question": texts}))
    for vec, text in zip(_vectors("pyarrow", out, "qvec"), texts, strict=True):
        want = text_vector(MODEL, text, dimension=256, text_type="query", instruct=instruct)
        np.testing.assert_allclose(vec, want, atol=1e-6)  # type: ignore[arg-type]
    sent = server.emulator.requests
    assert sorted(len(r.json["input"]["texts"]) for r in sent) == [1, 2, 2]
    params = sent[0].json["parameters"]
    assert (params["text_type"], params["instruct"], params["dimension"]) == (
        "query",
        instruct,
        256,
    )


def _merged(text: str) -> tuple[list[int], list[float]]:
    best: dict[int, float] = {}
    for item in sparse_vector(text):
        best[item["index"]] = max(best.get(item["index"], -np.inf), item["value"])
    order = sorted(best)
    return order, [best[i] for i in order]


@pytest.mark.parametrize("kind", FORMATS)
def test_sparse_column_next_to_the_vectors(kind: str, server: EmulatorServer) -> None:
    """dense&sparse adds a sparse column: unique ascending indices, each with its max weight."""
    texts = ["tea and rain and tea again", "jazz maps"]
    out = _embedder(server, output_type="dense&sparse", dimension=64)(_batch(kind, {"text": texts}))
    for text, cell, vec in zip(
        texts, _column(kind, out, "sparse_embedding"), _vectors(kind, out), strict=True
    ):
        indices, values = _merged(text)
        assert list(cell["indices"]) == indices
        np.testing.assert_allclose(cell["values"], values, rtol=1e-6)
        np.testing.assert_allclose(vec, text_vector(MODEL, text, dimension=64), atol=1e-6)  # type: ignore[arg-type]
    assert server.emulator.requests[0].json["parameters"]["output_type"] == "dense&sparse"


def test_sparse_only_has_no_vector_column(server: EmulatorServer) -> None:
    """output_type='sparse' adds the sparse and error columns and no dense column."""
    out = _embedder(server, output_type="sparse")(pa.table({"text": ["tea and rain"]}))
    assert out.column_names == ["text", "sparse_embedding", "embedding_error"]
    assert out.column("sparse_embedding").to_pylist()[0]["indices"] == _merged("tea and rain")[0]


@pytest.mark.parametrize("kind", FORMATS)
def test_over_long_rows_fail_alone(kind: str, small_limit_server: EmulatorServer) -> None:
    """Texts the server finds too long get an error and a null/NaN vector; the rest, vectors."""
    texts = _texts(25)
    long_text = " ".join(f"word{i}" for i in range(60))
    texts[3] = texts[17] = long_text
    out = _embedder(small_limit_server, dimension=64, on_error="column")(
        _batch(kind, {"text": texts})
    )
    errors = _column(kind, out, "embedding_error")
    vectors = _vectors(kind, out)
    assert len(errors) == len(vectors) == 25
    for row in (3, 17):
        assert errors[row].startswith("InputTooLongError: HTTP 400 InvalidParameter: the text is")
        assert "Range of input length should be [1, 40]" in errors[row]
        assert vectors[row] is None
    if kind == "pyarrow":
        assert out.column("embedding").null_count == 2
    for row, (vec, err) in enumerate(zip(vectors, errors, strict=True)):
        if row not in (3, 17):
            assert err is None
            np.testing.assert_allclose(vec, text_vector(MODEL, texts[row], dimension=64), atol=1e-6)  # type: ignore[arg-type]
    stats = small_limit_server.emulator.stats
    assert stats.by_status[400] >= 2  # the server, not the client, rejected them


def test_rows_embedded_before_a_failure_are_not_paid_twice(
    small_limit_server: EmulatorServer,
) -> None:
    """The failed call's finished rows (``exc.partial``) are kept: each text is billed once."""
    texts = _texts(25)
    texts[17] = " ".join(f"word{i}" for i in range(60))
    out = _embedder(small_limit_server, dimension=64, on_error="column", max_concurrency=1)(
        pa.table({"text": texts})
    )
    errors = out.column("embedding_error").to_pylist()
    assert [e is None for e in errors] == [row != 17 for row in range(25)]
    for row, vec in enumerate(_vectors("pyarrow", out)):
        if row != 17:
            np.testing.assert_allclose(vec, text_vector(MODEL, texts[row], dimension=64), atol=1e-6)  # type: ignore[arg-type]
    billed = [
        t
        for r in small_limit_server.emulator.requests
        if r.status == 200
        for t in r.json["input"]["texts"]
    ]
    assert sorted(billed) == sorted(t for row, t in enumerate(texts) if row != 17)


def _reject_forbidden(server: EmulatorServer) -> None:
    """Make the server refuse (400 DataInspectionFailed) requests with a 'forbidden' text."""

    def handler(emu: Any, req: Any, match: re.Match[str]) -> Any:
        import json

        if any("forbidden" in t for t in json.loads(req.body)["input"]["texts"]):
            raise Rejection(
                400,
                "DataInspectionFailed",
                "Input or output data may contain inappropriate content.",
            )
        return handle_native(emu, req, match)

    server.emulator.add_route("POST", re.escape(NATIVE_PATH), handler)


def test_rejected_request_is_narrowed_to_its_rows(server: EmulatorServer) -> None:
    """A 400 naming no row (moderation) is re-run in smaller groups until only the bad rows fail."""
    _reject_forbidden(server)
    texts = _texts(25)
    texts[6] = "a forbidden text"
    out = _embedder(server, dimension=64, on_error="column", max_concurrency=1)(
        pa.table({"text": texts})
    )
    errors = out.column("embedding_error").to_pylist()
    assert errors[6].startswith("ContentModerationError: HTTP 400 DataInspectionFailed")
    assert [e is None for e in errors] == [row != 6 for row in range(25)]
    vectors = _vectors("pyarrow", out)
    for row, vec in enumerate(vectors):
        if row != 6:
            np.testing.assert_allclose(vec, text_vector(MODEL, texts[row], dimension=64), atol=1e-6)  # type: ignore[arg-type]
    sizes = [len(r.json["input"]["texts"]) for r in server.emulator.requests]
    assert sizes[0] == 10  # the first request held row 6; then it was narrowed down
    assert 1 in sizes
    assert sum(1 for r in server.emulator.requests if r.status == 400) <= 6


def test_service_failure_fails_only_that_requests_rows(server: EmulatorServer) -> None:
    """A 500 outlasting the retries fails that request's rows; the others are re-run and kept."""
    server.emulator.enqueue_fault(500, "InternalError", "An internal error has occured.", count=1)
    texts = _texts(25)
    out = _embedder(server, dimension=64, on_error="column", max_retries=0, max_concurrency=1)(
        pa.table({"text": texts})
    )
    errors = out.column("embedding_error").to_pylist()
    assert all(e.startswith("ServerError: HTTP 500 InternalError") for e in errors[:10])
    assert errors[10:] == [None] * 15
    for row, vec in enumerate(_vectors("pyarrow", out)[10:], start=10):
        np.testing.assert_allclose(vec, text_vector(MODEL, texts[row], dimension=64), atol=1e-6)  # type: ignore[arg-type]
    assert [r.status for r in server.emulator.requests] == [500, 200, 200]


def test_raise_mode_names_the_failing_row(small_limit_server: EmulatorServer) -> None:
    """With on_error='raise' the server's error is raised with a note naming the row and its id."""
    texts = _texts(12)
    texts[4] = " ".join(f"word{i}" for i in range(60))
    embedder = _embedder(small_limit_server, id_column="doc_id", dimension=64)
    with pytest.raises(InputTooLongError) as info:
        embedder(pa.table({"doc_id": [f"d{i}" for i in range(12)], "text": texts}))
    note = "\n".join(getattr(info.value, "__notes__", []))
    assert "failed rows of the Ray batch: [4]" in note
    assert "ids ['d4']" in note


def test_null_and_blank_texts(server: EmulatorServer) -> None:
    """Null and blank texts are reported unsent in column mode, and raised in raise mode."""
    batch = pa.table({"id": [1, 2, 3, 4], "text": ["tea", None, "   ", "rain"]})
    out = _embedder(server, dimension=64, on_error="column")(batch)
    errors = out.column("embedding_error").to_pylist()
    assert errors == [
        None,
        "InvalidInputError: the text is null",
        "InvalidInputError: the text is empty or whitespace only (DashScope rejects it)",
        None,
    ]
    assert out.column("embedding").to_pylist()[1:3] == [None, None]
    assert [r.json["input"]["texts"] for r in server.emulator.requests] == [["tea", "rain"]]
    with pytest.raises(InvalidInputError, match=r"row 1 \(ids \[2\]\): the text is null") as info:
        _embedder(server, id_column="id")(batch)
    assert info.value.index == 1
    assert len(server.emulator.requests) == 1  # nothing more was sent


def test_a_bad_key_is_raised_even_in_column_mode(server: EmulatorServer) -> None:
    """An error every row would share (a rejected key) stops the job, not fills the column."""
    embedder = DashScopeEmbedder(base_url=server.url, api_key="bad-key", on_error="column")
    with pytest.raises(AuthenticationError):
        embedder(pa.table({"text": ["tea"]}))
    assert [r.status for r in server.emulator.requests] == [401]


def test_options_are_validated_at_construction(server: EmulatorServer) -> None:
    """A dimension the model does not offer is refused when the worker starts, unsent."""
    with pytest.raises(InvalidInputError, match="dimension=7"):
        _embedder(server, dimension=7)
    with pytest.raises(ValueError, match="on_error"):
        _embedder(server, on_error="skip")  # type: ignore[arg-type]
    assert server.emulator.requests == []


def test_empty_batch_sends_nothing(server: EmulatorServer) -> None:
    """A batch of zero rows comes back with the new columns and no request is made."""
    batch = pa.table({"text": pa.array([], type=pa.string())})
    out = _embedder(server, dimension=64)(batch)
    assert out.num_rows == 0
    assert out.column_names == ["text", "embedding", "embedding_error"]
    assert server.emulator.requests == []


def test_missing_text_column_is_named(server: EmulatorServer) -> None:
    """A batch without the text column fails with the columns it does have."""
    with pytest.raises(KeyError, match=r"'body' is not in the batch; its columns are \['text'\]"):
        _embedder(server, text_column="body")(pa.table({"text": ["tea"]}))
