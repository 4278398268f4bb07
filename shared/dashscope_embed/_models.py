"""The model catalog: every per-model limit the client and the emulator rely on, in one place.

Sources: ``../shared/docs/dashscope-api.md`` §2.4-2.5 (text) and §3.4 (multimodal). Limits have
changed over time (the v3 row limit went 6 → 20 → 10), so the client also learns a smaller row
limit from the server's "batch size is invalid" answer, and unknown models fall back to
:data:`UNKNOWN_TEXT_MODEL` limits that a caller can override with ``max_batch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "MODELS",
    "UNKNOWN_TEXT_MODEL",
    "ModelSpec",
    "get_model",
    "suggest_model",
]

Kind = Literal["text", "multimodal"]


@dataclass(frozen=True)
class ModelSpec:
    """Limits and capabilities of one DashScope embedding model.

    Attributes:
        name: The model id sent on the wire.
        kind: ``"text"`` (text-embedding endpoint) or ``"multimodal"``.
        max_batch_size: Rows (text) or elements (multimodal) per request.
        max_tokens: Tokens per row the server accepts ("Range of input length should be [1, N]").
        dimensions: Allowed ``dimension`` values; empty means "not validated" (unknown model).
        default_dimension: The dimension the server returns when none is sent.
        supports_dimension: Whether a ``dimension`` parameter may be sent at all.
        supports_sparse: Whether ``output_type`` sparse / dense&sparse is available.
        supports_instruct: Whether ``instruct`` is honoured (always with text_type query).
        regions: Regions that serve the model; empty means "not checked".
        known: False for the conservative stand-in used for names not in the catalog.
        max_images: Images per request (multimodal); ``None`` means no separate cap.
        max_videos: Videos per request (multimodal); ``None`` means no separate cap.
        max_image_bytes: Largest image (raw bytes) accepted inline or by URL.
        image_formats: Accepted image formats (lower case, as in ``data:image/{fmt}``).
        supports_fusion: ``enable_fusion`` (qwen3-vl-embedding) is accepted.
        supports_multi_images: ``multi_images`` items are accepted.
        supports_fused_items: A content item with several modality keys yields one fused vector.
        batch_price_ratio: Batch API price relative to real time (0.5 = half price).
    """

    name: str
    kind: Kind
    max_batch_size: int
    max_tokens: int
    dimensions: tuple[int, ...]
    default_dimension: int
    supports_dimension: bool = True
    supports_sparse: bool = False
    supports_instruct: bool = False
    regions: tuple[str, ...] = ()
    known: bool = True
    max_images: int | None = None
    max_videos: int | None = None
    max_image_bytes: int = 3 * 1024 * 1024
    image_formats: tuple[str, ...] = field(default=("jpeg", "jpg", "png", "bmp"))
    supports_fusion: bool = False
    supports_multi_images: bool = False
    supports_fused_items: bool = False
    batch_price_ratio: float = 0.5

    @property
    def max_dimension(self) -> int:
        """The largest dimension the model produces (the full vector)."""
        return max(self.dimensions) if self.dimensions else self.default_dimension

    def refuses_region(self, region: str | None) -> bool:
        """Whether the documentation says this model is not served in ``region``.

        The model tables cover Beijing and Singapore, so only those are checked strictly; Hong
        Kong is listed for text-embedding-v4 alone (Mar 2026) without a full table, so it is not.
        The finance cloud is a Beijing deployment (the text-embedding page lists it). Of the
        other regions (US, Hong Kong, Frankfurt, Tokyo) the docs publish no model list: a model
        documented as mainland-only is refused there, any other is left to the server.
        """
        if not region or not self.known or not self.regions:
            return False
        if region in _DOCUMENTED_REGIONS:
            return region not in self.regions
        if region == "finance":
            return _BJ not in self.regions
        return self.regions == (_BJ,)


_BJ = "cn-beijing"
_SG = "ap-southeast-1"
_HK = "cn-hongkong"
_DOCUMENTED_REGIONS = (_BJ, _SG)  # the regions the model tables of the docs cover
_V4_DIMS = (2048, 1536, 1024, 768, 512, 256, 128, 64)
_QWEN37_DIMS = (2560, 2048, 1536, 1024, 768, 512, 256)
_VL_FORMATS = ("jpeg", "jpg", "png", "webp", "bmp", "tiff", "ico", "dib", "icns", "sgi")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "qwen3.7-text-embedding",
            "text",
            20,
            128_000,
            _QWEN37_DIMS,
            1024,
            supports_sparse=True,
            supports_instruct=True,
            regions=(_BJ, _SG),
        ),
        ModelSpec(
            "qwen3.7-text-embedding-flash",
            "text",
            20,
            128_000,
            (1024, 768, 512, 256),
            1024,
            supports_sparse=True,
            supports_instruct=True,
            regions=(_BJ,),
        ),
        ModelSpec(
            "text-embedding-v4",
            "text",
            10,
            8192,
            _V4_DIMS,
            1024,
            supports_sparse=True,
            supports_instruct=True,
            # Hong Kong: 10 rows, 8,192 tokens, as elsewhere (Model Studio docs, Mar 2026).
            regions=(_BJ, _SG, _HK),
        ),
        ModelSpec(
            "text-embedding-v3",
            "text",
            10,
            8192,
            (1024, 768, 512, 256, 128, 64),
            1024,
            supports_sparse=True,
            regions=(_BJ, _SG),
        ),
        ModelSpec(
            "text-embedding-v2",
            "text",
            25,
            2048,
            (1536,),
            1536,
            supports_dimension=False,
            regions=(_BJ,),
        ),
        ModelSpec(
            "text-embedding-v1",
            "text",
            25,
            2048,
            (1536,),
            1536,
            supports_dimension=False,
            regions=(_BJ,),
        ),
        ModelSpec(
            "multimodal-embedding-v1",
            "multimodal",
            20,
            512,
            (1024,),
            1024,
            supports_dimension=False,
            regions=(_BJ,),
            max_images=1,
            max_videos=1,
            max_image_bytes=3 * 1024 * 1024,
        ),
        ModelSpec(
            "tongyi-embedding-vision-plus",
            "multimodal",
            20,
            1024,
            (1152, 1024, 512, 256, 128, 64),
            1152,
            regions=(_BJ, _SG),
            max_image_bytes=3 * 1024 * 1024,
            supports_multi_images=True,
        ),
        ModelSpec(
            "tongyi-embedding-vision-flash",
            "multimodal",
            20,
            1024,
            (768, 512, 256, 128, 64),
            768,
            regions=(_BJ, _SG),
            max_image_bytes=3 * 1024 * 1024,
            supports_multi_images=True,
        ),
        ModelSpec(
            "tongyi-embedding-vision-plus-2026-03-06",
            "multimodal",
            20,
            1024,
            (1152, 1024, 512, 256, 128, 64),
            1152,
            regions=(_BJ,),
            max_images=64,
            max_videos=8,
            max_image_bytes=10 * 1024 * 1024,
            supports_multi_images=True,
            supports_fused_items=True,
        ),
        ModelSpec(
            "tongyi-embedding-vision-flash-2026-03-06",
            "multimodal",
            20,
            1024,
            (768, 512, 256, 128, 64),
            768,
            regions=(_BJ,),
            max_images=64,
            max_videos=8,
            max_image_bytes=10 * 1024 * 1024,
            supports_multi_images=True,
            supports_fused_items=True,
        ),
        ModelSpec(
            "qwen3-vl-embedding",
            "multimodal",
            20,
            32_000,
            _QWEN37_DIMS,
            2560,
            supports_instruct=True,
            regions=(_BJ,),
            max_images=5,
            max_videos=1,
            max_image_bytes=5 * 1024 * 1024,
            image_formats=_VL_FORMATS,
            supports_fusion=True,
        ),
    )
}

#: Conservative limits for a model name the catalog does not know: 10 rows (the current v3/v4
#: limit; the server's batch-size answer lowers it further if needed), the smallest common token
#: limit, and no dimension validation (whatever the caller sends goes to the server).
UNKNOWN_TEXT_MODEL = ModelSpec(
    "unknown",
    "text",
    10,
    2048,
    (),
    1024,
    supports_sparse=True,
    supports_instruct=True,
    known=False,
)

DEFAULT_TEXT_MODEL = "text-embedding-v4"


def get_model(name: str, *, kind: Kind = "text") -> ModelSpec:
    """Return the catalog entry for ``name``, or conservative limits for an unknown name.

    Args:
        name: A model id such as ``"text-embedding-v4"``.
        kind: The endpoint the caller intends to use; picks the stand-in for unknown names.

    Returns:
        The :class:`ModelSpec`; unknown names get ``known=False`` and unvalidated dimensions.
    """
    spec = MODELS.get(name)
    if spec is not None:
        return spec
    if kind == "multimodal":
        return replace(
            UNKNOWN_TEXT_MODEL,
            name=name,
            kind="multimodal",
            max_tokens=512,
            supports_sparse=False,
            max_images=1,
            max_videos=1,
            image_formats=_VL_FORMATS,
            max_image_bytes=3 * 1024 * 1024,
        )
    return replace(UNKNOWN_TEXT_MODEL, name=name)


def suggest_model(name: str, kind: Kind | None = None) -> str | None:
    """The catalog name one edit away from ``name``, for a "did you mean …?" hint.

    One edit is an insertion, a deletion, a substitution or a swap of two neighbouring characters
    (Damerau–Levenshtein distance 1), ignoring case. Pure: unknown names are still sent as given;
    this only words the error when the server rejects one.

    Args:
        name: The model name the caller used, e.g. ``"text-embeding-v4"``.
        kind: Only consider catalog models of this kind (``None``: every model).

    Returns:
        The one catalog name within one edit (a name that differs only in case counts), or
        ``None`` when ``name`` is a catalog name, nothing is that close, or several names are
        (``"text-embedding-v5"`` is one edit from v1, v2, v3 and v4: no guess is made).
    """
    if name in MODELS:
        return None
    wanted = name.strip().lower()
    names = [spec.name for spec in MODELS.values() if kind is None or spec.kind == kind]
    for candidate in names:
        if candidate.lower() == wanted:  # only case or surrounding blanks differ
            return candidate
    close = [candidate for candidate in names if _within_one_edit(wanted, candidate.lower())]
    return close[0] if len(close) == 1 else None


def _within_one_edit(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by at most one insertion, deletion, substitution or swap."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):  # one insertion into the shorter
        return a[i:] == b[i + 1 :]
    if a[i + 1 :] == b[i + 1 :]:  # one substitution
        return True
    return a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]  # one swap
