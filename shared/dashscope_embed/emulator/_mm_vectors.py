"""The emulator's multimodal vectors: one space for texts, images and videos.

An image's vector is its label's text vector plus fixed noise from its bytes, so a text
query finds the image it names, as a real model would.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import numpy.typing as npt

from dashscope_embed._models import MODELS, ModelSpec

from ._mm_checks import _DATA_URI_RE
from ._vectors import text_vectors

__all__ = [
    "IMAGE_NOISE",
    "VIDEO_SECONDS",
    "Vector",
    "image_label",
    "image_vector",
    "multimodal_vector",
    "png_text_label",
]


#: Weight of an image's fingerprint noise against its label's text vector.
IMAGE_NOISE = 0.35


#: Seconds of video reported per video in ``usage.duration`` (the emulator does not decode).
VIDEO_SECONDS = 10.0


Vector = npt.NDArray[np.float32]


def png_text_label(data: bytes) -> str | None:
    """The ``label`` entry of a PNG's ``tEXt`` chunks, if any."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = chunk.partition(b"\x00")
            if key == b"label":
                return value.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return None


def _clean(label: str) -> str | None:
    words = [w for w in re.split(r"[\s_\-.+]+", label) if w and not w.isdigit()]
    return " ".join(words) or None


def image_label(image: str) -> str | None:
    """The label the emulator reads from an image value (a URL or a data URI).

    Args:
        image: ``data:image/…;base64,…`` (label from a PNG ``tEXt`` chunk named ``label``) or an
            http(s) URL (its ``label=`` query parameter, else its file name).

    Returns:
        The label, or ``None`` for an unlabelled image.
    """
    if image.startswith("data:"):
        match = _DATA_URI_RE.fullmatch(image)
        if match is None:
            return None
        try:
            data = base64.b64decode(match.group(3), validate=True)
        except (binascii.Error, ValueError):
            return None
        label = png_text_label(data)
        return _clean(label) if label else None
    parts = urlsplit(image)
    query = parse_qs(parts.query).get("label")
    if query:
        return _clean(query[0])
    return _clean(PurePosixPath(unquote(parts.path)).stem)


def _fingerprint(value: str) -> bytes:
    if value.startswith("data:"):
        match = _DATA_URI_RE.fullmatch(value)
        if match is not None:
            try:
                return base64.b64decode(match.group(3), validate=True)
            except (binascii.Error, ValueError):
                pass
    return value.encode()


def _noise(fingerprint: bytes, width: int) -> Vector:
    seed = int.from_bytes(hashlib.blake2b(fingerprint, digest_size=8).digest(), "little")
    noise = np.random.default_rng(seed).standard_normal(width)
    return (noise / np.linalg.norm(noise)).astype(np.float32)


def _full_text(model: str, width: int, text: str, instruct: str | None) -> Vector:
    row: Vector = text_vectors(
        model, [text], dimension=width, instruct=instruct, max_dimension=width
    )[0]
    return row


def _full_media(model: str, width: int, value: str) -> Vector:
    """Label text vector plus fingerprint noise (or the noise alone), unit length."""
    noise = _noise(_fingerprint(value), width)
    label = image_label(value)
    if label is None:
        return noise
    full = _full_text(model, width, label, None) + IMAGE_NOISE * noise
    out: Vector = (full / np.linalg.norm(full)).astype(np.float32)
    return out


def _full_item(model: str, width: int, item: Mapping[str, Any], instruct: str | None) -> Vector:
    parts: list[Vector] = []
    if "text" in item:
        parts.append(_full_text(model, width, item["text"], instruct))
    if "image" in item:
        parts.append(_full_media(model, width, item["image"]))
    if "video" in item:
        parts.append(_full_media(model, width, item["video"]))
    if "multi_images" in item:
        parts.extend(_full_media(model, width, v) for v in item["multi_images"])
    total = np.sum(parts, axis=0)
    out: Vector = (total / np.linalg.norm(total)).astype(np.float32)
    return out


def _width(model: str, spec: ModelSpec | None) -> int:
    if spec is None:
        spec = MODELS.get(model)
    return spec.max_dimension if spec is not None else 1024


def _at(full: Vector, dimension: int) -> Vector:
    prefix = full[:dimension]
    out: Vector = (prefix / np.linalg.norm(prefix)).astype(np.float32)
    return out


def multimodal_vector(
    model: str,
    contents: Mapping[str, Any] | list[Mapping[str, Any]],
    *,
    dimension: int | None = None,
    instruct: str | None = None,
) -> Vector:
    """The exact unit vector the emulator returns for one ``contents`` element.

    Args:
        model: Model name (it seeds the projection, as for text).
        contents: One element such as ``{"text": ...}``, ``{"image": url_or_data_uri}``,
            ``{"multi_images": [...]}`` or a fused ``{"text": ..., "image": ...}``; or the whole
            ``contents`` list of an ``enable_fusion`` call (one vector for all of it).
        dimension: Output length (default: the model's default dimension).
        instruct: The call's instruction, if the model takes one (perturbs texts only).

    Returns:
        A float32 array of length ``dimension`` with L2 norm 1.
    """
    spec = MODELS.get(model)
    width = _width(model, spec)
    dim = dimension or (spec.default_dimension if spec is not None else width)
    items = contents if isinstance(contents, list) else [contents]
    total = np.sum([_full_item(model, width, item, instruct) for item in items], axis=0)
    return _at(total.astype(np.float32), dim)


def image_vector(model: str, image: str, *, dimension: int | None = None) -> Vector:
    """The emulator's vector for one image given as a URL or a ``data:`` URI."""
    return multimodal_vector(model, {"image": image}, dimension=dimension)
