"""Parsing a native success body, with each decoder the core can use.

``simdjson`` (pysimdjson, the ``fast`` extra) copies dense vectors straight from its tape;
``orjson`` and the standard library's ``json`` decode to lists first. All three must give the
same bits, the same row order and the same ProtocolErrors.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from dashscope_embed import _wire
from dashscope_embed._wire import ProtocolError, parse_text_response

DECODERS = ["simdjson", "orjson", "json"]


@pytest.fixture(params=DECODERS)
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Force one decoder: the faster ones are switched off, the chosen one must be installed."""
    name: str = request.param
    if name == "simdjson":
        assert _wire._simdjson is not None, "pysimdjson (the fast extra) is not installed"
    else:
        monkeypatch.setattr(_wire, "_simdjson", None)
    if name == "json":
        monkeypatch.setattr(_wire, "_orjson", None)
    elif name == "orjson":
        assert _wire._orjson is not None, "orjson (the fast extra) is not installed"
    return name


def body(items: list[dict[str, Any]], **extra: Any) -> bytes:
    doc = {"output": {"embeddings": items}, "usage": {"total_tokens": 42}, "request_id": "rid-1"}
    doc.update(extra)
    return json.dumps(doc).encode()


def parse(data: bytes, rows: int, *, dense: bool = True, sparse: bool = False) -> Any:
    return parse_text_response(data, rows=rows, want_dense=dense, want_sparse=sparse)


def test_rows_are_placed_by_text_index_with_exact_values(decoder: str) -> None:
    """Items arrive shuffled; row i is the vector whose text_index is i, rounded to float32."""
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((5, 1024))
    shuffled = [4, 0, 3, 1, 2]
    items = [{"embedding": vecs[i].tolist(), "text_index": i} for i in shuffled]
    res = parse(body(items), 5)
    assert res.dense.dtype == np.float32
    assert res.dense.shape == (5, 1024)
    np.testing.assert_array_equal(res.dense, vecs.astype(np.float32))
    assert res.total_tokens == 42
    assert res.request_id == "rid-1"
    assert res.sparse is None


def test_every_decoder_gives_the_same_bits() -> None:
    """17-digit floats, integers and exponents decode identically whichever decoder runs."""
    items = [
        {
            "embedding": [0, 1, -0.0123456789012345678, 1e-40, 3.4028234663852886e38],
            "text_index": 0,
        },
        {"embedding": [0.1, -2, 5e-324, 123456789.123456789, -1e-7], "text_index": 1},
    ]
    data = body(items)
    results = []
    with pytest.MonkeyPatch.context() as mp:
        results.append(parse(data, 2).dense)
        mp.setattr(_wire, "_simdjson", None)
        results.append(parse(data, 2).dense)
        mp.setattr(_wire, "_orjson", None)
        results.append(parse(data, 2).dense)
    expected = np.array([i["embedding"] for i in items], dtype=np.float32)
    for got in results:
        assert got.tobytes() == expected.tobytes()


def test_index_key_is_accepted_like_text_index(decoder: str) -> None:
    items = [{"embedding": [2.0, 0.0], "index": 1}, {"embedding": [1.0, 0.0], "index": 0}]
    np.testing.assert_array_equal(parse(body(items), 2).dense, [[1.0, 0.0], [2.0, 0.0]])


def test_sparse_and_dense_from_one_body(decoder: str) -> None:
    items = [
        {
            "embedding": [0.5, 0.5],
            "text_index": 1,
            "sparse_embedding": [{"index": 7, "value": 0.25, "token": "b"}],
        },
        {
            "embedding": [1.0, 0.0],
            "text_index": 0,
            "sparse_embedding": [
                {"index": 3, "value": 1.5, "token": "a"},
                {"index": 9, "value": 0.5},
            ],
        },
    ]
    res = parse(body(items), 2, sparse=True)
    np.testing.assert_array_equal(res.dense, [[1.0, 0.0], [0.5, 0.5]])
    assert [s.indices for s in res.sparse] == [(3, 9), (7,)]
    assert [s.values for s in res.sparse] == [(1.5, 0.5), (0.25,)]
    assert [s.tokens for s in res.sparse] == [("a", ""), ("b",)]


def test_sparse_only_skips_dense(decoder: str) -> None:
    items = [{"text_index": 0, "sparse_embedding": [{"index": 1, "value": 2.0, "token": "x"}]}]
    res = parse(body(items), 1, dense=False, sparse=True)
    assert res.dense is None
    assert res.sparse[0].indices == (1,)


def test_zero_rows(decoder: str) -> None:
    res = parse(body([]), 0)
    assert res.dense is not None
    assert res.dense.shape[0] == 0


BAD_ORDER = {
    "too few rows": ([{"embedding": [1.0], "text_index": 0}], 2, "expected 2 embeddings, got 1"),
    "duplicate": (
        [{"embedding": [1.0], "text_index": 0}, {"embedding": [1.0], "text_index": 0}],
        2,
        "duplicate text_index 0",
    ),
    "out of range": ([{"embedding": [1.0], "text_index": 5}], 1, "text_index 5"),
    "missing": ([{"embedding": [1.0]}], 1, "text_index None"),
    "boolean": ([{"embedding": [1.0], "text_index": True}], 1, "text_index True"),
    "string": ([{"embedding": [1.0], "text_index": "0"}], 1, "text_index '0'"),
}


@pytest.mark.parametrize("case", BAD_ORDER, ids=list(BAD_ORDER))
def test_bad_rows_raise_protocol_error(decoder: str, case: str) -> None:
    items, rows, message = BAD_ORDER[case]
    with pytest.raises(ProtocolError, match=message):
        parse(body(items), rows)


BAD_VECTORS = {
    "ragged": [{"embedding": [1.0, 2.0], "text_index": 0}, {"embedding": [1.0], "text_index": 1}],
    "nested": [
        {"embedding": [[1.0, 2.0], 3.0], "text_index": 0},
        {"embedding": [1.0, 2.0, 3.0], "text_index": 1},
    ],
    "text in vector": [
        {"embedding": ["a"], "text_index": 0},
        {"embedding": [1.0], "text_index": 1},
    ],
    "null in vector": [
        {"embedding": [None], "text_index": 0},
        {"embedding": [1.0], "text_index": 1},
    ],
    "missing": [{"text_index": 0}, {"embedding": [1.0], "text_index": 1}],
    "not an array": [
        {"embedding": {"a": 1}, "text_index": 0},
        {"embedding": [1.0], "text_index": 1},
    ],
}


@pytest.mark.parametrize("case", BAD_VECTORS, ids=list(BAD_VECTORS))
def test_bad_vectors_raise_protocol_error(decoder: str, case: str) -> None:
    with pytest.raises(ProtocolError, match="missing or ragged 'embedding' arrays"):
        parse(body(BAD_VECTORS[case]), 2)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1, 2]",
        b"42",
        b'{"output": {}}',
        b'{"output": {"embeddings": {"0": 1}}}',
        b'{"output": {"embeddings": [1, 2]}}',
    ],
)
def test_bodies_of_the_wrong_shape_raise_protocol_error(decoder: str, data: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"unexpected response body|expected 2 embeddings"):
        parse(data, 2)


def test_bad_sparse_entries_raise_protocol_error(decoder: str) -> None:
    items = [{"embedding": [1.0], "text_index": 0, "sparse_embedding": [{"value": 1.0}]}]
    with pytest.raises(ProtocolError, match="malformed 'sparse_embedding'"):
        parse(body(items), 1, sparse=True)


def test_a_kept_error_does_not_block_the_next_parse(decoder: str) -> None:
    """pysimdjson's reused parser refuses to parse while the last document is referenced (here
    by a kept traceback); the next call still parses, with a fresh parser."""
    ragged = [{"embedding": [1.0, 2.0], "text_index": 0}, {"embedding": [1.0], "text_index": 1}]
    with pytest.raises(ProtocolError) as info:
        parse(body(ragged), 2)
    kept = info.value
    stuck = getattr(_wire._parsers, "parser", None)
    for _ in range(3):
        res = parse(body([{"embedding": [0.25, 0.5], "text_index": 0}]), 1)
        np.testing.assert_array_equal(res.dense, [[0.25, 0.5]])
    assert kept.__traceback__ is not None
    if decoder == "simdjson":
        assert stuck is not None
        assert _wire._parsers.parser is not stuck  # the blocked parser was replaced
