"""Pure pieces of the Batch File API path: input lines, ``custom_id``s, result lines, row ranges.

No I/O. ``../shared/docs/dashscope-api.md`` §5a: one JSONL line per request, each line's
``body`` is an OpenAI-compatible embeddings request (§4)::

    {"custom_id":"40+10","method":"POST","url":"/v1/embeddings",
     "body":{"model":"text-embedding-v4","input":["…",…],"encoding_format":"float"}}

A ``custom_id`` names the input rows the line carries: ``"<first row>+<count>"``. It is stable
(the same input always gives the same ids) and enough on its own to put every result back in
its row, whichever file or retry it came from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dashscope_embed._errors import InvalidInputError
from dashscope_embed._wire import dumps, loads

__all__ = [
    "BATCH_CODES",
    "ENDPOINT",
    "MAX_FILE_BYTES",
    "MAX_LINES_PER_FILE",
    "MAX_LINE_BYTES",
    "TRANSIENT_CODES",
    "BatchFailure",
    "LineResult",
    "TextDigest",
    "add_failures",
    "build_line",
    "custom_id",
    "parse_custom_id",
    "parse_result_line",
    "retry_kind",
    "subtract_rows",
    "verify_input",
]

#: The Batch ``endpoint`` (and every line's ``url``) for embeddings.
ENDPOINT = "/v1/embeddings"
#: Documented limits of one input file (§5a.1): requests, bytes, bytes per line.
MAX_LINES_PER_FILE = 50_000
MAX_FILE_BYTES = 500 * 1024 * 1024
MAX_LINE_BYTES = 6 * 1024 * 1024

_CUSTOM_ID = re.compile(r"(\d+)\+(\d+)")
_END = object()  # end of an input iterator


def custom_id(start: int, count: int) -> str:
    """The id of a line carrying rows ``start .. start+count-1``."""
    return f"{start}+{count}"


def parse_custom_id(value: object) -> tuple[int, int] | None:
    """``(start, count)`` from a ``custom_id`` we wrote, or ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    match = _CUSTOM_ID.fullmatch(value)
    if match is None or int(match.group(2)) < 1:
        return None
    return int(match.group(1)), int(match.group(2))


def build_line(start: int, texts: Sequence[str], *, model: str, dimension: int | None) -> bytes:
    """One JSONL input line (with its newline) for rows ``start .. start+len(texts)-1``."""
    body: dict[str, object] = {"model": model, "input": list(texts), "encoding_format": "float"}
    if dimension is not None:
        body["dimensions"] = dimension
    line = {
        "custom_id": custom_id(start, len(texts)),
        "method": "POST",
        "url": ENDPOINT,
        "body": body,
    }
    return dumps(line) + b"\n"


class TextDigest:
    """SHA-256 over a run of texts, to prove a resumed job reads the same input."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, text: str) -> None:
        self._hash.update(text.encode("utf-8", "surrogatepass"))
        self._hash.update(b"\x00")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


#: Failure codes that say nothing about the rows themselves: the rows are sent again as they
#: are (one row per line) by :meth:`~._job.BatchJob.settle`.
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeOut",
        "InternalError",
        "InternalError.Algo",
        "InternalError.Timeout",
        "SystemError",
        "ModelUnavailable",
        "ModelServingError",
        "GatewayTimeout",
        "Throttling",
        "Throttling.RateQuota",
        "Throttling.BurstRate",
        "Throttling.AllocationQuota",
        "LimitRequests",
        "http_429",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
    }
)
#: Failures of the whole batch (not of a line): never narrowed or sent again automatically.
BATCH_CODES = frozenset({"batch_cancelled", "batch_expired", "missing_result", "batch_failed"})


def retry_kind(code: str, rows: int, *, batch_failed: bool = False) -> str:
    """How a failed line's rows are followed up: ``"transient"`` (send again), ``"split"`` (a
    line of several rows failed for a reason one row can cause: send each row alone, so only the
    bad one stays failed) or ``""`` (final)."""
    if batch_failed or code in BATCH_CODES:
        return ""
    if code in TRANSIENT_CODES or code.startswith("Throttling"):
        return "transient"
    return "split" if rows > 1 else ""


@dataclass(frozen=True)
class BatchFailure:
    """Rows ``start .. stop-1`` that have no vector, and why (the server's code and message).

    ``retry`` is ``"split"`` for rows of a multi-row line that failed for a reason a single row
    can cause (too long, moderation…), ``"transient"`` for a throttled or server-side failure,
    ``""`` once final.
    """

    start: int
    stop: int
    code: str
    message: str
    retry: str = ""

    def rows(self) -> range:
        return range(self.start, self.stop)

    def as_list(self) -> list[object]:
        return [self.start, self.stop, self.code, self.message, self.retry]

    @classmethod
    def from_list(cls, item: Sequence[object]) -> BatchFailure:
        start, stop, code, message, *rest = item
        retry = str(rest[0]) if rest else ""
        return cls(int(str(start)), int(str(stop)), str(code), str(message), retry)


def add_failures(existing: list[BatchFailure], new: Iterable[BatchFailure]) -> list[BatchFailure]:
    """Merge failures, sorted by row; adjacent ranges with the same code and message join."""
    merged: list[BatchFailure] = []
    for f in sorted([*existing, *new], key=lambda f: (f.start, f.stop)):
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.stop == f.start
            and (last.code, last.message, last.retry) == (f.code, f.message, f.retry)
        ):
            merged[-1] = BatchFailure(last.start, f.stop, f.code, f.message, f.retry)
        else:
            merged.append(f)
    return merged


def subtract_rows(failures: list[BatchFailure], rows: Iterable[int]) -> list[BatchFailure]:
    """Failures without ``rows`` (e.g. rows a retry has just embedded), ranges split as needed."""
    remove = sorted(set(rows))
    out: list[BatchFailure] = []
    for f in failures:
        lo = np.searchsorted(remove, f.start)
        hi = np.searchsorted(remove, f.stop)
        cursor = f.start
        for row in remove[int(lo) : int(hi)]:
            if row > cursor:
                out.append(BatchFailure(cursor, row, f.code, f.message, f.retry))
            cursor = row + 1
        if cursor < f.stop:
            out.append(BatchFailure(cursor, f.stop, f.code, f.message, f.retry))
    return out


@dataclass(frozen=True)
class LineResult:
    """One line of an output or error file, mapped back to its input rows.

    Attributes:
        start: First input row of the line.
        count: Rows in the line.
        vectors: ``(count, dim)`` float32 on success, else ``None``.
        tokens: ``usage.total_tokens`` of a successful line.
        code: Error code of a failed line (``""`` on success).
        message: Error message of a failed line.
        request_id: The line's request id.
    """

    start: int
    count: int
    vectors: npt.NDArray[np.float32] | None
    tokens: int = 0
    code: str = ""
    message: str = ""
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.vectors is not None


class ResultLineError(ValueError):
    """A result line we cannot map back to input rows (not written by this client)."""


def parse_result_line(raw: bytes) -> LineResult:
    """Parse one output/error-file line.

    Success: ``{"custom_id", "response": {"status_code": 200, "body": {"data": [...]}}}``; the
    vectors are placed by each item's ``index``. A failure: a non-null ``error{code,message}``, or
    a non-200 ``response`` whose body carries ``{"error": {...}}``.

    Raises:
        ResultLineError: no parseable ``custom_id``.
    """
    try:
        doc = loads(raw)
    except ValueError as exc:
        raise ResultLineError(f"result line is not JSON: {raw[:120]!r}") from exc
    rows = parse_custom_id(doc.get("custom_id") if isinstance(doc, dict) else None)
    if rows is None:
        raise ResultLineError(f"result line without a custom_id of ours: {raw[:120]!r}")
    start, count = rows
    response = doc.get("response") or {}
    rid = str(response.get("request_id") or doc.get("id") or "")
    error = doc.get("error")
    body = response.get("body") if isinstance(response, dict) else None
    status = response.get("status_code") if isinstance(response, dict) else None
    if error or status != 200 or not isinstance(body, dict):
        return _failed(start, count, rid, error, status, body)
    data = body.get("data")
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else 0
        return LineResult(
            start, count, None, 0, "protocol_error", f"expected {count} vectors, got {got}", rid
        )
    order: list[list[float]] = [[] for _ in range(count)]
    for pos, item in enumerate(data):
        index = item.get("index", pos) if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or order[index]:
            return LineResult(start, count, None, 0, "protocol_error", f"bad index {index!r}", rid)
        order[index] = item.get("embedding") or []
    try:
        vectors = np.array(order, dtype=np.float32)
    except ValueError:
        return LineResult(start, count, None, 0, "protocol_error", "ragged embeddings", rid)
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        return LineResult(start, count, None, 0, "protocol_error", "missing embeddings", rid)
    if np.isnan(vectors).any():  # a null numpy turned into NaN: never a silent NaN vector
        return LineResult(start, count, None, 0, "protocol_error", "null in embeddings", rid)
    usage = body.get("usage") or {}
    tokens = int(usage.get("total_tokens", 0) or 0)
    return LineResult(start, count, vectors, tokens, "", "", rid)


def _failed(
    start: int, count: int, rid: str, error: object, status: object, body: object
) -> LineResult:
    code, message = "", ""
    if isinstance(error, dict):
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
    if not code and isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner = body["error"]
        code = str(inner.get("code") or inner.get("type") or "")
        message = message or str(inner.get("message") or "")
    if not code:
        code = f"http_{status}" if isinstance(status, int) else "unknown_error"
    return LineResult(start, count, None, 0, code, message or "(no message)", rid)


def verify_input(
    texts: Iterable[object], spans: Sequence[tuple[int, int, str]]
) -> Iterator[tuple[int, str]]:
    """Yield ``(row, text)`` for the whole input while proving it is the job's input.

    ``spans`` are the job's contiguous parts in order, ``(start, stop, sha256 of their texts)``,
    covering rows ``0 .. total-1``. A part's digest is checked once its last row is read, so the
    proof is complete only when the generator is exhausted: consume it all before acting on it.

    Raises:
        InvalidInputError: a non-string, a text that differs, or an input shorter or longer than
            the job's (``rule="resume_mismatch"``).
    """
    it = iter(texts)
    row = 0
    for start, stop, sha256 in spans:
        digest = TextDigest()
        for row in range(start, stop):
            text = next(it, _END)
            if not isinstance(text, str):
                why = "ends" if text is _END else f"has a {type(text).__name__}"
                raise _mismatch(f"the input {why} at row {row}; the job has {spans[-1][1]} rows")
            digest.update(text)
            yield row, text
        row = stop
        if digest.hexdigest() != sha256:
            raise _mismatch(f"rows {start}..{stop - 1} differ from the ones the job sent")
    if next(it, _END) is not _END:
        raise _mismatch(f"the input has more than the job's {row} rows")


def _mismatch(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"{what}: give the job's own input (same texts, same order)", rule="resume_mismatch"
    )


def chunk_rows(texts: Iterable[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    """Group ``(row, text)`` pairs into lines of at most ``size`` consecutive rows."""
    line: list[tuple[int, str]] = []
    for row, text in texts:
        if line and (len(line) == size or row != line[-1][0] + 1):
            yield line
            line = []
        line.append((row, text))
    if line:
        yield line
