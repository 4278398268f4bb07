"""The multimodal endpoint's input checks, with the service's own error codes and messages."""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dashscope_embed._models import ModelSpec
from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._text import (
    ILLEGAL_INPUT,
    PREFIX,
    dimension_message,
    length_message,
)

from ._words import count_tokens

if TYPE_CHECKING:
    from dashscope_embed.emulator._app import EmuRequest

__all__ = ["DATA_URI_LIMIT", "MAX_MULTI_IMAGES"]


#: The real per-item cap on inline images (§3.2).
DATA_URI_LIMIT = 10 * 1024 * 1024


MAX_MULTI_IMAGES = 8


_KEYS = ("text", "image", "video", "multi_images")


_DATA_URI_RE = re.compile(r"data:([A-Za-z0-9.+-]+)/([A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


_IMAGE_EXTENSIONS = frozenset(
    {"jpeg", "jpg", "png", "bmp", "webp", "tiff", "tif", "ico", "dib", "icns", "sgi", "gif"}
)


_ALIASES = {"jpg": "jpeg", "tif": "tiff"}


def _invalid(message: str) -> Rejection:
    return Rejection(400, "InvalidParameter", PREFIX + message)


def _norm(fmt: str) -> str:
    return _ALIASES.get(fmt.lower(), fmt.lower())


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
