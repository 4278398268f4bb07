"""Pure request building, response parsing and error mapping for the native text endpoint.

No I/O here: the client shells hand bytes in and get typed values (or typed errors) out.
JSON is decoded with ``orjson`` when it is installed (the ``fast`` extra; ~6x faster on the
float-heavy embedding bodies) and with the standard library otherwise."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._types import SparseVector

__all__ = [
    "JSON_BACKENDS",
    "TEXT_EMBEDDING_PATH",
    "NotJSONError",
    "ProtocolError",
    "TextBatchResult",
    "build_text_body",
    "dense_from_lists",
    "dumps",
    "json_backend",
    "loads",
    "parse_text_response",
    "use_json_backend",
]


TEXT_EMBEDDING_PATH = "/services/embeddings/text-embedding/text-embedding"


_orjson: Any


try:  # optional accelerator
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _orjson = None


_simdjson: Any


try:  # optional accelerator: dense vectors straight from the tape, no Python floats
    import simdjson as _simdjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _simdjson = None


#: The JSON backends, fastest first: ``"simdjson"`` (dense vectors from pysimdjson's tape, orjson
#: for the rest), ``"orjson"``, and ``"json"`` (the standard library: the base install).
JSON_BACKENDS = ("simdjson", "orjson", "json")


_INSTALLED = {"orjson": _orjson, "simdjson": _simdjson}


def json_backend() -> str:
    """The backend in use: the fastest one installed (or the one :func:`use_json_backend` set)."""
    if _simdjson is not None and _orjson is not None:
        return "simdjson"
    return "orjson" if _orjson is not None else "json"


@contextmanager
def use_json_backend(name: str) -> Iterator[None]:
    """Run the block with one JSON backend, as if the faster ones were not installed (tests).

    ``"json"`` is exactly the base install without the ``fast`` extra; ``"orjson"`` and
    ``"simdjson"`` need that extra. Not thread-safe: it swaps this module's backends.

    Raises:
        ValueError: not one of :data:`JSON_BACKENDS`; RuntimeError: that backend is not installed.
    """
    global _orjson, _simdjson
    if name not in JSON_BACKENDS:
        raise ValueError(f"unknown JSON backend {name!r}; one of {', '.join(JSON_BACKENDS)}")
    orjson_mod = _INSTALLED["orjson"] if name != "json" else None
    simdjson_mod = _INSTALLED["simdjson"] if name == "simdjson" else None
    if (name != "json" and orjson_mod is None) or (name == "simdjson" and simdjson_mod is None):
        raise RuntimeError(f"JSON backend {name!r} is not installed (the fast extra)")
    saved = _orjson, _simdjson
    _orjson, _simdjson = orjson_mod, simdjson_mod
    try:
        yield
    finally:
        _orjson, _simdjson = saved


def loads(data: bytes) -> Any:
    """Decode JSON bytes (orjson when available)."""
    if _orjson is not None:
        return _orjson.loads(data)
    return json.loads(data)


def dumps(obj: Any) -> bytes:
    """Encode JSON as compact UTF-8 (non-ASCII kept as is, like the official SDK)."""
    if _orjson is not None:
        return bytes(_orjson.dumps(obj))
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_text_body(
    model: str,
    texts: Sequence[str],
    *,
    text_type: str | None,
    dimension: int | None,
    output_type: str | None,
    instruct: str | None,
) -> dict[str, Any]:
    """The native text-embedding body; only the options the caller set go into ``parameters``."""
    parameters: dict[str, Any] = {}
    if text_type is not None:
        parameters["text_type"] = text_type
    if dimension is not None:
        parameters["dimension"] = dimension
    if output_type is not None:
        parameters["output_type"] = output_type
    if instruct is not None:
        parameters["instruct"] = instruct
    return {"model": model, "input": {"texts": list(texts)}, "parameters": parameters}


@dataclass(frozen=True)
class TextBatchResult:
    """One successful response, rows in the batch's order."""

    dense: npt.NDArray[np.float32] | None
    sparse: list[SparseVector] | None
    total_tokens: int
    request_id: str


class ProtocolError(ValueError):
    """The server's success body does not have the documented shape."""


class NotJSONError(ProtocolError):
    """The success body is not a JSON document at all (a proxy's HTML page, text, bad UTF-8).

    Distinct from its parent, a JSON document of the wrong shape: a body that does not even
    decode most likely came from something between the client and DashScope, so it is worth
    retrying like a connection fault.
    """


def parse_text_response(
    body: bytes, *, rows: int, want_dense: bool, want_sparse: bool, request_id: str | None = None
) -> TextBatchResult:
    """Parse a native success body, placing each vector by ``text_index``.

    Raises:
        NotJSONError: the body does not decode as JSON (empty, HTML, text, invalid UTF-8).
        ProtocolError: missing or duplicate ``text_index``, ragged vectors, too few rows, or
            (when sparse output was asked for) a row without ``sparse_embedding`` — never a
            silently short, reordered or empty stand-in result.
    """
    fast = want_dense and _simdjson is not None
    try:
        doc = _simd_parse(body) if fast else loads(body)
    except ValueError as exc:  # every decoder's syntax error (and UnicodeDecodeError) is one
        raise NotJSONError(f"unexpected response body (not JSON): {body[:200]!r}") from exc
    try:
        items = doc["output"]["embeddings"]
        order = _row_order(items, rows)
    except ProtocolError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ProtocolError(f"unexpected response body: {body[:200]!r}") from exc
    dense: npt.NDArray[np.float32] | None = None
    if want_dense:
        try:
            dense = _dense_from_tape(items, order) if fast else dense_from_lists(items, order)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ProtocolError("missing or ragged 'embedding' arrays") from exc
    sparse: list[SparseVector] | None = None
    if want_sparse:
        sparse = []
        for row, p in enumerate(order):
            entries = items[p].get("sparse_embedding")
            if entries is None:  # absent or null; an empty list is a legitimate empty vector
                raise ProtocolError(f"no 'sparse_embedding' for text_index {row}")
            try:
                sparse.append(_sparse(entries))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise ProtocolError("malformed 'sparse_embedding' entries") from exc
    usage = doc.get("usage") or {}
    rid = doc.get("request_id") or request_id or ""
    return TextBatchResult(dense, sparse, int(usage.get("total_tokens", 0) or 0), str(rid))


_parsers = threading.local()


def _simd_parse(body: bytes) -> Any:
    """Parse with this thread's pysimdjson parser (reused: its buffers are allocated once).

    A parser cannot parse again while objects from its last document are alive (an exception's
    traceback can keep them); then this thread gets a fresh parser.
    """
    parser = getattr(_parsers, "parser", None)
    if parser is not None:
        try:
            return parser.parse(body)
        except RuntimeError:
            pass
    _parsers.parser = parser = _simdjson.Parser()
    return parser.parse(body)


def _row_order(items: Any, rows: int) -> list[int]:
    """``order[i]`` = position in ``items`` of input ``i``, from each item's ``text_index``."""
    if len(items) != rows:
        raise ProtocolError(f"expected {rows} embeddings, got {len(items)}")
    order = [-1] * rows
    for pos in range(rows):
        item = items[pos]
        idx = item.get("text_index")
        if idx is None:
            idx = item.get("index")
        if type(idx) is not int or not 0 <= idx < rows or order[idx] != -1:
            raise ProtocolError(f"bad or duplicate text_index {idx!r}")
        order[idx] = pos
    return order


def _sparse(entries: Any) -> SparseVector:
    return SparseVector(
        indices=tuple(int(e["index"]) for e in entries),
        values=tuple(float(e["value"]) for e in entries),
        tokens=tuple(str(e.get("token", "")) for e in entries),
    )


def dense_from_lists(items: Any, order: list[int]) -> npt.NDArray[np.float32]:
    """``items[p]["embedding"]`` for each ``p`` in ``order`` as float32 rows (decoded JSON lists).

    Raises:
        ValueError: ragged rows, or a null (numpy would make it NaN); KeyError: no embedding.
    """
    if not order:
        return np.empty((0, 0), dtype=np.float32)
    dense = np.array([items[p]["embedding"] for p in order], dtype=np.float32)
    if dense.ndim != 2:
        raise ValueError("embeddings are not a list of equal-length vectors")
    if np.isnan(dense).any():  # a JSON null (or a NaN literal) numpy would turn into NaN
        raise ValueError("an 'embedding' holds null or NaN")
    return dense


def _dense_from_tape(items: Any, order: list[int]) -> npt.NDArray[np.float32]:
    """Rows copied from pysimdjson's parsed doubles, never materialised as Python floats."""
    if not order:
        return np.empty((0, 0), dtype=np.float32)
    first = _tape_row(items[order[0]])
    dense = np.empty((len(order), first.size), dtype=np.float32)
    dense[0] = first
    for row in range(1, len(order)):
        values = _tape_row(items[order[row]])
        if values.size != first.size:
            raise ValueError("embeddings of different lengths")
        dense[row] = values
    return dense


def _tape_row(item: Any) -> npt.NDArray[np.float64]:
    array = item["embedding"]
    values = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    # as_buffer flattens nested arrays: a count that changed, or (cheap, not a scan) a first
    # element that is an array, like [[0.1], [0.2]] whose count does not change, is no vector
    if values.size != len(array) or (values.size and isinstance(array[0], _simdjson.Array)):
        raise ValueError("an 'embedding' holds nested arrays")
    return values
