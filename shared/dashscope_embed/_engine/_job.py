"""Input validation and the pure state of one text-embedding call (batches in, vectors out).

A :class:`TextJob` splits the inputs into batches, builds each request body, and turns each
answer into an :class:`Outcome`: done, retry after a delay, re-split into smaller batches, or
raise. The sync and async clients only send bytes and sleep; every decision is made here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from dashscope_embed._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BatchSizeError,
    DashScopeError,
    InputTooLongError,
    InvalidInputError,
    RateLimitError,
)
from dashscope_embed._models import ModelSpec
from dashscope_embed._types import EmbeddingResult, PartialResult, SparseVector, Usage
from dashscope_embed._wire import (
    TEXT_EMBEDDING_PATH,
    ProtocolError,
    build_text_body,
    dumps,
    make_status_error,
    parse_error_body,
    parse_retry_after,
    parse_text_response,
)

from ._retry import RetryPolicy

__all__ = [
    "Assembly",
    "Batch",
    "Job",
    "Outcome",
    "StatusRules",
    "TextJob",
    "TextOptions",
    "validate_text_options",
    "validate_texts",
]

logger = logging.getLogger("dashscope_embed")

TEXT_TYPES = ("query", "document")
OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")


@dataclass(frozen=True)
class TextOptions:
    """The per-call knobs that reach the wire."""

    model: str
    text_type: str | None = "document"
    dimension: int | None = None
    output_type: str = "dense"
    instruct: str | None = None

    @property
    def want_dense(self) -> bool:
        return self.output_type != "sparse"

    @property
    def want_sparse(self) -> bool:
        return self.output_type != "dense"


def validate_text_options(opts: TextOptions, spec: ModelSpec, *, region: str | None) -> None:
    """Reject an option the model cannot take, naming the allowed values.

    Raises:
        InvalidInputError: with ``rule`` set to the option's name.
    """
    if opts.text_type is not None and opts.text_type not in TEXT_TYPES:
        raise InvalidInputError(
            f"text_type must be one of {TEXT_TYPES}, got {opts.text_type!r}", rule="text_type"
        )
    if opts.output_type not in OUTPUT_TYPES:
        raise InvalidInputError(
            f"output_type must be one of {OUTPUT_TYPES}, got {opts.output_type!r}",
            rule="output_type",
        )
    if opts.want_sparse and spec.known and not spec.supports_sparse:
        raise InvalidInputError(
            f"{spec.name} has no sparse output; output_type {opts.output_type!r} needs one of: "
            "text-embedding-v3, text-embedding-v4, qwen3.7-text-embedding(-flash)",
            rule="output_type",
        )
    if opts.dimension is not None:
        if isinstance(opts.dimension, bool) or not isinstance(opts.dimension, int):
            raise InvalidInputError(
                f"dimension must be an int, got {opts.dimension!r}", rule="dimension"
            )
        if spec.known and not spec.supports_dimension and opts.dimension != spec.default_dimension:
            raise InvalidInputError(
                f"{spec.name} has a fixed dimension of {spec.default_dimension}; "
                f"dimension={opts.dimension} is not allowed",
                rule="dimension",
            )
        if spec.known and spec.dimensions and opts.dimension not in spec.dimensions:
            allowed = ", ".join(str(d) for d in sorted(spec.dimensions, reverse=True))
            raise InvalidInputError(
                f"dimension={opts.dimension} is not allowed for {spec.name}; allowed: {allowed}",
                rule="dimension",
            )
    if opts.instruct is not None:
        if not isinstance(opts.instruct, str) or not opts.instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string", rule="instruct")
        if opts.text_type != "query":
            raise InvalidInputError(
                "instruct only applies to queries: use text_type='query' (documents are "
                "embedded without an instruction)",
                rule="instruct",
            )
        if spec.known and not spec.supports_instruct:
            raise InvalidInputError(
                f"{spec.name} ignores instruct; models that take it: text-embedding-v4, "
                "qwen3.7-text-embedding(-flash)",
                rule="instruct",
            )
    if spec.refuses_region(region):
        raise InvalidInputError(
            f"{spec.name} is served only in {', '.join(spec.regions)}; this client is set to "
            f"region {region!r}",
            rule="region",
        )


def validate_texts(texts: Sequence[str]) -> list[str]:
    """Check every text before any request; nothing is dropped, stripped or replaced.

    Raises:
        InvalidInputError: a bare string instead of a list, a non-string item, or an empty /
            whitespace-only text, naming its index.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            "texts must be a list of strings, got a single string: wrap it as [text]",
            rule="not_a_list",
        )
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"input {i} is {type(text).__name__}, not str: every input must be a string",
                index=i,
                rule="not_a_string",
            )
        if not text.strip():
            raise InvalidInputError(
                f"input {i} is empty or whitespace only; DashScope rejects it with HTTP 400 "
                "(remove it or replace it yourself, keeping your own alignment)",
                index=i,
                rule="empty_text",
            )
    return out


@dataclass(frozen=True)
class Batch:
    """Positions (in the caller's input) sent together in one request."""

    indices: tuple[int, ...]


@dataclass(frozen=True)
class Outcome:
    """What the shell must do after one attempt."""

    kind: str  # "done" | "retry" | "split" | "raise"
    delay: float = 0.0
    batches: tuple[Batch, ...] = ()
    error: DashScopeError | None = None
    reason: str = ""
    status: int | None = None
    tokens: int = 0
    rows: int = 0
    retry_after: float | None = None


class Job(Protocol):
    """What the client shells need from a call's state (text and multimodal jobs alike)."""

    path: str
    aborted: bool

    @property
    def model(self) -> str: ...

    def initial_batches(self) -> list[Batch]: ...

    def body(self, batch: Batch) -> bytes: ...

    def estimated_tokens(self, batch: Batch) -> int: ...

    def on_response(
        self, batch: Batch, attempt: int, status: int, headers: Mapping[str, str], body: bytes
    ) -> Outcome: ...

    def on_transport_error(
        self, batch: Batch, attempt: int, exc: Exception, *, timeout: bool
    ) -> Outcome: ...

    def result(self) -> EmbeddingResult: ...

    def partial(self) -> PartialResult: ...


def _chunks(indices: Sequence[int], size: int) -> list[Batch]:
    return [Batch(tuple(indices[i : i + size])) for i in range(0, len(indices), size)]


class StatusRules:
    """How an answer becomes an :class:`Outcome`: shared by text and multimodal jobs.

    A job provides ``model``, ``spec``, ``policy``, ``on_limit`` and :meth:`_accept` (parse and
    store a success body); the retry, re-split and error rules here are the same for both.
    """

    spec: ModelSpec
    policy: RetryPolicy
    on_limit: Callable[[str, int], None]

    @property
    def model(self) -> str:
        raise NotImplementedError

    def _accept(self, batch: Batch, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Parse and store a 200 body (raises :class:`ProtocolError` on a malformed one)."""
        raise NotImplementedError

    def on_response(
        self, batch: Batch, attempt: int, status: int, headers: Mapping[str, str], body: bytes
    ) -> Outcome:
        """Turn one HTTP answer into an :class:`Outcome` (records vectors on success)."""
        logger.debug(
            "POST %s rows=%d attempt=%d -> HTTP %d request_id=%s",
            self.model,
            len(batch.indices),
            attempt + 1,
            status,
            headers.get("x-request-id"),
        )
        if status == 200:
            try:
                return self._accept(batch, headers, body)
            except ProtocolError as exc:
                business = parse_error_body(body, headers)
                if not business.code:
                    err = APIStatusError(
                        f"malformed success response: {exc}",
                        status=200,
                        code="ProtocolError",
                        request_id=headers.get("x-request-id"),
                        input_indices=batch.indices,
                    )
                    return Outcome("raise", error=err, status=status)
                # HTTP 200 carrying a business error code (the service's "two-layer" errors):
                # the same class, retry rule and message as if the status had said so.
                hint = self._retry_hint(headers)
                error = make_status_error(
                    200, business, input_indices=batch.indices, retry_after=hint
                )
        else:
            hint = self._retry_hint(headers)
            error = make_status_error(
                status,
                parse_error_body(body, headers),
                input_indices=batch.indices,
                retry_after=hint,
            )
        outcome = self._on_status_error(batch, attempt, error, hint)
        pause = hint if isinstance(error, RateLimitError) else None
        return replace(
            outcome, status=429 if isinstance(error, RateLimitError) else status, retry_after=pause
        )

    def _retry_hint(self, headers: Mapping[str, str]) -> float | None:
        """``Retry-After`` capped once, for the batch's own wait and the throttle's pause."""
        hint = parse_retry_after(headers)
        return None if hint is None else min(hint, self.policy.max_delay)

    def on_transport_error(
        self, batch: Batch, attempt: int, exc: Exception, *, timeout: bool
    ) -> Outcome:
        """A request that got no answer is retried with backoff, then raised."""
        kind = "timeout" if timeout else "connection error"
        if attempt < self.policy.max_retries:
            delay = self.policy.delay(attempt)
            logger.debug(
                "retrying batch %s after %s (%r) in %.2fs", batch.indices[0], kind, exc, delay
            )
            return Outcome("retry", delay=delay, reason=kind)
        cls = APITimeoutError if timeout else APIConnectionError
        msg = f"{kind} after {attempt + 1} attempts: {exc!r}"
        return Outcome("raise", error=cls(msg, input_indices=batch.indices))

    def _on_status_error(
        self, batch: Batch, attempt: int, error: APIStatusError, retry_after: float | None
    ) -> Outcome:
        if isinstance(error, BatchSizeError) and error.limit >= 1:
            if len(batch.indices) > error.limit:
                self.on_limit(self.model, error.limit)
                logger.debug(
                    "server row limit %d: re-splitting batch of %d", error.limit, len(batch.indices)
                )
                return Outcome(
                    "split", batches=tuple(_chunks(batch.indices, error.limit)), reason="batch_size"
                )
            return Outcome("raise", error=error)
        if isinstance(error, InputTooLongError):
            if len(batch.indices) > 1:  # bisect to name the offending input(s)
                half = len(batch.indices) // 2
                parts = (Batch(batch.indices[:half]), Batch(batch.indices[half:]))
                return Outcome("split", batches=parts, reason="locate_too_long")
            idx = batch.indices[0]
            detail = (
                f"input {idx} is longer than {self.spec.name} accepts "
                f"({self.spec.max_tokens} tokens per text); shorten or split it. "
                f"Server said: {error.message}"
            )
            return Outcome(
                "raise",
                error=InputTooLongError(
                    detail,
                    status=error.status,
                    code=error.code,
                    request_id=error.request_id,
                    input_indices=(idx,),
                ),
            )
        if self.policy.should_retry_status(error) and attempt < self.policy.max_retries:
            throttled = isinstance(error, RateLimitError)
            delay = self.policy.delay(attempt, retry_after=retry_after, throttled=throttled)
            logger.debug(
                "retrying batch %s after HTTP %s %s in %.2fs (request_id=%s)",
                batch.indices[0],
                error.status,
                error.code,
                delay,
                error.request_id,
            )
            return Outcome("retry", delay=delay, reason=error.code or str(error.status))
        return Outcome("raise", error=error)


class Assembly:
    """``result()`` and ``partial()`` of a job that stores rows as their answers arrive.

    A job provides ``_lock``, ``_done``, ``_rows_done``, :meth:`_size` and :meth:`_assemble`.
    """

    _lock: threading.Lock
    _done: int
    _rows_done: list[int]

    def _size(self) -> int:
        raise NotImplementedError

    def _assemble(self, rows: list[int] | None) -> EmbeddingResult:
        """Every row (``None``) or just ``rows``, in that order."""
        raise NotImplementedError

    def result(self) -> EmbeddingResult:
        """The assembled result; every input has its vector (checked)."""
        n = self._size()
        if self._done != n:  # pragma: no cover - guarded by the shells
            raise DashScopeError(f"internal error: {self._done} of {n} inputs embedded")
        return self._assemble(None)

    def partial(self) -> PartialResult:
        """The rows stored so far (for an error: what the failed call already paid for)."""
        with self._lock:
            rows = sorted(self._rows_done)
            return PartialResult(tuple(rows), self._assemble(rows))


@dataclass
class TextJob(Assembly, StatusRules):
    """All the state of one ``embed_texts`` call; safe to update from worker threads."""

    texts: list[str]
    opts: TextOptions
    spec: ModelSpec
    batch_size: int
    policy: RetryPolicy
    on_limit: Callable[[str, int], None] = lambda model, limit: None
    on_progress: Callable[[int], None] | None = None
    _dense: npt.NDArray[np.float32] | None = None
    _sparse: list[SparseVector | None] = field(default_factory=list)
    _usage: Usage = field(default_factory=Usage)
    _request_ids: dict[int, str] = field(default_factory=dict)
    _done: int = 0
    _rows_done: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    aborted: bool = False
    path: str = TEXT_EMBEDDING_PATH

    def __post_init__(self) -> None:
        self._sparse = [None] * len(self.texts)

    @property
    def model(self) -> str:
        return self.opts.model

    def initial_batches(self) -> list[Batch]:
        return _chunks(range(len(self.texts)), self.batch_size)  # type: ignore[arg-type]

    def body(self, batch: Batch) -> bytes:
        o = self.opts
        return dumps(
            build_text_body(
                o.model,
                [self.texts[i] for i in batch.indices],
                text_type=o.text_type,
                dimension=o.dimension,
                output_type=o.output_type if o.output_type != "dense" else None,
                instruct=o.instruct,
            )
        )

    def estimated_tokens(self, batch: Batch) -> int:
        """A cheap upper-bound-ish token estimate, for quota pacing only."""
        return sum(len(self.texts[i]) // 3 + 1 for i in batch.indices)

    def _accept(self, batch: Batch, headers: Mapping[str, str], body: bytes) -> Outcome:
        res = parse_text_response(
            body,
            rows=len(batch.indices),
            want_dense=self.opts.want_dense,
            want_sparse=self.opts.want_sparse,
            request_id=headers.get("x-request-id"),
        )
        self._store(batch, res.dense, res.sparse, res.total_tokens, res.request_id)
        return Outcome("done", status=200, tokens=res.total_tokens, rows=len(batch.indices))

    def _store(
        self,
        batch: Batch,
        dense: npt.NDArray[np.float32] | None,
        sparse: list[SparseVector] | None,
        tokens: int,
        request_id: str,
    ) -> None:
        idx = np.asarray(batch.indices)
        with self._lock:
            if dense is not None:
                if self._dense is None:
                    self._dense = np.empty((len(self.texts), dense.shape[1]), dtype=np.float32)
                elif dense.shape[1] != self._dense.shape[1]:
                    raise APIStatusError(
                        f"server returned {dense.shape[1]}-d vectors after "
                        f"{self._dense.shape[1]}-d ones",
                        status=200,
                        code="ProtocolError",
                        request_id=request_id,
                        input_indices=batch.indices,
                    )
                self._dense[idx] = dense
            if sparse is not None:
                for i, vec in zip(batch.indices, sparse, strict=True):
                    self._sparse[i] = vec
            self._usage = self._usage + Usage(total_tokens=tokens, requests=1)
            self._request_ids[batch.indices[0]] = request_id
            self._done += len(batch.indices)
            self._rows_done.extend(batch.indices)
        if self.on_progress is not None:
            self.on_progress(len(batch.indices))

    def _size(self) -> int:
        return len(self.texts)

    def _assemble(self, rows: list[int] | None) -> EmbeddingResult:
        n = len(self.texts) if rows is None else len(rows)
        dense = np.zeros((n, 0), dtype=np.float32) if self._dense is None else self._dense
        sparse: tuple[SparseVector, ...] | None = None
        if rows is not None:
            dense = dense[rows] if self._dense is not None else dense
        if self.opts.want_sparse:
            picked = self._sparse if rows is None else [self._sparse[i] for i in rows]
            sparse = tuple(v if v is not None else SparseVector((), ()) for v in picked)
        return EmbeddingResult(
            embeddings=dense,
            sparse=sparse,
            usage=self._usage,
            request_ids=tuple(self._request_ids[k] for k in sorted(self._request_ids)),
            model=self.opts.model,
            dimension=int(dense.shape[1]) if self.opts.want_dense else None,
        )


def describe_options(opts: TextOptions) -> dict[str, Any]:
    """The options as a plain dict (for logs and cache keys)."""
    return {
        "model": opts.model,
        "text_type": opts.text_type,
        "dimension": opts.dimension,
        "output_type": opts.output_type,
        "instruct": opts.instruct,
    }
