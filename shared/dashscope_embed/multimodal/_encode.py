"""Typed multimodal inputs and how each one becomes a ``contents`` element. Pure: no network.

A plain ``str`` is always a text. Anything else says what it is (:class:`Image`, :class:`Video`,
:class:`MultiImages`, :class:`Fused`), so a text that happens to name a file is never read or
sent as one (the official SDK 2.0.2 silently uploads such strings to OSS, ``text`` values
included).

Images that live on this machine (a path, ``bytes``, a file object, a PIL image) are read here and
sent inline as ``data:image/{format};base64,…``; they are never uploaded anywhere. Their format and
size are checked against the model's limits before any request, and every error names the
input's index. http(s) URLs (and existing ``data:`` URIs) are passed through untouched: the server
fetches URLs, so only the format implied by a URL's extension can be checked here."""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dashscope_embed._errors import InvalidInputError
from dashscope_embed._models import ModelSpec

from ._inputs import (
    DATA_URI_LIMIT,
    MAX_MULTI_IMAGES,
    Element,
    Fused,
    Image,
    MultiImages,
    Video,
    _Readable,
)

__all__ = ["encode_inputs", "reads_local_data", "sniff_format"]


#: Rough token costs, used only to pace requests against a TPM quota.
_IMAGE_TOKENS = 1000


_VIDEO_TOKENS = 4000


_ALIASES = {"jpg": "jpeg", "tif": "tiff"}


#: Extensions that name an image format (used to check URLs; unknown extensions pass).
_IMAGE_EXTENSIONS = frozenset(
    {"jpeg", "jpg", "png", "bmp", "webp", "tiff", "tif", "ico", "dib", "icns", "sgi", "rgb"}
    | {"gif", "heic", "heif", "avif", "svg", "jfif"}
)


_DATA_URI_RE = re.compile(r"data:image/([A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


#: Where an image can come from: an http(s) URL, a ``data:image/…`` URI, a local path (``str``,
#: ``file://`` URI or ``PathLike``), raw bytes, a binary file object, or a PIL image.


def sniff_format(data: bytes) -> str | None:
    """The image format from the first bytes (magic numbers), or ``None`` if unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"\x00\x00\x01\x00":
        return "ico"
    if data[:4] == b"icns":
        return "icns"
    if data[:2] == b"\x01\xda":
        return "sgi"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _norm(fmt: str) -> str:
    fmt = fmt.strip().lower()
    return _ALIASES.get(fmt, fmt)


def _bad(index: int, message: str, rule: str) -> InvalidInputError:
    return InvalidInputError(f"input {index}: {message}", index=index, rule=rule)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


class _Encoder:
    """Encodes the inputs of one call for one model (errors name the input's index)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.formats = {_norm(f) for f in spec.image_formats}

    def _check_format(self, index: int, fmt: str, where: str) -> None:
        if self.spec.known and _norm(fmt) not in self.formats:
            allowed = ", ".join(sorted(self.formats))
            raise _bad(
                index,
                f"{where} is {fmt.upper()}, which {self.spec.name} does not accept "
                f"(allowed: {allowed})",
                "image_format",
            )

    def _check_size(self, index: int, size: int, uri_len: int) -> None:
        limit = self.spec.max_image_bytes
        if size > limit:
            raise _bad(
                index,
                f"image is {size} bytes ({_mib(size)}); {self.spec.name} accepts at most "
                f"{limit} bytes ({_mib(limit)}) per image",
                "image_size",
            )
        if uri_len > DATA_URI_LIMIT:
            raise _bad(
                index,
                f"image is {size} bytes, {uri_len} bytes as a base64 data URI; the service "
                f"accepts at most {DATA_URI_LIMIT} bytes ({_mib(DATA_URI_LIMIT)}) per data URI",
                "image_size",
            )

    def image(self, index: int, image: Image) -> str:
        """The wire value of one image: a URL as given, or an inline data URI."""
        src = image.source
        if isinstance(src, str):
            if src.startswith(("http://", "https://")):
                ext = Path(unquote(urlsplit(src).path)).suffix.lstrip(".").lower()
                if ext in _IMAGE_EXTENSIONS:
                    self._check_format(index, ext, "the image URL's file type")
                return src
            if src.startswith("data:"):
                return self._data_uri(index, src)
            if src.startswith("oss://"):
                raise _bad(
                    index,
                    "oss:// URLs are not supported (they need the OSS resolve header); pass an "
                    "http(s) URL or the local file",
                    "image_url",
                )
            if "://" in src and not src.startswith("file://"):
                raise _bad(index, f"unsupported image URL scheme in {src[:40]!r}", "image_url")
            path = Path(unquote(urlsplit(src).path)) if src.startswith("file://") else Path(src)
            return self._inline(index, self._read_path(index, path.expanduser()), image.format)
        if isinstance(src, os.PathLike):
            return self._inline(index, self._read_path(index, Path(src)), image.format)
        if isinstance(src, (bytes, bytearray, memoryview)):
            return self._inline(index, bytes(src), image.format)
        if _is_pil(src):
            return self._inline(index, _pil_bytes(src, image.format), image.format or "png")
        if isinstance(src, _Readable):
            return self._inline(index, _read_stream(index, src), image.format)
        raise _bad(
            index,
            f"cannot read an image from {type(src).__name__}: pass a URL, path, bytes, file "
            "object or PIL image",
            "not_an_image",
        )

    def _read_path(self, index: int, path: Path) -> bytes:
        if not path.is_file():
            raise _bad(index, f"image file {str(path)!r} does not exist", "image_not_found")
        size = path.stat().st_size
        if size > self.spec.max_image_bytes:  # fail before reading a huge file
            self._check_size(index, size, 0)
        return path.read_bytes()

    def _inline(self, index: int, data: bytes, fmt: str | None) -> str:
        found = sniff_format(data) or (_norm(fmt) if fmt else None)
        if found is None:
            raise _bad(
                index,
                "cannot tell the image format from its bytes; pass format='png' (or the "
                "right one) to Image(...)",
                "image_format",
            )
        self._check_format(index, found, "the image")
        uri = f"data:image/{found};base64,{base64.b64encode(data).decode('ascii')}"
        self._check_size(index, len(data), len(uri))
        return uri

    def _data_uri(self, index: int, uri: str) -> str:
        match = _DATA_URI_RE.fullmatch(uri)
        if match is None:
            raise _bad(
                index,
                "not an image data URI; expected data:image/{format};base64,{data}",
                "data_uri",
            )
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(index, "the data URI's base64 payload is malformed", "data_uri") from None
        if not data:
            raise _bad(index, "the data URI holds no image bytes", "data_uri")
        self._check_format(index, match.group(1), "the data URI's image")
        self._check_size(index, len(data), len(uri))
        return uri

    def video(self, index: int, video: Video | str) -> str:
        url = video.url if isinstance(video, Video) else video
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            shown = url[:40] if isinstance(url, str) else type(url).__name__
            raise _bad(
                index,
                f"a video must be a public http(s) URL (the service does not take videos inline "
                f"or as data URIs), got {shown!r}",
                "video_url",
            )
        return url

    def text(self, index: int, text: object) -> str:
        if not isinstance(text, str):
            raise _bad(index, f"text is {type(text).__name__}, not str", "not_a_string")
        if not text.strip():
            raise _bad(index, "text is empty or whitespace only", "empty_text")
        return text

    def element(self, index: int, item: object) -> Element:
        spec = self.spec
        if isinstance(item, str):
            text = self.text(index, item)
            return Element({"text": text}, "text", tokens=len(text) // 3 + 1)
        if isinstance(item, Image):
            return Element({"image": self.image(index, item)}, "image", 1, 0, _IMAGE_TOKENS)
        if isinstance(item, Video):
            return Element({"video": self.video(index, item)}, "video", 0, 1, _VIDEO_TOKENS)
        if isinstance(item, MultiImages):
            if spec.known and not spec.supports_multi_images:
                raise _bad(
                    index,
                    f"{spec.name} does not take multi_images; use tongyi-embedding-vision-plus "
                    "or -flash",
                    "multi_images",
                )
            n = len(item.images)
            if not 1 <= n <= MAX_MULTI_IMAGES:
                raise _bad(
                    index,
                    f"multi_images holds {n} images; 1 to {MAX_MULTI_IMAGES} are allowed",
                    "multi_images",
                )
            urls = [self.image(index, img) for img in item.images]
            return Element({"multi_images": urls}, "multi_images", n, 0, n * _IMAGE_TOKENS)
        if isinstance(item, Fused):
            return self._fused(index, item)
        raise _bad(
            index,
            f"{type(item).__name__} is not an input: pass a str (text), Image, Video, "
            "MultiImages or Fused",
            "not_an_input",
        )

    def _fused(self, index: int, item: Fused) -> Element:
        spec = self.spec
        if spec.known and not spec.supports_fused_items:
            hint = (
                "qwen3-vl-embedding fuses a whole call instead: enable_fusion=True"
                if spec.supports_fusion
                else "use tongyi-embedding-vision-plus-2026-03-06 or -flash-2026-03-06"
            )
            raise _bad(index, f"{spec.name} does not embed fused items; {hint}", "fused")
        content: dict[str, Any] = {}
        images = videos = tokens = 0
        if item.text is not None:
            content["text"] = self.text(index, item.text)
            tokens += len(item.text) // 3 + 1
        if item.image is not None:
            img = item.image if isinstance(item.image, Image) else Image(item.image)
            content["image"] = self.image(index, img)
            images, tokens = 1, tokens + _IMAGE_TOKENS
        if item.video is not None:
            content["video"] = self.video(index, item.video)
            videos, tokens = 1, tokens + _VIDEO_TOKENS
        if len(content) < 2:
            raise _bad(
                index,
                "a Fused item needs at least two of text, image and video (pass a single "
                "modality as a str, Image or Video)",
                "fused",
            )
        return Element(content, "fused", images, videos, tokens)


def _is_pil(obj: object) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "save")


def _pil_bytes(image: Any, fmt: str | None) -> bytes:
    target = _norm(fmt) if fmt else "png"
    if target == "jpeg" and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    elif target == "png" and image.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):
        image = image.convert("RGBA")
    buf = io.BytesIO()
    image.save(buf, format=target.upper())
    return buf.getvalue()


def _read_stream(index: int, stream: _Readable) -> bytes:
    """All bytes of a file object, leaving its position where it was when it can."""
    if isinstance(stream, io.BytesIO):
        return stream.getvalue()
    seek = getattr(stream, "seek", None)
    tell = getattr(stream, "tell", None)
    start = tell() if callable(tell) and callable(seek) else None
    data = stream.read()
    if start is not None and seek is not None:
        seek(start)
    if not isinstance(data, bytes):
        raise _bad(index, "the file object must be opened in binary mode ('rb')", "not_an_image")
    return data


def encode_inputs(inputs: Sequence[object], spec: ModelSpec) -> list[Element]:
    """Check and encode every input before any request.

    Args:
        inputs: ``str`` (text), :class:`Image`, :class:`Video`, :class:`MultiImages`,
            :class:`Fused`.
        spec: The model, for its formats, size limit and capabilities.

    Returns:
        One :class:`Element` per input, in order.

    Raises:
        InvalidInputError: naming the input's index and the rule it broke.
    """
    if isinstance(inputs, (str, bytes, Image, Video, MultiImages, Fused)):
        raise InvalidInputError(
            "inputs must be a list, got a single input: wrap it as [item]", rule="not_a_list"
        )
    encoder = _Encoder(spec)
    return [encoder.element(i, item) for i, item in enumerate(inputs)]


def reads_local_data(inputs: Sequence[object]) -> bool:
    """Whether encoding ``inputs`` reads files or encodes images (work to keep off a loop).

    Texts, videos and images given as an http(s) URL or a ``data:`` URI need neither.
    """

    def local(image: object) -> bool:
        src = image.source if isinstance(image, Image) else image
        return not (isinstance(src, str) and src.startswith(("http://", "https://", "data:")))

    if not isinstance(inputs, (list, tuple)):
        return False  # not a list of inputs: encode_inputs refuses it, naming the fix
    for item in inputs:
        if isinstance(item, Image) and local(item):
            return True
        if isinstance(item, MultiImages) and any(local(i) for i in item.images):
            return True
        if isinstance(item, Fused) and item.image is not None and local(item.image):
            return True
    return False
