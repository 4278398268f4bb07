"""What a multimodal call takes: texts, images, videos, image sequences and fused groups.

Plain value classes; nothing is read or encoded here (see :mod:`._encode`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, Union, runtime_checkable

__all__ = [
    "DATA_URI_LIMIT",
    "MAX_MULTI_IMAGES",
    "Element",
    "Fused",
    "Image",
    "ImageSource",
    "MultiImages",
    "MultimodalInput",
    "PILImageLike",
    "Video",
]


#: Largest ``data:`` URI the service accepts ("Exceeded limit on max bytes per data-uri item").
DATA_URI_LIMIT = 10 * 1024 * 1024


#: Images in one ``multi_images`` element (tongyi-embedding-vision-*).
MAX_MULTI_IMAGES = 8


@runtime_checkable
class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class PILImageLike(Protocol):
    """What is used of a ``PIL.Image.Image`` (pillow is optional and imported by the caller)."""

    mode: str

    def save(self, fp: IO[bytes], format: str | None = None, **params: Any) -> None: ...

    def convert(self, mode: str) -> PILImageLike: ...


ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], PILImageLike]


@dataclass(frozen=True)
class Image:
    """An image input.

    Args:
        source: An http(s) URL, a ``data:image/{fmt};base64,…`` URI, a local path (``str``,
            ``file://`` URI or ``pathlib.Path``), ``bytes``, a binary file object (``BytesIO``, an
            open file) or a PIL image. Local content is sent inline, never uploaded.
        format: The format when it cannot be told from the bytes (``"png"``, ``"jpeg"``...); for
            a PIL image, the format to encode it in (default PNG).

    Example:
        >>> Image("photos/cat.png")  # doctest: +SKIP
        >>> Image("https://example.com/cat.jpg")  # doctest: +SKIP
        >>> Image.from_bytes(png_bytes)  # doctest: +SKIP
    """

    source: ImageSource
    format: str | None = None

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, *, format: str | None = None
    ) -> Image:
        """An image from its encoded bytes (PNG, JPEG...), sent inline as a data URI."""
        return cls(bytes(data), format=format)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Image:
        """An image from a local file, sent inline as a data URI (never uploaded)."""
        return cls(Path(path))

    @classmethod
    def from_url(cls, url: str) -> Image:
        """An image the service fetches from a public http(s) URL."""
        return cls(url)


@dataclass(frozen=True)
class Video:
    """A video input: a public http(s) URL (the service accepts videos by URL only).

    Args:
        url: Where the service can download the video (MP4, MOV, AVI...).
    """

    url: str


@dataclass(frozen=True)
class MultiImages:
    """Several images embedded as one vector (``multi_images``; tongyi-embedding-vision-*).

    Args:
        images: Up to 8 images, each an :class:`Image` or anything :class:`Image` accepts.
    """

    images: tuple[Image, ...] = field(default=())

    def __init__(self, images: Sequence[Image | ImageSource]) -> None:
        if isinstance(images, (str, bytes)):
            raise TypeError("MultiImages takes a list of images, not a single one")
        wrapped = tuple(i if isinstance(i, Image) else Image(i) for i in images)
        object.__setattr__(self, "images", wrapped)


@dataclass(frozen=True)
class Fused:
    """Several modalities in one element, embedded as one fused vector.

    Served by the ``tongyi-embedding-vision-*-2026-03-06`` models. (qwen3-vl-embedding fuses a
    whole call instead: ``enable_fusion=True``.)

    Args:
        text: A text.
        image: An :class:`Image` or anything :class:`Image` accepts.
        video: A :class:`Video` or its URL.
    """

    text: str | None = None
    image: Image | ImageSource | None = None
    video: Video | str | None = None


#: One input of ``embed_multimodal``: a ``str`` is always a text.
MultimodalInput = str | Image | Video | MultiImages | Fused


@dataclass(frozen=True)
class Element:
    """One input encoded as a ``contents`` item, with what it counts against the limits."""

    content: dict[str, Any]
    kind: str  # "text" | "image" | "video" | "multi_images" | "fused"
    images: int = 0
    videos: int = 0
    tokens: int = 0

    @property
    def key(self) -> str:
        """What makes two inputs the same request item (identical inputs are sent once)."""
        return json.dumps(self.content, sort_keys=True, separators=(",", ":"))
