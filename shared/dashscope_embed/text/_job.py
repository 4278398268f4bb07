"""The pure state of one text-embedding call: distinct texts in batches, vectors out in order.

Identical texts in one call are sent once (corpora of chunked documents repeat headers,
footers and boilerplate): the job batches the distinct texts and fans each vector out to every
position that holds the text, so the result still has one row per input, in input order, and
the usage is what was billed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dashscope_embed._engine._distinct import Distinct
from dashscope_embed._engine._job import (
    Assembly,
    Batch,
    JobContext,
    Outcome,
    StatusRules,
    batch_size,
    chunks,
)
from dashscope_embed._engine._retry import RetryPolicy
from dashscope_embed._errors import APIStatusError
from dashscope_embed._models import ModelSpec, get_model
from dashscope_embed._types import EmbeddingResult, OutputType, SparseVector, Usage
from dashscope_embed._wire import TEXT_EMBEDDING_PATH, build_text_body, dumps, parse_text_response

from ._options import TextOptions, validate_text_options, validate_texts

__all__ = ["TextJob", "text_job"]


@dataclass
class TextJob(Assembly, StatusRules):
    """All the state of one ``embed_texts`` call; safe to update from worker threads.

    Batches hold indices into the *distinct* texts; ``_fan`` maps them back to the caller's
    positions for errors, :meth:`partial` and :meth:`result`.
    """

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
        self._fan = Distinct(self.texts)
        self._distinct = [self.texts[p] for p in self._fan.first]
        self._sparse = [None] * len(self._distinct)

    @property
    def model(self) -> str:
        return self.opts.model

    def initial_batches(self) -> list[Batch]:
        return chunks(range(len(self._distinct)), self.batch_size)

    def body(self, batch: Batch) -> bytes:
        o = self.opts
        return dumps(
            build_text_body(
                o.model,
                [self._distinct[i] for i in batch.indices],
                text_type=o.text_type,
                dimension=o.dimension,
                output_type=o.output_type if o.output_type != "dense" else None,
                instruct=o.instruct,
            )
        )

    def estimated_tokens(self, batch: Batch) -> int:
        """A cheap upper-bound-ish token estimate, for quota pacing only."""
        return sum(len(self._distinct[i]) // 3 + 1 for i in batch.indices)

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
        with self._lock:
            if dense is not None:
                rows = len(self._distinct)
                origin = self._origin(batch.indices)
                self._put_dense(rows, batch.indices, dense, request_id, origin)
            if sparse is not None:
                for i, vec in zip(batch.indices, sparse, strict=True):
                    self._sparse[i] = vec
            self._count(batch, Usage(total_tokens=tokens, requests=1), request_id, batch.indices)
        if self.on_progress is not None:
            self.on_progress(self._fan.inputs(batch.indices))

    def _size(self) -> int:
        return len(self._distinct)

    def _assemble(self, rows: list[int] | None) -> EmbeddingResult:
        """Every input (``None``) or the caller's positions ``rows``, in that order."""
        pick = self._fan.pick(rows)
        n = len(self.texts) if rows is None else len(rows)
        if self._dense is None:
            dense = np.zeros((n, 0), dtype=np.float32)
        else:
            dense = self._dense if pick is None else self._dense[pick]
        sparse: tuple[SparseVector, ...] | None = None
        if self.opts.want_sparse:
            keys = range(len(self._distinct)) if pick is None else pick.tolist()
            picked = [self._sparse[k] for k in keys]
            if any(v is None for v in picked):  # pragma: no cover - guarded by result()/partial()
                raise APIStatusError("internal error: a row has no sparse vector", status=200)
            sparse = tuple(v for v in picked if v is not None)
        return EmbeddingResult(
            embeddings=dense,
            sparse=sparse,
            usage=self._usage,
            request_ids=tuple(self._request_ids[k] for k in sorted(self._request_ids)),
            model=self.opts.model,
            dimension=int(dense.shape[1]) if self.opts.want_dense else None,
        )


def text_job(
    texts: Sequence[str],
    *,
    model: str,
    text_type: str | None,
    dimension: int | None,
    output_type: OutputType,
    instruct: str | None,
    max_batch_size: int | None,
    on_progress: Callable[[int], None] | None,
    ctx: JobContext,
) -> TextJob | EmbeddingResult:
    """Validate one call and plan it (no I/O).

    Args:
        ctx: The client's region, retry policy and learned row limits.

    Returns:
        The job to run, or an empty result (nothing to send) for an empty input list.

    Raises:
        InvalidInputError: a bad option or text, naming the index and rule.
    """
    spec = get_model(model, kind="text")
    opts = TextOptions(model, text_type, dimension, output_type, instruct)
    validate_text_options(opts, spec, region=ctx.region)
    if spec.known and not spec.supports_dimension:
        # v1/v2 have one fixed dimension and reject the parameter: never send it.
        opts = TextOptions(model, text_type, None, output_type, instruct)
    items = validate_texts(texts)
    size = batch_size(spec, max_batch_size, ctx.learned.get(model))
    if not items:
        dim = dimension or (spec.default_dimension if spec.known else None)
        return EmbeddingResult.empty(
            model, dim if opts.want_dense else None, sparse=opts.want_sparse
        )
    return TextJob(
        items, opts, spec, size, ctx.policy, on_limit=ctx.on_limit, on_progress=on_progress
    )
