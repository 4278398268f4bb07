"""Request bodies and response parsing of the multimodal endpoint (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dashscope_embed._types import Usage
from dashscope_embed._wire import NotJSONError, ProtocolError, dense_from_lists, loads

from ._options import MultimodalOptions

__all__ = [
    "MULTIMODAL_EMBEDDING_PATH",
    "MultimodalBatchResult",
    "build_multimodal_body",
    "parse_multimodal_response",
    "parse_usage",
]


MULTIMODAL_EMBEDDING_PATH = "/services/embeddings/multimodal-embedding/multimodal-embedding"


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
        NotJSONError: the body does not decode as JSON (a proxy's HTML page, say).
        ProtocolError: missing or duplicate ``index``, ragged vectors, or the wrong row count.
    """
    try:
        doc = loads(body)
    except ValueError as exc:  # every decoder's syntax error (and UnicodeDecodeError) is one
        raise NotJSONError(f"unexpected response body (not JSON): {body[:200]!r}") from exc
    try:
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
