"""The pure state of one multimodal-embedding call (``dashscope-api.md`` §3).

:func:`multimodal_job` validates the options against the model catalog, encodes every input
(:mod:`._media`) and plans the batches; :class:`MultimodalJob` builds each request body and turns
each answer into an :class:`~._plan.Outcome` with the same retry, split and error rules as text
jobs (it shares :class:`~._plan.StatusRules` with :class:`~._plan.TextJob`). The client shells
send and sleep.

Batches respect every per-request cap at once: the model's element limit, ``max_images`` and
``max_videos`` (a ``multi_images`` element counts each of its images). With
``enable_fusion=True`` (qwen3-vl-embedding) the whole call is one request and one vector.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dashscope_embed._engine._job import (
    Assembly,
    Batch,
    Outcome,
    StatusRules,
    TextOptions,
    validate_text_options,
)
from dashscope_embed._engine._retry import RetryPolicy
from dashscope_embed._errors import (
    APIStatusError,
    BatchSizeError,
    InputTooLongError,
    InvalidInputError,
)
from dashscope_embed._models import MODELS, ModelSpec, get_model
from dashscope_embed._types import EmbeddingResult, Usage
from dashscope_embed._wire import ProtocolError, dense_from_lists, dumps, loads

from ._media import Element, encode_inputs

if TYPE_CHECKING:
    from dashscope_embed._base_client import BaseClient

__all__ = [
    "DEFAULT_MULTIMODAL_MODEL",
    "MULTIMODAL_EMBEDDING_PATH",
    "MultimodalBatchResult",
    "MultimodalJob",
    "MultimodalOptions",
    "build_multimodal_body",
    "multimodal_job",
    "parse_multimodal_response",
    "plan_batches",
    "validate_multimodal_options",
]

logger = logging.getLogger("dashscope_embed")

MULTIMODAL_EMBEDDING_PATH = "/services/embeddings/multimodal-embedding/multimodal-embedding"
#: Served in Beijing and Singapore, accepts ``dimension`` and ``multi_images``.
DEFAULT_MULTIMODAL_MODEL = "tongyi-embedding-vision-plus"


@dataclass(frozen=True)
class MultimodalOptions:
    """The per-call knobs that reach the wire (``None``: not sent)."""

    model: str
    dimension: int | None = None
    fps: float | None = None
    instruct: str | None = None
    enable_fusion: bool | None = None


_REGION_NAMES = {"cn-beijing": "Beijing", "ap-southeast-1": "Singapore"}


def _served_in(region: str) -> list[str]:
    return [
        s.name for s in MODELS.values() if s.kind == "multimodal" and not s.refuses_region(region)
    ]


def validate_multimodal_options(
    opts: MultimodalOptions, spec: ModelSpec, *, region: str | None
) -> None:
    """Reject an option the model cannot take, naming the allowed values.

    Args:
        opts: The call's options.
        spec: The model's catalog entry (unknown models are not checked).
        region: The client's region, or ``None`` when it was given an explicit ``base_url``.

    Raises:
        InvalidInputError: with ``rule`` set to the option's name.
    """
    if spec.known and spec.kind != "multimodal":
        raise InvalidInputError(
            f"{spec.name} is a text model; multimodal models: "
            + ", ".join(s.name for s in MODELS.values() if s.kind == "multimodal"),
            rule="model",
        )
    if region and spec.refuses_region(region):
        elsewhere = _served_in(region)
        hint = f"; multimodal models served there: {', '.join(elsewhere)}" if elsewhere else ""
        where = ", ".join(f"{r} ({_REGION_NAMES.get(r, r)})" for r in spec.regions)
        raise InvalidInputError(
            f"{spec.name} is served only in {where}; this client is set to region {region!r}{hint}",
            rule="region",
        )
    # dimension (fixed / whitelist) is checked exactly as for text models
    validate_text_options(TextOptions(spec.name, None, opts.dimension), spec, region=None)
    if opts.fps is not None:
        if isinstance(opts.fps, bool) or not isinstance(opts.fps, (int, float)):
            raise InvalidInputError(f"fps must be a number, got {opts.fps!r}", rule="fps")
        if not 0.0 <= float(opts.fps) <= 1.0:  # also refuses NaN
            raise InvalidInputError(
                f"fps is the share of video frames sampled, in [0, 1]; got {opts.fps!r}",
                rule="fps",
            )
    if opts.instruct is not None:
        if not isinstance(opts.instruct, str) or not opts.instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string", rule="instruct")
        if spec.known and not spec.supports_instruct:
            takes = [
                m.name for m in MODELS.values() if m.kind == "multimodal" and m.supports_instruct
            ]
            raise InvalidInputError(
                f"{spec.name} does not take instruct; models that do: {', '.join(takes)}",
                rule="instruct",
            )
    if opts.enable_fusion is not None:
        if not isinstance(opts.enable_fusion, bool):
            raise InvalidInputError(
                f"enable_fusion must be a bool, got {opts.enable_fusion!r}", rule="enable_fusion"
            )
        if opts.enable_fusion and spec.known and not spec.supports_fusion:
            raise InvalidInputError(
                f"{spec.name} does not take enable_fusion (qwen3-vl-embedding only); the "
                "tongyi-embedding-vision-*-2026-03-06 models fuse Fused(...) items instead",
                rule="enable_fusion",
            )


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


def build_multimodal_body(
    model: str, contents: Sequence[Mapping[str, Any]], opts: MultimodalOptions
) -> dict[str, Any]:
    """The native multimodal body; only the options the caller set go into ``parameters``."""
    parameters: dict[str, Any] = {}
    if opts.dimension is not None:
        parameters["dimension"] = opts.dimension
    if opts.fps is not None:
        parameters["fps"] = opts.fps
    if opts.instruct is not None:
        parameters["instruct"] = opts.instruct
    if opts.enable_fusion is not None:
        parameters["enable_fusion"] = opts.enable_fusion
    return {"model": model, "input": {"contents": list(contents)}, "parameters": parameters}


@dataclass(frozen=True)
class MultimodalBatchResult:
    """One successful response, rows in the batch's order."""

    dense: npt.NDArray[np.float32]
    types: tuple[str | None, ...]
    usage: Usage
    request_id: str


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def parse_usage(usage: object) -> Usage:
    """Every usage shape of §3.3 (tongyi ``input_tokens_details``, qwen3-vl top-level
    ``image_tokens``, multimodal-embedding-v1 ``image_count`` / ``duration``), one request."""
    if not isinstance(usage, dict):
        return Usage(requests=1)
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, dict) else {}
    input_tokens = int(_number(usage.get("input_tokens")))
    image_tokens = int(_number(usage.get("image_tokens", details.get("image_tokens"))))
    total = int(_number(usage.get("total_tokens"))) or input_tokens
    return Usage(
        total_tokens=total,
        requests=1,
        input_tokens=input_tokens,
        image_tokens=image_tokens,
        image_count=int(_number(usage.get("image_count"))),
        duration=_number(usage.get("duration")),
    )


def parse_multimodal_response(
    body: bytes, *, rows: int, request_id: str | None = None
) -> MultimodalBatchResult:
    """Parse a multimodal success body, placing each vector by ``index``.

    Raises:
        ProtocolError: missing or duplicate ``index``, ragged vectors, or the wrong row count.
    """
    try:
        doc = loads(body)
        items = doc["output"]["embeddings"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"unexpected response body: {body[:200]!r}") from exc
    if not isinstance(items, list) or len(items) != rows:
        got = len(items) if isinstance(items, list) else type(items).__name__
        raise ProtocolError(f"expected {rows} embeddings, got {got}")
    order = [-1] * rows
    for pos, item in enumerate(items):
        idx = item.get("index") if isinstance(item, dict) else None
        if not isinstance(idx, int) or not 0 <= idx < rows or order[idx] != -1:
            raise ProtocolError(f"bad or duplicate index {idx!r}")
        order[idx] = pos
    try:
        dense = dense_from_lists(items, order)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProtocolError("missing, ragged or null 'embedding' arrays") from exc
    types = tuple(t if isinstance(t := items[p].get("type"), str) and t else None for p in order)
    rid = doc.get("request_id") or request_id or ""
    return MultimodalBatchResult(dense, types, parse_usage(doc.get("usage")), str(rid))


@dataclass
class MultimodalJob(Assembly, StatusRules):
    """All the state of one ``embed_multimodal`` call; safe to update from worker threads."""

    elements: list[Element]
    opts: MultimodalOptions
    spec: ModelSpec
    batches: list[Batch]
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
        self._types = [e.kind for e in self.elements]

    @property
    def model(self) -> str:
        return self.opts.model

    @property
    def fused(self) -> bool:
        """Whether the whole call is one fused vector (``enable_fusion=True``)."""
        return bool(self.opts.enable_fusion)

    def initial_batches(self) -> list[Batch]:
        return list(self.batches)

    def body(self, batch: Batch) -> bytes:
        contents = [self.elements[i].content for i in batch.indices]
        return dumps(build_multimodal_body(self.opts.model, contents, self.opts))

    def estimated_tokens(self, batch: Batch) -> int:
        """A rough token estimate (texts by length, images and videos at a flat rate)."""
        return sum(self.elements[i].tokens for i in batch.indices)

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
            if self._dense is None:
                n = 1 if self.fused else len(self.elements)
                self._dense = np.empty((n, res.dense.shape[1]), dtype=np.float32)
            elif res.dense.shape[1] != self._dense.shape[1]:
                raise APIStatusError(
                    f"server returned {res.dense.shape[1]}-d vectors after "
                    f"{self._dense.shape[1]}-d ones",
                    status=200,
                    code="ProtocolError",
                    request_id=res.request_id,
                    input_indices=batch.indices,
                )
            self._dense[np.asarray(positions)] = res.dense
            if self.fused:
                self._types = [res.types[0] or "fused"]
            else:
                for i, kind in zip(batch.indices, res.types, strict=True):
                    if kind is not None:
                        self._types[i] = kind
            self._usage = self._usage + res.usage
            self._request_ids[batch.indices[0]] = res.request_id
            self._done += len(batch.indices)
            self._rows_done.extend(positions)
        if self.on_progress is not None:
            self.on_progress(len(batch.indices))

    def _size(self) -> int:
        return len(self.elements)

    def _assemble(self, rows: list[int] | None) -> EmbeddingResult:
        """One row per input in input order (one row if fused), or just ``rows``."""
        dense = self._dense if self._dense is not None else np.zeros((0, 0), dtype=np.float32)
        types = self._types
        if rows is not None:
            dense = dense[rows] if self._dense is not None else dense
            types = [self._types[i] for i in rows]
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
    client: BaseClient,
    inputs: Sequence[object],
    *,
    model: str,
    dimension: int | None,
    fps: float | None,
    instruct: str | None,
    enable_fusion: bool | None,
    max_batch_size: int | None,
    on_progress: Callable[[int], None] | None,
) -> MultimodalJob | EmbeddingResult:
    """Validate, encode and plan one call (no I/O but reading local images).

    Returns:
        The job to run, or an empty result (nothing to send) for an empty input list.

    Raises:
        InvalidInputError: a bad option or input, naming the index and rule.
    """
    spec = get_model(model, kind="multimodal")
    opts = MultimodalOptions(model, dimension, fps, instruct, enable_fusion)
    region = client.config.region  # None when base_url was given explicitly
    validate_multimodal_options(opts, spec, region=region)
    bad_size = isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int)
    if max_batch_size is not None and (bad_size or max_batch_size < 1):
        raise InvalidInputError(
            f"max_batch_size must be an int >= 1, got {max_batch_size!r}", rule="max_batch_size"
        )
    elements = encode_inputs(inputs, spec)
    if not elements:
        return EmbeddingResult.empty(model, dimension or spec.default_dimension)
    # Send only what the model takes: a fixed dimension and enable_fusion=False on a model
    # without fusion change nothing, so they stay off the wire.
    if spec.known and not spec.supports_dimension:
        opts = replace(opts, dimension=None)
    if spec.known and not spec.supports_fusion and opts.enable_fusion is False:
        opts = replace(opts, enable_fusion=None)
    size = max_batch_size or spec.max_batch_size
    learned = client.learned_limits.get(model)
    if learned is not None:
        size = min(size, learned)
    if opts.enable_fusion:
        _check_fusion_fits(elements, spec, size)
        batches = [Batch(tuple(range(len(elements))))]
    else:
        batches = plan_batches(elements, size, spec.max_images, spec.max_videos)
    return MultimodalJob(
        elements,
        opts,
        spec,
        batches,
        client._policy,
        on_limit=client._remember_limit,
        on_progress=on_progress,
    )
