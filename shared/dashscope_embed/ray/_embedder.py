"""A Ray Data callable class: one text column in, vector (and sparse, and error) columns out.

Ray Data builds one instance per worker of an actor pool (``map_batches(DashScopeEmbedder,
compute=ray.data.ActorPoolStrategy(size=N))``), so each worker keeps one client (one connection
pool, one admission control) for every batch it embeds.

Rows are never dropped. With ``on_error="raise"`` the first failure stops the job (naming the
rows); with ``on_error="column"`` a failed row keeps its place with a null/NaN vector and the
reason in the error column. To name the failed rows of a batch, a failed call is re-run on
smaller groups:

* a 400 that names one input (over-long text): that row fails, the rows around it are retried;
* any other 400 (content moderation...): the rows of the failed request, then halves, down to
  single rows;
* 429, 5xx, timeouts and lost connections after the core's retries: the rows of that request
  fail as they are (the service, not their content, is the problem: re-run them later, e.g.
  with :func:`embed_files`), the other rows are re-run;
* a bad key, a missing model or permission, a bad option: raised, whatever ``on_error`` says
  (every row would fail the same way).
"""

from __future__ import annotations

import re
import sys
from typing import Any, Literal

import numpy as np

from dashscope_embed import (
    DEFAULT_TEXT_MODEL,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClientStats,
    ConfigurationError,
    DashScopeClient,
    DashScopeError,
    EmbeddingResult,
    InvalidInputError,
    NotFoundError,
    OutputType,
    PermissionDeniedError,
    SparseVector,
    TextType,
)
from dashscope_embed._config import DEFAULT_MAX_CONCURRENCY
from dashscope_embed.ray._batch import Columns, batch_kind, read_column, write_columns
from dashscope_embed.ray._shared import SharedQuota

from ._quota import LeasedThrottle

__all__ = ["DashScopeEmbedder", "OnError"]

OnError = Literal["raise", "column"]

#: Errors that no smaller group can fix: raised whatever ``on_error`` says.
_FATAL = (
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    ConfigurationError,
    InvalidInputError,
)
_POSITION = re.compile(r"^input \d+ ")  # the core names a position in its own call's input


def describe(exc: DashScopeError) -> str:
    """One line for the error column: the error type, HTTP status, code, message, request id."""
    name = type(exc).__name__
    if not isinstance(exc, APIStatusError):
        return f"{name}: {exc}"
    text = f"{name}: HTTP {exc.status}"
    if exc.code:
        text += f" {exc.code}"
    text += ": " + _POSITION.sub("the text ", exc.message)
    if exc.request_id:
        text += f" [request_id={exc.request_id}]"
    return text


def _text_problem(value: object) -> tuple[str, str] | None:
    """Why ``value`` cannot be sent (rule, message), or ``None`` if it can."""
    if value is None:
        return "null_text", "the text is null"
    if not isinstance(value, str):
        return "not_a_string", f"the text is {type(value).__name__}, not str"
    if not value.strip():
        return "empty_text", "the text is empty or whitespace only (DashScope rejects it)"
    return None


class DashScopeEmbedder:
    """Embed a text column for ``Dataset.map_batches`` (batch formats pyarrow, pandas, numpy).

    Every option that changes the vectors is an argument; the client is created once per worker.
    Keep the API key out of the arguments where you can (they travel in the task spec): set
    ``DASHSCOPE_API_KEY`` on the workers, e.g. with ``ray.init(runtime_env={"env_vars": ...})``.

    Args:
        text_column: The column to embed.
        vector_column: Dense vectors (float32), omitted for ``output_type="sparse"``.
        sparse_column: Sparse vectors ``{indices, values}`` (unique ascending indices), added
            when ``output_type`` includes sparse.
        error_column: Why a row failed; null where it has its vectors.
        id_column: A column naming rows in raised errors (optional).
        on_error: ``"raise"`` (default) stops at the first failed row; ``"column"`` reports
            failed rows in ``error_column`` with a null/NaN vector.
        model: Model id (default ``text-embedding-v4``).
        dimension: Output dimension (validated against the model).
        text_type: ``"document"`` (default), ``"query"`` or ``None`` (not sent).
        instruct: Task instruction (queries only, ``text_type="query"``).
        output_type: ``"dense"``, ``"sparse"`` or ``"dense&sparse"``.
        max_batch_size: Rows per request (default: the model's limit).
        quota: A :class:`SharedQuota` shared by every worker of the job (recommended).
        lease_size: Permits a worker leases from ``quota`` at a time.
        api_key: API key; defaults to ``DASHSCOPE_API_KEY`` on the worker.
        region: Region preset; defaults to ``DASHSCOPE_REGION``.
        base_url: Explicit host (an emulator URL, say); defaults to ``DASHSCOPE_BASE_URL``.
        workspace: Workspace id; defaults to ``DASHSCOPE_WORKSPACE``.
        timeout: Seconds per request.
        max_retries: Retries per request on 408/429/5xx/connection errors.
        max_concurrency: Requests in flight per worker.
        rpm: Per-worker requests-per-minute cap (without ``quota``; see :class:`SharedQuota`).
        tpm: Per-worker tokens-per-minute cap (without ``quota``).

    Raises:
        InvalidInputError: an option the model cannot take (at construction, no request sent).
        ValueError: ``rpm``/``tpm`` together with ``quota`` (the quota holds the limits).
    """

    def __init__(
        self,
        *,
        text_column: str = "text",
        vector_column: str = "embedding",
        sparse_column: str = "sparse_embedding",
        error_column: str = "embedding_error",
        id_column: str | None = None,
        on_error: OnError = "raise",
        model: str = DEFAULT_TEXT_MODEL,
        dimension: int | None = None,
        text_type: TextType | None = "document",
        instruct: str | None = None,
        output_type: OutputType = "dense",
        max_batch_size: int | None = None,
        quota: SharedQuota | None = None,
        lease_size: int = 8,
        api_key: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
    ) -> None:
        if on_error not in ("raise", "column"):
            raise ValueError(f"on_error must be 'raise' or 'column', got {on_error!r}")
        if quota is not None and (rpm is not None or tpm is not None):
            raise ValueError("with a SharedQuota, set rpm/tpm on the quota (they are per account)")
        self.text_column = text_column
        self.vector_column = vector_column
        self.sparse_column = sparse_column
        self.error_column = error_column
        self.id_column = id_column
        self.on_error = on_error
        self.model = model
        self.dimension = dimension
        self.text_type = text_type
        self.instruct = instruct
        self.output_type = output_type
        self.max_batch_size = max_batch_size
        self._throttle: LeasedThrottle | None = None
        if quota is not None:
            self._throttle = quota.throttle(
                max_concurrency=max_concurrency or DEFAULT_MAX_CONCURRENCY, lease_size=lease_size
            )
        self._client = DashScopeClient(
            api_key,
            region=region,
            base_url=base_url,
            workspace=workspace,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            rpm=rpm,
            tpm=tpm,
            throttle=self._throttle,
        )
        self._dim = self._embed([]).dimension  # validates the options; sends nothing

    @property
    def stats(self) -> ClientStats:
        """This worker's client counters (requests, retries, 429s, tokens)."""
        return self._client.stats

    def close(self) -> None:
        """Report outstanding outcomes to the quota and close the connection pool."""
        if self._throttle is not None:
            self._throttle.flush(give_back=True)
        self._client.close()

    def __repr__(self) -> str:
        return (
            f"DashScopeEmbedder(model={self.model!r}, dimension={self.dimension!r}, "
            f"output_type={self.output_type!r}, text_column={self.text_column!r}, "
            f"on_error={self.on_error!r}, client={self._client!r})"
        )

    def _embed(self, texts: list[str]) -> EmbeddingResult:
        return self._client.embed_texts(
            texts,
            model=self.model,
            text_type=self.text_type,
            dimension=self.dimension,
            output_type=self.output_type,
            instruct=self.instruct,
            max_batch_size=self.max_batch_size,
        )

    def __call__(self, batch: Any) -> Any:
        """Embed one batch; returns it (same format) with the new columns, every row kept."""
        kind = batch_kind(batch)
        values = read_column(batch, kind, self.text_column)
        ids = read_column(batch, kind, self.id_column) if self.id_column else None
        errors: list[str | None] = [None] * len(values)
        valid: list[int] = []
        for row, value in enumerate(values):
            problem = _text_problem(value)
            if problem is None:
                valid.append(row)
            elif self.on_error == "raise":
                raise InvalidInputError(
                    f"row {row}{_id_note(ids, [row])}: {problem[1]}", index=row, rule=problem[0]
                )
            else:
                errors[row] = f"InvalidInputError: {problem[1]}"
        texts = [str(v) for v in values]
        try:
            done = self._embed_rows(texts, valid, errors, ids)
        finally:  # an idle worker holds no permit: the others may need the shared window
            if self._throttle is not None:
                self._throttle.flush(give_back=True)
        return write_columns(
            batch,
            kind,
            self._columns(len(values), done, errors),
            vector_column=self.vector_column,
            sparse_column=self.sparse_column,
            error_column=self.error_column,
        )

    def _embed_rows(
        self,
        texts: list[str],
        rows: list[int],
        errors: list[str | None],
        ids: list[object] | None,
    ) -> list[tuple[list[int], EmbeddingResult]]:
        """Embed ``rows``; on failure re-run smaller groups until every row is done or failed.

        Rows the failed call had already embedded (``exc.partial``) are kept, never re-sent.
        """
        done: list[tuple[list[int], EmbeddingResult]] = []
        pending = [rows] if rows else []
        while pending:
            group = pending.pop()
            try:
                result = self._embed([texts[i] for i in group])
            except _FATAL:
                raise
            except DashScopeError as exc:
                named = [group[i] for i in getattr(exc, "input_indices", ()) if i < len(group)]
                if self.on_error == "raise":
                    if sys.version_info >= (3, 11):
                        note = f"failed rows of the Ray batch: {(named or group)[:20]}"
                        exc.add_note(note + _id_note(ids, named or group))
                    raise
                kept = exc.partial
                if kept is not None and kept.rows:
                    done.append(([group[i] for i in kept.rows], kept.result))
                    paid = set(kept.rows)
                    group = [row for i, row in enumerate(group) if i not in paid]
                if group:
                    pending.extend(_narrow(exc, group, named, errors))
                continue
            done.append((group, result))
        return done

    def _columns(
        self, n: int, done: list[tuple[list[int], EmbeddingResult]], errors: list[str | None]
    ) -> Columns:
        failed = np.array([e is not None for e in errors], dtype=bool)
        dense = None
        if self.output_type != "sparse":
            dim = next((r.embeddings.shape[1] for _, r in done), self._dim or 0)
            dense = np.full((n, dim), np.nan, dtype=np.float32)
            for rows, result in done:
                dense[rows] = result.embeddings
        sparse: list[SparseVector | None] | None = None
        if self.output_type != "dense":
            sparse = [None] * n
            for rows, result in done:
                for row, vec in zip(rows, result.sparse or (), strict=True):
                    sparse[row] = vec
        return Columns(dense=dense, failed=failed, sparse=sparse, errors=errors)


def _narrow(
    exc: DashScopeError, group: list[int], named: list[int], errors: list[str | None]
) -> list[list[int]]:
    """Record what a failed group tells about its rows; return the groups to try again.

    ``named`` are the rows of the request that failed (the core stops a call at the first
    failure, so the other rows of ``group`` are not known to be bad).
    """
    if len(group) == 1:
        errors[group[0]] = describe(exc)
        return []
    if isinstance(exc, BadRequestError):
        if len(named) == 1:  # the core located the row (over-long text)
            errors[named[0]] = describe(exc)
            k = group.index(named[0])
            return [g for g in (group[:k], group[k + 1 :]) if g]
        if 1 < len(named) < len(group):  # the rows of the failed request are the suspects
            suspects = set(named)
            return [[r for r in group if r not in suspects], named]
        half = len(group) // 2
        return [group[:half], group[half:]]
    # 429, 5xx or no answer after the core's retries: the service failed these rows, not their
    # content, so they are reported as they are (and re-run later); the others are re-run now.
    failed = set(named or group)
    for row in failed:
        errors[row] = describe(exc)
    others = [r for r in group if r not in failed]
    return [others] if others else []


def _id_note(ids: list[object] | None, rows: list[int]) -> str:
    if ids is None:
        return ""
    return f" (ids {[ids[r] for r in rows[:20]]})"
