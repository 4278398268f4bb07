"""Pure request building, response parsing and error mapping for the native text endpoint.

No I/O here: the client shells hand bytes in and get typed values (or typed errors) out.
JSON is decoded with ``orjson`` when it is installed (the ``fast`` extra; ~6x faster on the
float-heavy embedding bodies) and with the standard library otherwise.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BatchSizeError,
    ContentModerationError,
    InputTooLongError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ._models import suggest_model
from ._types import SparseVector

__all__ = [
    "JSON_BACKENDS",
    "TEXT_EMBEDDING_PATH",
    "ErrorBody",
    "NotJSONError",
    "ProtocolError",
    "TextBatchResult",
    "build_text_body",
    "dense_from_lists",
    "dumps",
    "json_backend",
    "loads",
    "make_status_error",
    "parse_error_body",
    "parse_retry_after",
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


@dataclass(frozen=True)
class ErrorBody:
    """The code / message / request id of an error answer (native or OpenAI envelope)."""

    code: str
    message: str
    request_id: str | None


def parse_error_body(body: bytes, headers: Mapping[str, str]) -> ErrorBody:
    """Read ``{code, message, request_id}`` or ``{"error": {...}}``; tolerate non-JSON bodies.

    A body that is not a JSON object (empty, HTML, text, not UTF-8) gives code ``"Unknown"`` and
    its first 500 characters (``"(empty body)"`` when there are none) as the message.
    """
    header_id = headers.get("x-request-id") or headers.get("X-Request-ID")
    try:
        doc = loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = body.decode("utf-8", "replace").strip()[:500]
        return ErrorBody("Unknown", text or "(empty body)", header_id)
    err = doc.get("error")
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("type") or "")
        message = str(err.get("message") or "")
    else:
        code = str(doc.get("code") or "")
        message = str(doc.get("message") or doc.get("msg") or "")
    rid = doc.get("request_id") or doc.get("id") or header_id
    return ErrorBody(code, message, str(rid) if rid else None)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), if present."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are GMT, never the machine's local time
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_BATCH_LIMIT_RE = re.compile(r"should not be larger than (\d+)")
_LENGTH_RE = re.compile(r"Range of input length should be \[1, ?(\d+)\]")
_REGION_HINT = (
    "DashScope API keys are region-specific: a Beijing (cn-beijing) key fails on the "
    "international host and vice versa. Check region=/base_url= against the console where the "
    "key was created."
)
_THROTTLE_HINT = "throttled by the account's RPM/TPM quota; lower max_concurrency or set rpm/tpm."


_MODEL_MISSING_RE = re.compile(  # the answers of §2.6 of the API notes for an unknown model
    r"model (?:does )?not exist|model can ?not be found|model name is invalid", re.IGNORECASE
)
_MODEL_MISSING_CODES = ("ModelNotFound",)


def model_hint(error: ErrorBody, model: str | None) -> str:
    """``"did you mean X?"`` when the server says ``model`` does not exist and ``X`` is one edit
    away from it in the catalog; ``""`` otherwise."""
    if not model:
        return ""
    if error.code not in _MODEL_MISSING_CODES and not _MODEL_MISSING_RE.search(error.message):
        return ""
    suggestion = suggest_model(model)
    return f"did you mean {suggestion}?" if suggestion else ""


def make_status_error(
    status: int,
    error: ErrorBody,
    *,
    input_indices: Sequence[int] = (),
    retry_after: float | None = None,
    model: str | None = None,
) -> APIStatusError:
    """Map an HTTP status and DashScope code to the one matching exception class.

    ``model`` is the name the request sent: when the server answers that the model does not
    exist and the name is one edit away from a catalog name, the error's hint says
    ``did you mean <name>?``.
    """
    kw: dict[str, Any] = {
        "status": status,
        "code": error.code,
        "request_id": error.request_id,
        "input_indices": input_indices,
    }
    code, msg = error.code, error.message
    if code == "DataInspectionFailed" or "inappropriate content" in msg:
        return ContentModerationError(msg, **kw)
    if code == "Arrearage" or status == 403:
        return PermissionDeniedError(msg, **kw)
    if status == 401 or code in ("InvalidApiKey", "invalid_api_key"):
        return AuthenticationError(msg, hint=_REGION_HINT, **kw)
    if status == 429 or code.startswith("Throttling"):
        return RateLimitError(msg, retry_after=retry_after, hint=_THROTTLE_HINT, **kw)
    if status == 404:
        return NotFoundError(msg, hint=model_hint(error, model), **kw)
    if status == 408 or status >= 500:
        return ServerError(msg, **kw)
    limit = _BATCH_LIMIT_RE.search(msg)
    if limit and "batch size" in msg:
        return BatchSizeError(msg, limit=int(limit.group(1)), **kw)
    if _LENGTH_RE.search(msg):
        return InputTooLongError(msg, **kw)
    return BadRequestError(msg, hint=model_hint(error, model), **kw)
