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
renormalised prefix of the full vector.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import numpy.typing as npt

from dashscope_embed._models import MODELS, ModelSpec
from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._format import format_rows
from dashscope_embed.emulator._text import (
    BAD_PARAMETERS,
    EMPTY_INPUT,
    EMPTY_MODEL,
    ILLEGAL_INPUT,
    MODEL_NOT_EXIST,
    PREFIX,
    batch_size_message,
    dimension_message,
    length_message,
)
from dashscope_embed.emulator._uploads import resolve_contents
from dashscope_embed.emulator._vectors import count_tokens, text_vectors

if TYPE_CHECKING:
    from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse

__all__ = [
    "DATA_URI_LIMIT",
    "MULTIMODAL_PATH",
    "PATH_PATTERN",
    "handle_multimodal",
    "image_label",
    "image_vector",
    "multimodal_vector",
]

MULTIMODAL_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
#: The route pattern registered in ``_app.DEFAULT_ROUTES``.
PATH_PATTERN = re.compile(re.escape(MULTIMODAL_PATH))
#: The real per-item cap on inline images (§3.2).
DATA_URI_LIMIT = 10 * 1024 * 1024
MAX_MULTI_IMAGES = 8
#: Weight of an image's fingerprint noise against its label's text vector.
IMAGE_NOISE = 0.35
#: Seconds of video reported per video in ``usage.duration`` (the emulator does not decode).
VIDEO_SECONDS = 10.0

_KEYS = ("text", "image", "video", "multi_images")
_DATA_URI_RE = re.compile(r"data:([A-Za-z0-9.+-]+)/([A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)
_IMAGE_EXTENSIONS = frozenset(
    {"jpeg", "jpg", "png", "bmp", "webp", "tiff", "tif", "ico", "dib", "icns", "sgi", "gif"}
)
_ALIASES = {"jpg": "jpeg", "tif": "tiff"}

Vector = npt.NDArray[np.float32]


def _invalid(message: str) -> Rejection:
    return Rejection(400, "InvalidParameter", PREFIX + message)


def _norm(fmt: str) -> str:
    return _ALIASES.get(fmt.lower(), fmt.lower())


# -- labels and vectors ---------------------------------------------------------------------------


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


# -- validation -------------------------------------------------------------------------------


def _parse(req: EmuRequest) -> dict[str, Any]:
    try:
        body = json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        raise Rejection(400, *ILLEGAL_INPUT) from None
    if not isinstance(body, dict):
        raise Rejection(400, *ILLEGAL_INPUT)
    return body


def _unsupported_format(fmt: str) -> Rejection:
    # Invented message; the code and status are the error-code page's (§6.2).
    return Rejection(
        415, "BadRequest.UnsupportedFileFormat", f"The image format {fmt} is not supported."
    )


class _Check:
    """Validates one request's contents and counts what it holds."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.images = 0
        self.videos = 0
        self.tokens = 0
        self.image_tokens = 0

    def text(self, value: object, where: str) -> None:
        if not isinstance(value, str):
            raise _invalid(f"Value error, text should be a string.: {where}")  # invented
        tokens = count_tokens(value)
        if tokens < 1 or (
            tokens > self.spec.max_tokens and self.spec.name != "multimodal-embedding-v1"
        ):
            raise Rejection(400, "InvalidParameter", length_message(self.spec.max_tokens))
        # multimodal-embedding-v1 truncates over-long texts instead of rejecting them (§3.4)
        self.tokens += min(tokens, self.spec.max_tokens)

    def image(self, value: object, where: str) -> None:
        if not isinstance(value, str) or not value:
            raise _invalid(f"Value error, image should be a URL or a data URI.: {where}")  # inv.
        self.images += 1
        if value.startswith("data:"):
            match = _DATA_URI_RE.fullmatch(value)
            if match is None or match.group(1) != "image":
                # Invented, in the shape of the real messages.
                raise _invalid(
                    "Value error, image data uri is invalid, it should be "
                    f"data:image/{{format}};base64,{{data}}.: {where}"
                )
            if len(value) > DATA_URI_LIMIT:
                raise _invalid(f"Exceeded limit on max bytes per data-uri item : {DATA_URI_LIMIT}")
            try:
                data = base64.b64decode(match.group(3), validate=True)
            except (binascii.Error, ValueError):
                raise _invalid(
                    f"Value error, image data uri is not valid base64.: {where}"
                ) from None
            if not data:
                raise _invalid(f"Value error, image data uri is empty.: {where}")  # invented
            fmt = _norm(match.group(2))
            if fmt not in {_norm(f) for f in self.spec.image_formats}:
                raise _unsupported_format(fmt)
            if len(data) > self.spec.max_image_bytes:
                limit = self.spec.max_image_bytes // (1024 * 1024)
                raise _invalid(  # invented
                    f"Value error, image size should not be larger than {limit}MB.: {where}"
                )
            self.image_tokens += min(1280, 64 + len(data) // 1024)
            return
        if not value.startswith(("http://", "https://")):
            raise Rejection(400, "InvalidURL", "Invalid URL provided in your request.")
        ext = PurePosixPath(unquote(urlsplit(value).path)).suffix.lstrip(".").lower()
        if ext in _IMAGE_EXTENSIONS and _norm(ext) not in {
            _norm(f) for f in self.spec.image_formats
        }:
            raise _unsupported_format(_norm(ext))
        self.image_tokens += 256

    def video(self, value: object, where: str) -> None:
        if isinstance(value, str) and value.startswith("data:"):
            raise _invalid(  # invented
                f"Value error, video only supports URL input, not data uri.: {where}"
            )
        if not isinstance(value, str) or not value.startswith(("http://", "https://", "oss://")):
            raise Rejection(400, "InvalidURL", "Invalid URL provided in your request.")
        self.videos += 1
        self.image_tokens += 1024

    def multi_images(self, value: object, where: str) -> None:
        if not self.spec.supports_multi_images:
            raise _invalid(  # invented
                f"Value error, multi_images is not supported by model {self.spec.name}.: {where}"
            )
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_MULTI_IMAGES:
            raise _invalid(  # invented
                f"Value error, multi_images should be a list of 1 to {MAX_MULTI_IMAGES} "
                f"images.: {where}"
            )
        for i, image in enumerate(value):
            self.image(image, f"{where}.multi_images[{i}]")

    def item(self, item: object, index: int) -> None:
        where = f"input.contents[{index}]"
        if not isinstance(item, dict) or not item or not set(item) <= set(_KEYS):
            raise _invalid(  # invented
                f"Value error, each content should hold text, image, video or multi_images.: "
                f"{where}"
            )
        if len(item) > 1 and not self.spec.supports_fused_items:
            raise _invalid(  # invented
                f"Value error, model {self.spec.name} does not support fused content "
                f"(several modalities in one item).: {where}"
            )
        for key, value in item.items():
            getattr(self, key)(value, where)

    def limits(self) -> None:
        spec = self.spec
        if spec.max_images is not None and self.images > spec.max_images:
            raise _invalid(  # invented
                f"Value error, the number of images should not be larger than "
                f"{spec.max_images}.: input.contents"
            )
        if spec.max_videos is not None and self.videos > spec.max_videos:
            raise _invalid(  # invented
                f"Value error, the number of videos should not be larger than "
                f"{spec.max_videos}.: input.contents"
            )


def _dimension(spec: ModelSpec, value: object) -> int:
    if value is None:
        return spec.default_dimension
    if not spec.supports_dimension:
        raise _invalid(f"Value error, dimension is not supported by model {spec.name}.")
    if isinstance(value, bool) or not isinstance(value, int) or value not in spec.dimensions:
        raise Rejection(400, "InvalidParameter", dimension_message(spec))
    return value


def _parameters(spec: ModelSpec, parameters: dict[str, Any]) -> tuple[int, bool, str | None]:
    dimension = _dimension(spec, parameters.get("dimension"))
    fusion = parameters.get("enable_fusion")
    if fusion is not None and not isinstance(fusion, bool):
        raise _invalid("Value error, enable_fusion should be a bool.")  # invented
    if fusion and not spec.supports_fusion:
        raise _invalid(  # invented
            f"Value error, enable_fusion is not supported by model {spec.name}."
        )
    fps = parameters.get("fps")
    if fps is not None and (
        isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 <= fps <= 1
    ):
        raise _invalid("Value error, fps should be in [0, 1].")  # invented
    output_type = parameters.get("output_type")
    if output_type not in (None, "dense"):
        raise _invalid(  # invented
            "Value error, output_type is invalid, its value should be in [dense]"
        )
    instruct = parameters.get("instruct")
    if instruct is not None and not isinstance(instruct, str):
        raise _invalid("Value error, instruct should be a string.")  # invented
    return dimension, bool(fusion), instruct if spec.supports_instruct else None


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
