"""The pure state every embedding job shares: batches, outcomes, status rules, assembly.

A job (:class:`~dashscope_embed.text._job.TextJob`,
:class:`~dashscope_embed.multimodal._job.MultimodalJob`) splits its inputs into
:class:`Batch` es, builds each request body, and turns each answer into an :class:`Outcome`:
done, retry after a delay, re-split into smaller batches, or raise. The attempt loop in
:mod:`._attempt` asks the job; the client drivers only send bytes and sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

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
from dashscope_embed._status import make_status_error, parse_error_body, parse_retry_after
from dashscope_embed._types import EmbeddingResult, PartialResult, Usage
from dashscope_embed._wire import NotJSONError, ProtocolError

from ._distinct import Distinct
from ._retry import RetryPolicy

__all__ = [
    "Assembly",
    "Batch",
    "Job",
    "JobContext",
    "Outcome",
    "StatusRules",
    "batch_size",
    "check_dimension",
    "chunks",
]

logger = logging.getLogger("dashscope_embed")


@dataclass(frozen=True)
class JobContext:
    """What every job builder needs from its client (text and multimodal alike).

    Attributes:
        region: The client's region (``None`` when an explicit base URL turns region rules off).
        policy: The retry policy.
        learned: Row limits learned from the server so far, per model.
        on_limit: Called with a smaller row limit the server answered.
    """

    region: str | None
    policy: RetryPolicy
    learned: Mapping[str, int]
    on_limit: Callable[[str, int], None]


def batch_size(spec: ModelSpec, max_batch_size: int | None, learned: int | None) -> int:
    """Rows per request: the caller's ``max_batch_size``, else the model's, capped by learning.

    Raises:
        InvalidInputError: ``max_batch_size`` is not an int >= 1.
    """
    if max_batch_size is not None and (
        isinstance(max_batch_size, bool)
        or not isinstance(max_batch_size, int)
        or max_batch_size < 1
    ):
        raise InvalidInputError(
            f"max_batch_size must be an int >= 1, got {max_batch_size!r}", rule="max_batch_size"
        )
    size = max_batch_size or spec.max_batch_size
    return size if learned is None else min(size, learned)


def check_dimension(dimension: int | None, spec: ModelSpec) -> None:
    """Refuse a ``dimension`` the model cannot return, naming the allowed values.

    Raises:
        InvalidInputError: with ``rule="dimension"``.
    """
    if dimension is None:
        return
    if isinstance(dimension, bool) or not isinstance(dimension, int):
        raise InvalidInputError(f"dimension must be an int, got {dimension!r}", rule="dimension")
    if spec.known and not spec.supports_dimension and dimension != spec.default_dimension:
        raise InvalidInputError(
            f"{spec.name} has a fixed dimension of {spec.default_dimension}; "
            f"dimension={dimension} is not allowed",
            rule="dimension",
        )
    if spec.known and spec.dimensions and dimension not in spec.dimensions:
        allowed = ", ".join(str(d) for d in sorted(spec.dimensions, reverse=True))
        raise InvalidInputError(
            f"dimension={dimension} is not allowed for {spec.name}; allowed: {allowed}",
            rule="dimension",
        )


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
        self, batch: Batch, attempt: int, exc: Exception, *, timeout: bool, kind: str = ""
    ) -> Outcome: ...

    def result(self) -> EmbeddingResult: ...

    def partial(self) -> PartialResult: ...


def chunks(indices: Sequence[int], size: int) -> list[Batch]:
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

    def _origin(self, indices: Sequence[int]) -> tuple[int, ...]:
        """The caller's input positions behind a batch's rows (see :class:`Assembly`)."""
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
            except NotJSONError as exc:  # a proxy's HTML page: no answer from DashScope at all
                return self.on_transport_error(
                    batch, attempt, exc, timeout=False, kind="non-JSON answer"
                )
            except ProtocolError as exc:
                business = parse_error_body(body, headers)
                if not business.code:
                    err = APIStatusError(
                        f"malformed success response: {exc}",
                        status=200,
                        code="ProtocolError",
                        request_id=headers.get("x-request-id"),
                        input_indices=self._origin(batch.indices),
                    )
                    return Outcome("raise", error=err, status=status)
                # HTTP 200 carrying a business error code (the service's "two-layer" errors):
                # the same class, retry rule and message as if the status had said so.
                hint = self._retry_hint(headers)
                error = make_status_error(
                    200,
                    business,
                    input_indices=self._origin(batch.indices),
                    retry_after=hint,
                    model=self.model,
                )
        else:
            hint = self._retry_hint(headers)
            error = make_status_error(
                status,
                parse_error_body(body, headers),
                input_indices=self._origin(batch.indices),
                retry_after=hint,
                model=self.model,  # "did you mean text-embedding-v4?" for a misspelt name
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
        self, batch: Batch, attempt: int, exc: Exception, *, timeout: bool, kind: str = ""
    ) -> Outcome:
        """A request that got no usable answer is retried with backoff, then raised."""
        kind = kind or ("timeout" if timeout else "connection error")
        if attempt < self.policy.max_retries:
            delay = self.policy.delay(attempt)
            logger.debug(
                "retrying batch %s after %s (%r) in %.2fs", batch.indices[0], kind, exc, delay
            )
            return Outcome("retry", delay=delay, reason=kind, status=None)
        cls = APITimeoutError if timeout else APIConnectionError
        msg = f"{kind} after {attempt + 1} attempts: {exc!r}"
        return Outcome("raise", error=cls(msg, input_indices=self._origin(batch.indices)))

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
                    "split", batches=tuple(chunks(batch.indices, error.limit)), reason="batch_size"
                )
            return Outcome("raise", error=error)
        if isinstance(error, InputTooLongError):
            if len(batch.indices) > 1:  # bisect to name the offending input(s)
                half = len(batch.indices) // 2
                parts = (Batch(batch.indices[:half]), Batch(batch.indices[half:]))
                return Outcome("split", batches=parts, reason="locate_too_long")
            origin = self._origin(batch.indices)
            idx = origin[0]
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
                    input_indices=origin,
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
    """How a job stores rows as their answers arrive, and its ``result()`` / ``partial()``.

    A job provides ``_lock``, ``_done``, ``_rows_done``, ``_dense``, ``_usage``,
    ``_request_ids``, ``_fan`` (its :class:`~._distinct.Distinct` inputs), :meth:`_size` and
    :meth:`_assemble` (which maps caller positions to stored rows with ``_fan.pick``).
    """

    _lock: threading.Lock
    _done: int
    _rows_done: list[int]
    _dense: npt.NDArray[np.float32] | None
    _usage: Usage
    _request_ids: dict[int, str]
    _fan: Distinct

    def _put_dense(
        self,
        rows: int,
        positions: Sequence[int],
        dense: npt.NDArray[np.float32],
        request_id: str,
        indices: tuple[int, ...],
    ) -> None:
        """Store vectors at ``positions`` (lock held); the first answer fixes the dimension.

        Raises:
            APIStatusError: a later answer has another dimension (a protocol fault).
        """
        if self._dense is None:
            self._dense = np.empty((rows, dense.shape[1]), dtype=np.float32)
        elif dense.shape[1] != self._dense.shape[1]:
            raise APIStatusError(
                f"server returned {dense.shape[1]}-d vectors after {self._dense.shape[1]}-d ones",
                status=200,
                code="ProtocolError",
                request_id=request_id,
                input_indices=indices,
            )
        self._dense[np.asarray(positions, dtype=np.intp)] = dense

    def _count(self, batch: Batch, usage: Usage, request_id: str, stored: Sequence[int]) -> None:
        """Book one answered request (lock held): usage, request id, rows done."""
        self._usage = self._usage + usage
        self._request_ids[batch.indices[0]] = request_id
        self._done += len(batch.indices)
        self._rows_done.extend(stored)

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

    def _origin(self, indices: Sequence[int]) -> tuple[int, ...]:
        """Every caller position behind the distinct rows ``indices``."""
        return self._fan.origin(indices)

    def partial(self) -> PartialResult:
        """The caller's positions embedded so far, and their rows (for an error: what the
        failed call already paid for)."""
        with self._lock:
            rows = self._fan.done(self._rows_done)
            return PartialResult(tuple(rows), self._assemble(rows))
