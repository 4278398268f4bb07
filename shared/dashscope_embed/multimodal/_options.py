"""The options of a multimodal call and the checks made before any request."""

from __future__ import annotations

from dataclasses import dataclass

from dashscope_embed._engine._job import check_dimension
from dashscope_embed._errors import (
    InvalidInputError,
)
from dashscope_embed._models import MODELS, ModelSpec

__all__ = ["DEFAULT_MULTIMODAL_MODEL", "MultimodalOptions", "validate_multimodal_options"]


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
    check_dimension(opts.dimension, spec)  # fixed / allowed values, as for text models
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
