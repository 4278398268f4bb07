"""Pins of the wire codec (``_wire.py``) on every JSON backend, the base install's included.

``use_json_backend("json")`` runs the standard-library path exactly as an install without the
``fast`` extra does; ``"orjson"`` and ``"simdjson"`` the accelerated ones. Every codec test here is
parametrised over the three, and one test imports the core in a fresh interpreter where orjson and
pysimdjson cannot be imported at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from dashscope_embed import DashScopeClient, SparseVector, _wire
from dashscope_embed._wire import (
    JSON_BACKENDS,
    NotJSONError,
    ProtocolError,
    build_text_body,
    dense_from_lists,
    dumps,
    json_backend,
    loads,
    parse_text_response,
    use_json_backend,
)

from .conftest import KEY


@pytest.fixture(params=JSON_BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each JSON backend in turn; ``json`` is the base install without the fast extra."""
    with use_json_backend(request.param):
        yield request.param


def body(items: list[dict[str, Any]], **extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "output": {"embeddings": items},
        "usage": {"total_tokens": 42},
        "request_id": "rid-1",
    }
    doc.update(extra)
    return json.dumps(doc).encode()


# --- choosing the backend ----------------------------------------------------------------------


def test_the_fastest_installed_backend_is_used_and_each_can_be_forced() -> None:
    """With the fast extra simdjson is in use; each backend can be forced and is restored after."""
    assert json_backend() == "simdjson"
    for name in JSON_BACKENDS:
        with use_json_backend(name):
            assert json_backend() == name
            assert (_wire._orjson is None, _wire._simdjson is None) == {
                "simdjson": (False, False),
                "orjson": (False, True),
                "json": (True, True),
            }[name]
        assert json_backend() == "simdjson"


def test_an_unknown_or_missing_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown backend name is a ValueError; one that is not installed a RuntimeError."""
    with (
        pytest.raises(ValueError, match="unknown JSON backend 'ujson'; one of simdjson, orjson"),
        use_json_backend("ujson"),
    ):
        pass
    monkeypatch.setitem(_wire._INSTALLED, "simdjson", None)
    with (
        pytest.raises(RuntimeError, match="JSON backend 'simdjson' is not installed"),
        use_json_backend("simdjson"),
    ):
        pass
    with use_json_backend("orjson"):
        assert json_backend() == "orjson"
    monkeypatch.setitem(_wire._INSTALLED, "orjson", None)
    for name in ("simdjson", "orjson"):
        with (
            pytest.raises(RuntimeError, match=f"JSON backend '{name}' is not installed"),
            use_json_backend(name),
        ):
            pass
    with use_json_backend("json"):
        assert json_backend() == "json"
    assert json_backend() == "simdjson"


def test_the_backend_is_restored_when_the_block_raises() -> None:
    """An exception inside the block still puts the previous backends back."""
    saved = (_wire._orjson, _wire._simdjson)
    with pytest.raises(KeyError), use_json_backend("json"):
        raise KeyError("x")
    assert (_wire._orjson, _wire._simdjson) == saved


def test_simdjson_without_orjson_reports_the_stdlib_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pysimdjson alone (no orjson) reports 'json': dumps/loads are the standard library's."""
    monkeypatch.setattr(_wire, "_orjson", None)
    assert json_backend() == "json"
    monkeypatch.setattr(_wire, "_simdjson", None)
    monkeypatch.setattr(_wire, "_orjson", _wire._INSTALLED["orjson"])
    assert json_backend() == "orjson"


def test_the_base_install_imports_and_parses_without_the_fast_extra() -> None:
    """In an interpreter where orjson and pysimdjson cannot be imported the core uses json."""
    code = (
        "import sys; sys.modules['orjson'] = None; sys.modules['simdjson'] = None\n"
        "from dashscope_embed import _wire\n"
        "assert _wire._orjson is None and _wire._simdjson is None\n"
        "body = _wire.dumps({'output': {'embeddings': [{'embedding': [0.5, 2], 'text_index': 0}]},"
        " 'request_id': 'r'})\n"
        "res = _wire.parse_text_response(body, rows=1, want_dense=True, want_sparse=False)\n"
        "print(_wire.json_backend(), res.dense.tolist(), res.request_id, body.decode())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == (
        'json [[0.5, 2.0]] r {"output":{"embeddings":[{"embedding":[0.5,2],"text_index":0}]},'
        '"request_id":"r"}'
    )


# --- encoding ----------------------------------------------------------------------------------


def test_dumps_is_compact_utf8_with_non_ascii_kept(backend: str) -> None:
    """Every backend encodes a request body to the same compact UTF-8 bytes, non-ASCII unescaped."""
    doc = build_text_body(
        "text-embedding-v4",
        ["héllo", "中文", "😀", 'quote " and \\ back', "tab\tnew\nline"],
        text_type="query",
        dimension=512,
        output_type="dense&sparse",
        instruct="Given a question",
    )
    expected = (
        '{"model":"text-embedding-v4","input":{"texts":["héllo","中文","😀",'
        '"quote \\" and \\\\ back","tab\\tnew\\nline"]},"parameters":{"text_type":"query",'
        '"dimension":512,"output_type":"dense&sparse","instruct":"Given a question"}}'
    ).encode()
    out = dumps(doc)
    assert type(out) is bytes
    assert out == expected


def test_loads_round_trips_what_dumps_wrote(backend: str) -> None:
    """loads(dumps(x)) == x for the shapes the client sends and receives."""
    doc = {"a": [1, 2.5, None, True, False], "b": {"c": "é中😀"}, "d": [], "e": {}}
    assert loads(dumps(doc)) == doc
    assert loads(b'{"x": 1}') == {"x": 1}


def test_loads_rejects_non_json_with_a_value_error(backend: str) -> None:
    """Each backend's decode failure is a ValueError (what the parsers catch)."""
    for data in (b"<html>", b"", b"{", b"\xff"):
        with pytest.raises(ValueError):  # the decoders' common base
            loads(data)


def test_request_body_keeps_only_the_options_that_were_set() -> None:
    """build_text_body puts only non-None options into parameters, and copies the texts."""
    texts = ("a", "b")
    assert build_text_body(
        "m", texts, text_type=None, dimension=None, output_type=None, instruct=None
    ) == {"model": "m", "input": {"texts": ["a", "b"]}, "parameters": {}}
    assert build_text_body(
        "m", ["a"], text_type="document", dimension=None, output_type=None, instruct=None
    )["parameters"] == {"text_type": "document"}
    assert build_text_body(
        "m", ["a"], text_type=None, dimension=64, output_type=None, instruct=None
    )["parameters"] == {"dimension": 64}
    assert build_text_body(
        "m", ["a"], text_type=None, dimension=None, output_type="sparse", instruct=None
    )["parameters"] == {"output_type": "sparse"}
    assert build_text_body(
        "m", ["a"], text_type=None, dimension=None, output_type=None, instruct="task"
    )["parameters"] == {"instruct": "task"}


def test_a_client_round_trip_is_byte_identical_on_every_backend(backend: str) -> None:
    """Through the client, every backend sends the same bytes and yields the same vectors."""
    sent: list[bytes] = []
    answer = {
        "output": {
            "embeddings": [
                {
                    "embedding": [0.1, -2.0],
                    "text_index": 1,
                    "sparse_embedding": [{"index": 4, "value": 0.5, "token": "é"}],
                },
                {"embedding": [3.0, 0.25], "text_index": 0, "sparse_embedding": []},
            ]
        },
        "usage": {"total_tokens": 9},
        "request_id": "rid-é",
    }

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, content=json.dumps(answer).encode())

    client = DashScopeClient(
        KEY,
        base_url="http://fake.test",
        http_client=httpx.Client(transport=httpx.MockTransport(handle)),
    )
    res = client.embed_texts(["中文", "b"], output_type="dense&sparse")
    assert sent == [
        b'{"model":"text-embedding-v4","input":{"texts":["\xe4\xb8\xad\xe6\x96\x87","b"]},'
        b'"parameters":{"text_type":"document","output_type":"dense&sparse"}}'
    ]
    expected = np.array([[3.0, 0.25], [0.1, -2.0]], np.float32)
    assert res.embeddings.tobytes() == expected.tobytes()
    assert res.sparse == (SparseVector((), (), ()), SparseVector((4,), (0.5,), ("é",)))
    assert res.usage.total_tokens == 9


# --- parsing: the happy path on every backend ---------------------------------------------------


def test_parse_places_rows_and_reads_usage_and_request_id(backend: str) -> None:
    """Rows are placed by text_index; usage and the body's request id are read exactly."""
    items = [
        {"embedding": [2.0, 0.5], "text_index": 1},
        {"embedding": [1.0, 0.25], "text_index": 0},
    ]
    res = parse_text_response(body(items), rows=2, want_dense=True, want_sparse=False)
    assert res.dense is not None
    assert res.dense.dtype == np.float32
    assert res.dense.tolist() == [[1.0, 0.25], [2.0, 0.5]]
    assert (res.sparse, res.total_tokens, res.request_id) == (None, 42, "rid-1")


def test_usage_and_request_id_fallbacks(backend: str) -> None:
    """No usage → 0 tokens; no body id → the header's; neither → ''; ids become strings."""
    items = [{"embedding": [1.0], "text_index": 0}]
    doc = {"output": {"embeddings": items}}
    data = json.dumps(doc).encode()
    res = parse_text_response(data, rows=1, want_dense=True, want_sparse=False, request_id="hdr")
    assert (res.total_tokens, res.request_id) == (0, "hdr")
    res = parse_text_response(data, rows=1, want_dense=True, want_sparse=False)
    assert res.request_id == ""
    data = body(items, usage={"total_tokens": None}, request_id=17)
    res = parse_text_response(data, rows=1, want_dense=True, want_sparse=False, request_id="hdr")
    assert (res.total_tokens, res.request_id) == (0, "17")
    data = body(items, usage=None, request_id="")
    res = parse_text_response(data, rows=1, want_dense=False, want_sparse=False, request_id="h")
    assert (res.dense, res.sparse, res.total_tokens, res.request_id) == (None, None, 0, "h")


def test_zero_rows_give_an_empty_matrix(backend: str) -> None:
    """An empty answer for an empty batch is a (0, 0) float32 matrix, not None."""
    res = parse_text_response(body([]), rows=0, want_dense=True, want_sparse=False)
    assert res.dense is not None
    assert (res.dense.shape, res.dense.dtype) == ((0, 0), np.float32)


def test_dense_from_lists_directly() -> None:
    """dense_from_lists orders rows, rejects ragged rows and nulls, and handles no rows."""
    items = [{"embedding": [1, 2]}, {"embedding": [3, 4]}]
    assert dense_from_lists(items, [1, 0]).tolist() == [[3.0, 4.0], [1.0, 2.0]]
    assert dense_from_lists(items, []).shape == (0, 0)
    with pytest.raises(ValueError, match="not a list of equal-length vectors"):
        dense_from_lists([{"embedding": [[1.0, 2.0]]}], [0])
    with pytest.raises(ValueError, match="holds null or NaN"):
        dense_from_lists([{"embedding": [1.0, None]}], [0])


# --- bug 5: sparse output without sparse_embedding ----------------------------------------------


@pytest.mark.parametrize("want_dense", [True, False], ids=["dense&sparse", "sparse"])
def test_a_row_without_sparse_embedding_is_a_protocol_error(backend: str, want_dense: bool) -> None:
    """Sparse output asked for, a row without 'sparse_embedding' is a ProtocolError, not empty."""
    items = [
        {"embedding": [1.0], "text_index": 0, "sparse_embedding": [{"index": 1, "value": 0.5}]},
        {"embedding": [2.0], "text_index": 1},
    ]
    with pytest.raises(ProtocolError, match=r"^no 'sparse_embedding' for text_index 1$"):
        parse_text_response(body(items), rows=2, want_dense=want_dense, want_sparse=True)


def test_a_null_sparse_embedding_is_a_protocol_error(backend: str) -> None:
    """'sparse_embedding': null is as missing as no key at all."""
    items = [{"embedding": [1.0], "text_index": 0, "sparse_embedding": None}]
    with pytest.raises(ProtocolError, match=r"^no 'sparse_embedding' for text_index 0$"):
        parse_text_response(body(items), rows=1, want_dense=True, want_sparse=True)


def test_an_explicitly_empty_sparse_embedding_is_an_empty_vector(backend: str) -> None:
    """'sparse_embedding': [] is a legitimate empty sparse vector."""
    items = [
        {"embedding": [1.0], "text_index": 1, "sparse_embedding": []},
        {"embedding": [2.0], "text_index": 0, "sparse_embedding": [{"index": 3, "value": 1.5}]},
    ]
    res = parse_text_response(body(items), rows=2, want_dense=False, want_sparse=True)
    assert res.sparse == [SparseVector((3,), (1.5,), ("",)), SparseVector((), (), ())]


def test_sparse_entries_are_converted_exactly(backend: str) -> None:
    """Indices become ints, values floats and tokens strings (missing token → '')."""
    entries = [{"index": 7, "value": 1, "token": "a"}, {"index": 2.0, "value": "0.5"}]
    items = [{"text_index": 0, "sparse_embedding": entries}]
    res = parse_text_response(body(items), rows=1, want_dense=False, want_sparse=True)
    assert res.sparse is not None
    (vec,) = res.sparse
    assert (vec.indices, vec.values, vec.tokens) == ((7, 2), (1.0, 0.5), ("a", ""))
    assert [type(i) for i in vec.indices] == [int, int]
    assert [type(v) for v in vec.values] == [float, float]


@pytest.mark.parametrize(
    "entries",
    [[{"value": 1.0}], [{"index": 1}], [{"index": "x", "value": 1.0}], [3], "abc", {"index": 1}],
    ids=["no index", "no value", "bad index", "not objects", "string", "object"],
)
def test_malformed_sparse_entries_are_protocol_errors(backend: str, entries: Any) -> None:
    """Entries without index/value, or not a list of objects, are a ProtocolError."""
    items = [{"embedding": [1.0], "text_index": 0, "sparse_embedding": entries}]
    with pytest.raises(ProtocolError, match=r"^malformed 'sparse_embedding' entries$"):
        parse_text_response(body(items), rows=1, want_dense=True, want_sparse=True)


# --- bug 7 (parse side): a body that is not JSON at all ------------------------------------------

NOT_JSON = {
    "proxy html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "plain text": b"upstream connect error",
    "empty": b"",
    "blank": b"  \n",
    "truncated": b'{"output": {"embeddings": [{"embedding": [0.1',
    "not utf-8": b"\xff\xfe\x00<",
}


@pytest.mark.parametrize("case", NOT_JSON, ids=list(NOT_JSON))
@pytest.mark.parametrize("want_dense", [True, False], ids=["dense", "sparse-only"])
def test_a_body_that_is_not_json_raises_not_json_error(
    backend: str, case: str, want_dense: bool
) -> None:
    """A success body no JSON decoder accepts raises NotJSONError (a ProtocolError), quoted."""
    data = NOT_JSON[case]
    with pytest.raises(NotJSONError) as info:
        parse_text_response(data, rows=1, want_dense=want_dense, want_sparse=not want_dense)
    assert isinstance(info.value, ProtocolError)
    assert str(info.value) == f"unexpected response body (not JSON): {data[:200]!r}"
    assert isinstance(info.value.__cause__, ValueError)


def test_only_the_first_200_bytes_of_a_non_json_body_are_quoted(backend: str) -> None:
    """The NotJSONError message quotes at most 200 bytes of the body."""
    data = b"<html>" + b"x" * 500
    with pytest.raises(NotJSONError) as info:
        parse_text_response(data, rows=1, want_dense=True, want_sparse=False)
    assert str(info.value) == f"unexpected response body (not JSON): {data[:200]!r}"


@pytest.mark.parametrize(
    "data",
    [b"[1, 2]", b"42", b"null", b'{"output": {}}', b'{"output": {"embeddings": {"0": 1}}}'],
)
def test_json_of_the_wrong_shape_is_a_protocol_error_but_not_not_json(
    backend: str, data: bytes
) -> None:
    """Valid JSON of the wrong shape is a plain ProtocolError, never a NotJSONError."""
    with pytest.raises(ProtocolError) as info:
        parse_text_response(data, rows=1, want_dense=True, want_sparse=False)
    assert type(info.value) is ProtocolError
    assert str(info.value) == f"unexpected response body: {data[:200]!r}"


def test_only_the_first_200_bytes_of_a_wrongly_shaped_body_are_quoted(backend: str) -> None:
    """The ProtocolError for JSON of the wrong shape quotes at most 200 bytes of the body."""
    data = json.dumps({"unexpected": "x" * 500}).encode()
    with pytest.raises(ProtocolError) as info:
        parse_text_response(data, rows=1, want_dense=True, want_sparse=False)
    assert str(info.value) == f"unexpected response body: {data[:200]!r}"


@pytest.mark.parametrize(
    ("indices", "bad"),
    [([0, 2], 2), ([-1, 0], -1), ([1, 1], 1), ([0, 1.0], 1.0), ([0, None], None)],
    ids=["equal to rows", "negative", "duplicate", "float", "null"],
)
def test_text_index_must_be_an_int_in_range_once(
    backend: str, indices: list[Any], bad: Any
) -> None:
    """A text_index equal to the row count, negative, repeated or not an int names itself."""
    items = [{"embedding": [1.0], "text_index": i} for i in indices]
    with pytest.raises(ProtocolError) as info:
        parse_text_response(body(items), rows=2, want_dense=True, want_sparse=False)
    assert str(info.value) == f"bad or duplicate text_index {bad!r}"


def test_text_index_wins_over_index(backend: str) -> None:
    """When both are present text_index places the row; index is only the fallback."""
    items = [
        {"embedding": [1.0], "text_index": 1, "index": 0},
        {"embedding": [2.0], "text_index": 0, "index": 1},
    ]
    res = parse_text_response(body(items), rows=2, want_dense=True, want_sparse=False)
    assert res.dense is not None
    assert res.dense.tolist() == [[2.0], [1.0]]


def test_row_count_mismatch_names_both_counts(backend: str) -> None:
    """Too many or too few items: 'expected N embeddings, got M'."""
    items = [{"embedding": [1.0], "text_index": i} for i in range(3)]
    with pytest.raises(ProtocolError) as info:
        parse_text_response(body(items), rows=2, want_dense=True, want_sparse=False)
    assert str(info.value) == "expected 2 embeddings, got 3"


BAD_DENSE = {
    "ragged": [{"embedding": [1.0, 2.0], "text_index": 0}, {"embedding": [1.0], "text_index": 1}],
    "missing": [{"embedding": [1.0], "text_index": 0}, {"text_index": 1}],
    "null": [{"embedding": [1.0], "text_index": 0}, {"embedding": [None], "text_index": 1}],
    "nested": [{"embedding": [[1.0]], "text_index": 0}, {"embedding": [[2.0]], "text_index": 1}],
}


@pytest.mark.parametrize("case", BAD_DENSE, ids=list(BAD_DENSE))
def test_bad_dense_vectors_have_one_exact_message(backend: str, case: str) -> None:
    """Ragged, missing, null or nested vectors: exactly "missing or ragged 'embedding' arrays"."""
    with pytest.raises(ProtocolError) as info:
        parse_text_response(body(BAD_DENSE[case]), rows=2, want_dense=True, want_sparse=False)
    assert type(info.value) is ProtocolError
    assert str(info.value) == "missing or ragged 'embedding' arrays"
    assert info.value.__cause__ is not None


def test_tape_reader_reasons() -> None:
    """pysimdjson rows: different lengths and nested arrays are refused with their reason."""
    import simdjson

    def items(doc: Any) -> Any:
        return simdjson.Parser().parse(json.dumps(doc).encode())

    ragged = items([{"embedding": [1.0, 2.0]}, {"embedding": [3.0]}])
    with pytest.raises(ValueError, match=r"^embeddings of different lengths$"):
        _wire._dense_from_tape(ragged, [0, 1])
    for doc in ([{"embedding": [[1.0, 2.0]]}], [{"embedding": [[1.0], [2.0]]}]):
        with pytest.raises(ValueError, match=r"^an 'embedding' holds nested arrays$"):
            _wire._dense_from_tape(items(doc), [0])
    rows = items([{"embedding": [1, 2.5]}, {"embedding": [3, -4]}])
    dense = _wire._dense_from_tape(rows, [1, 0])
    assert (dense.dtype, dense.tolist()) == (np.float32, [[3.0, -4.0], [1.0, 2.5]])
    empty = _wire._dense_from_tape(rows, [])
    assert (empty.shape, empty.dtype) == ((0, 0), np.float32)
    assert _wire._tape_row(rows[0]).tolist() == [1.0, 2.5]


def test_dense_reasons_from_lists() -> None:
    """Decoded lists: nested vectors and nulls are refused with their exact reason."""
    with pytest.raises(ValueError, match=r"^embeddings are not a list of equal-length vectors$"):
        dense_from_lists([{"embedding": [[1.0]]}, {"embedding": [[2.0]]}], [0, 1])
    with pytest.raises(ValueError, match=r"^an 'embedding' holds null or NaN$"):
        dense_from_lists([{"embedding": [1.0, None]}], [0])
    empty = dense_from_lists([], [])
    assert (empty.shape, empty.dtype) == ((0, 0), np.float32)


def test_simdjson_backend_reads_dense_rows_from_the_tape(monkeypatch: pytest.MonkeyPatch) -> None:
    """With pysimdjson, dense rows come from its tape: the list path is never taken."""

    def refuse(items: Any, order: list[int]) -> Any:
        raise AssertionError("dense_from_lists used on the simdjson path")

    monkeypatch.setattr(_wire, "dense_from_lists", refuse)
    items = [{"embedding": [0.5, 1.5], "text_index": 0}]
    with use_json_backend("simdjson"):
        res = parse_text_response(body(items), rows=1, want_dense=True, want_sparse=False)
    assert res.dense is not None
    assert res.dense.tolist() == [[0.5, 1.5]]
    with use_json_backend("orjson"), pytest.raises(AssertionError, match="dense_from_lists used"):
        parse_text_response(body(items), rows=1, want_dense=True, want_sparse=False)


def test_the_simdjson_parser_is_reused_between_calls() -> None:
    """A thread keeps one pysimdjson parser while no document of it is still referenced."""
    items = [{"embedding": [0.5], "text_index": 0}]
    with use_json_backend("simdjson"):
        parse_text_response(body(items), rows=1, want_dense=True, want_sparse=False)
        first = _wire._parsers.parser
        res = parse_text_response(body(items), rows=1, want_dense=True, want_sparse=False)
        assert _wire._parsers.parser is first
    assert res.dense is not None
    assert res.dense.tolist() == [[0.5]]
