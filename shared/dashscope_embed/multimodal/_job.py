"""The pure state of one multimodal-embedding call (``dashscope-api.md`` §3).

:func:`multimodal_job` validates the options against the model catalog, encodes every input
(:mod:`._media`) and plans the batches; :class:`MultimodalJob` builds each request body and turns
each answer into an :class:`~._plan.Outcome` with the same retry, split and error rules as text
jobs (it shares :class:`~._plan.StatusRules` with :class:`~._plan.TextJob`). The client shells
send and sleep.

Batches respect every per-request cap at once: the model's element limit, ``max_images`` and
``max_videos`` (a ``multi_images`` element counts each of its images). With
``enable_fusion=True`` (qwen3-vl-embedding) the whole call is one request and one vector."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

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
)
from dashscope_embed._engine._retry import RetryPolicy
from dashscope_embed._errors import (
    APIStatusError,
    BatchSizeError,
    InputTooLongError,
    InvalidInputError,
)
from dashscope_embed._models import ModelSpec, get_model
from dashscope_embed._types import EmbeddingResult, Usage
from dashscope_embed._wire import dumps

from ._encode import encode_inputs
from ._inputs import Element
from ._options import MultimodalOptions, validate_multimodal_options
from ._wire import (
    MULTIMODAL_EMBEDDING_PATH,
    MultimodalBatchResult,
    build_multimodal_body,
    parse_multimodal_response,
)

__all__ = ["MultimodalJob", "logger", "multimodal_job", "plan_batches"]


logger = logging.getLogger("dashscope_embed")


def plan_batches(
    elements: Sequence[Element], size: int, max_images: int | None, max_videos: int | None
) -> list[Batch]:
    """Greedy, order-keeping batches under the element, image and video caps at once.

    Raises:
        InvalidInputError: one element alone holds more images or videos than a request may.
    """
    batches: list[Batch] = []
    current: list[int] = []
    images = videos = 0
    for i, el in enumerate(elements):
        if max_images is not None and el.images > max_images:
            raise InvalidInputError(
                f"input {i} holds {el.images} images; this model takes at most {max_images} "
                "per request",
                index=i,
                rule="too_many_images",
            )
        if max_videos is not None and el.videos > max_videos:
            raise InvalidInputError(
                f"input {i} holds {el.videos} videos; this model takes at most {max_videos} "
                "per request",
                index=i,
                rule="too_many_videos",
            )
        full = (
            len(current) >= size
            or (max_images is not None and images + el.images > max_images)
            or (max_videos is not None and videos + el.videos > max_videos)
        )
        if current and full:
            batches.append(Batch(tuple(current)))
            current, images, videos = [], 0, 0
        current.append(i)
        images += el.images
        videos += el.videos
    if current:
        batches.append(Batch(tuple(current)))
    return batches


def _check_fusion_fits(elements: Sequence[Element], spec: ModelSpec, size: int) -> None:
    """With ``enable_fusion`` every input goes into one request: it must fit the caps."""
    images = sum(e.images for e in elements)
    videos = sum(e.videos for e in elements)
    problems = []
    if len(elements) > size:
        problems.append(f"{len(elements)} inputs (limit {size})")
    if spec.max_images is not None and images > spec.max_images:
        problems.append(f"{images} images (limit {spec.max_images})")
    if spec.max_videos is not None and videos > spec.max_videos:
        problems.append(f"{videos} videos (limit {spec.max_videos})")
    if problems:
        raise InvalidInputError(
            "enable_fusion=True embeds the whole call as one request and one vector, but it "
            f"holds {', '.join(problems)}",
            rule="enable_fusion",
        )


@dataclass
class MultimodalJob(Assembly, StatusRules):
    """All the state of one ``embed_multimodal`` call; safe to update from worker threads."""

    elements: list[Element]
    opts: MultimodalOptions
    spec: ModelSpec
    batch_size: int
    policy: RetryPolicy
    on_limit: Callable[[str, int], None] = lambda model, limit: None
    on_progress: Callable[[int], None] | None = None
    _dense: npt.NDArray[np.float32] | None = None
    _types: list[str] = field(default_factory=list)
    _usage: Usage = field(default_factory=Usage)
    _request_ids: dict[int, str] = field(default_factory=dict)
    _done: int = 0
    _rows_done: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    aborted: bool = False
    path: str = MULTIMODAL_EMBEDDING_PATH

    def __post_init__(self) -> None:
        # A fused call is one vector of everything: nothing to share between positions.
        keys = range(len(self.elements)) if self.fused else [e.key for e in self.elements]
        self._fan = Distinct(keys)
        self._distinct = [self.elements[p] for p in self._fan.first]
        self._types = [e.kind for e in self._distinct]

    @property
    def model(self) -> str:
        return self.opts.model

    @property
    def fused(self) -> bool:
        """Whether the whole call is one fused vector (``enable_fusion=True``)."""
        return bool(self.opts.enable_fusion)

    def initial_batches(self) -> list[Batch]:
        if self.fused:
            return [Batch(tuple(range(len(self._distinct))))]
        return plan_batches(
            self._distinct, self.batch_size, self.spec.max_images, self.spec.max_videos
        )

    def body(self, batch: Batch) -> bytes:
        contents = [self._distinct[i].content for i in batch.indices]
        return dumps(build_multimodal_body(self.opts.model, contents, self.opts))

    def estimated_tokens(self, batch: Batch) -> int:
        """A rough token estimate (texts by length, images and videos at a flat rate)."""
        return sum(self._distinct[i].tokens for i in batch.indices)

    def _on_status_error(
        self, batch: Batch, attempt: int, error: APIStatusError, retry_after: float | None
    ) -> Outcome:
        # A fused call is one vector: re-splitting it (row limit, bisecting a too-long input)
        # would change what is embedded, so those errors are raised as they are.
        if self.fused and isinstance(error, (BatchSizeError, InputTooLongError)):
            return Outcome("raise", error=error)
        return super()._on_status_error(batch, attempt, error, retry_after)

    def _accept(self, batch: Batch, headers: Mapping[str, str], body: bytes) -> Outcome:
        rows = 1 if self.fused else len(batch.indices)
        res = parse_multimodal_response(body, rows=rows, request_id=headers.get("x-request-id"))
        self._store(batch, res)
        return Outcome("done", status=200, tokens=res.usage.total_tokens, rows=rows)

    def _store(self, batch: Batch, res: MultimodalBatchResult) -> None:
        positions = [0] if self.fused else list(batch.indices)
        with self._lock:
            rows = 1 if self.fused else len(self._distinct)
            self._put_dense(rows, positions, res.dense, res.request_id, batch.indices)
            if self.fused:
                self._types = [res.types[0] or "fused"]
            else:
                for i, kind in zip(batch.indices, res.types, strict=True):
                    if kind is not None:
                        self._types[i] = kind
            self._count(batch, res.usage, res.request_id, positions)
        if self.on_progress is not None:
            self.on_progress(self._fan.inputs(batch.indices))

    def _size(self) -> int:
        return len(self._distinct)

    def _assemble(self, rows: list[int] | None) -> EmbeddingResult:
        """One row per input in input order (one row if fused), or just ``rows``."""
        dense = self._dense if self._dense is not None else np.zeros((0, 0), dtype=np.float32)
        types = self._types
        pick = None if self.fused else self._fan.pick(rows)
        if self.fused and rows is not None:
            pick = np.asarray(rows, dtype=np.intp)
        if pick is not None:
            dense = dense[pick] if self._dense is not None else dense
            types = [self._types[i] for i in pick.tolist()]
        return EmbeddingResult(
            embeddings=dense,
            sparse=None,
            usage=self._usage,
            request_ids=tuple(self._request_ids[k] for k in sorted(self._request_ids)),
            model=self.opts.model,
            dimension=int(dense.shape[1]),
            types=tuple(types),
        )


def multimodal_job(
    inputs: Sequence[object],
    *,
    model: str,
    dimension: int | None,
    fps: float | None,
    instruct: str | None,
    enable_fusion: bool | None,
    max_batch_size: int | None,
    on_progress: Callable[[int], None] | None,
    ctx: JobContext,
) -> MultimodalJob | EmbeddingResult:
    """Validate, encode and plan one call (no I/O but reading local images).

    Args:
        ctx: The client's region, retry policy and learned row limits.

    Returns:
        The job to run, or an empty result (nothing to send) for an empty input list.

    Raises:
        InvalidInputError: a bad option or input, naming the index and rule.
    """
    spec = get_model(model, kind="multimodal")
    opts = MultimodalOptions(model, dimension, fps, instruct, enable_fusion)
    validate_multimodal_options(opts, spec, region=ctx.region)
    size = batch_size(spec, max_batch_size, ctx.learned.get(model))
    elements = encode_inputs(inputs, spec)
    if not elements:
        return EmbeddingResult.empty(model, dimension or spec.default_dimension)
    # Send only what the model takes: a fixed dimension and enable_fusion=False on a model
    # without fusion change nothing, so they stay off the wire.
    if spec.known and not spec.supports_dimension:
        opts = replace(opts, dimension=None)
    if spec.known and not spec.supports_fusion and opts.enable_fusion is False:
        opts = replace(opts, enable_fusion=None)
    if opts.enable_fusion:
        _check_fusion_fits(elements, spec, size)
    return MultimodalJob(
        elements,
        opts,
        spec,
        size,
        ctx.policy,
        on_limit=ctx.on_limit,
        on_progress=on_progress,
    )
