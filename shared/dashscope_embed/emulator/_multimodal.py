"""The multimodal embedding endpoint (``dashscope-api.md`` §3) and its deterministic vectors.

Request and response shapes follow §3.2-3.3, including the per-model ``usage`` shapes. Messages the
doc did not record are marked "invented" and keep the shape of the real ones.

**Vectors are not the real model's.** Nothing is fetched or decoded. An image is a *label* plus
a *fingerprint*:

- the label comes from a PNG ``tEXt`` chunk named ``label`` (test fixtures write one), or, for a
  URL, from its ``label=`` query parameter or else its file name (``https://img.test/red-car.png``
  → ``"red car"``); digits-only words are dropped;
- the fingerprint is the image's bytes (a data URI) or the URL string.

Its vector is ``normalise(text(label) + 0.35 · noise(fingerprint))`` at the model's full width,
where ``text`` is exactly the emulator's text vector for the label. So a text and an image that
share a label score a cosine ≈ 0.94, two images with the same label ≈ 0.89, and unrelated ones
≈ 0: text→image and image→image search can be tested meaningfully. An unlabelled image is its
noise alone. A video works like a URL image. ``multi_images``, a fused item and a call with
``enable_fusion`` sum their parts' vectors. As for text, a smaller ``dimension`` is the
renormalised prefix of the full vector."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dashscope_embed._models import ModelSpec
from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._format import format_rows
from dashscope_embed.emulator._text import (
    BAD_PARAMETERS,
    EMPTY_INPUT,
    EMPTY_MODEL,
    ILLEGAL_INPUT,
    MODEL_NOT_EXIST,
    batch_size_message,
)
from dashscope_embed.emulator._uploads import resolve_contents

from ._mm_checks import _Check, _invalid, _parameters, _parse
from ._mm_vectors import VIDEO_SECONDS, _at, _full_item

__all__ = ["MULTIMODAL_PATH", "PATH_PATTERN", "handle_multimodal"]


if TYPE_CHECKING:
    from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse


MULTIMODAL_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"


#: The route pattern registered in ``_app.DEFAULT_ROUTES``.
PATH_PATTERN = re.compile(re.escape(MULTIMODAL_PATH))


def _usage(spec: ModelSpec, check: _Check) -> dict[str, Any]:
    """The model's usage shape (§3.3): tongyi details, qwen3-vl image_tokens, v1 legacy."""
    total = check.tokens + check.image_tokens
    if spec.name.startswith("tongyi-embedding-vision"):
        details = {"image_tokens": check.image_tokens, "text_tokens": check.tokens}
        return {
            "input_tokens": total,
            "input_tokens_details": details,
            "output_tokens": 0,
            "total_tokens": total,
        }
    if spec.name == "multimodal-embedding-v1":
        usage: dict[str, Any] = {"input_tokens": check.tokens, "image_count": check.images}
        if check.videos:
            usage["duration"] = VIDEO_SECONDS * check.videos
        return usage
    return {"input_tokens": total, "image_tokens": check.image_tokens}


def handle_multimodal(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``POST /api/v1/services/embeddings/multimodal-embedding/multimodal-embedding`` (§3)."""
    body = _parse(req)
    name = body.get("model")
    if name in (None, ""):
        raise Rejection(400, *EMPTY_MODEL)
    spec = emu.model_spec(name, kind="multimodal") if isinstance(name, str) else None
    if spec is None:
        raise Rejection(400, "InvalidParameter", MODEL_NOT_EXIST)
    payload = body.get("input")
    if payload is None:
        raise Rejection(400, *EMPTY_INPUT)
    if not isinstance(payload, dict):
        raise Rejection(400, *ILLEGAL_INPUT)
    contents = payload.get("contents")
    if contents is None or contents == []:
        raise Rejection(400, *EMPTY_INPUT)
    if not isinstance(contents, list):
        raise _invalid("Value error, contents should be a list.: input.contents")  # invented
    contents = resolve_contents(emu, req, contents)  # oss:// uploads → their stored bytes
    limit = emu.row_limit(spec)
    if len(contents) > limit:
        raise Rejection(400, "InvalidParameter", batch_size_message(limit))
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise Rejection(400, "InvalidParameter", BAD_PARAMETERS)
    dimension, fusion, instruct = _parameters(spec, parameters)
    check = _Check(spec)
    for index, item in enumerate(contents):
        check.item(item, index)
    check.limits()
    emu.admit(spec.name, tokens=check.tokens + check.image_tokens, rows=len(contents))

    width = spec.max_dimension
    fulls = [_full_item(spec.name, width, item, instruct) for item in contents]
    if fusion:
        total = np.sum(fulls, axis=0).astype(np.float32)
        vectors = [_at(total, dimension)]
        kinds = ["fused"]
    else:
        vectors = [_at(full, dimension) for full in fulls]
        kinds = [_kind(item) for item in contents]
    rows = format_rows(np.array(vectors))
    items = [
        b'{"index":%d,"embedding":%s,"type":"%s"}' % (i, row, kind.encode())
        for i, (row, kind) in enumerate(zip(rows, kinds, strict=True))
    ]
    request_id = emu.new_request_id()
    usage = json.dumps(_usage(spec, check), separators=(",", ":")).encode()
    out = b'{"output":{"embeddings":[%s]},"usage":%s,"request_id":"%s"}' % (
        b",".join(items),
        usage,
        request_id.encode(),
    )
    return emu.respond(out, request_id)


def _kind(item: Mapping[str, Any]) -> str:
    # The doc names text | image | video; the type of fused and multi_images items is not
    # documented (§11.6), so the emulator answers "fused" and "multi_images".
    if len(item) > 1:
        return "fused"
    return next(iter(item))
