"""Pins of the model catalog (``_models.py``) against the documented numbers, written by hand.

The emulator reads the same catalog as the client, so a test against the emulator agrees with
any catalog change; only numbers typed in from the documentation catch a wrong one. Every row of
``DOCUMENTED`` below was copied from ``shared/docs/dashscope-api.md`` (section and source given
per row; [INF] marks a value the docs leave open, with the reason the catalog chose it). Changing
a catalog row means changing its row here, with its source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import pytest

from dashscope_embed import _models
from dashscope_embed._models import (
    DEFAULT_TEXT_MODEL,
    MODELS,
    UNKNOWN_TEXT_MODEL,
    ModelSpec,
    get_model,
    suggest_model,
)

BJ, SG = "cn-beijing", "ap-southeast-1"
MB = 1024 * 1024
BASIC_FORMATS = ("jpeg", "jpg", "png", "bmp")  # §3.4 "JPG, PNG, BMP" (jpeg = jpg)
VL_FORMATS = ("jpeg", "jpg", "png", "webp", "bmp", "tiff", "ico", "dib", "icns", "sgi")  # §3.4


@dataclass(frozen=True)
class Row:
    """One model as documented; defaults are those of a plain text model."""

    source: str
    kind: str
    max_batch_size: int
    max_tokens: int
    dimensions: tuple[int, ...]
    default_dimension: int
    regions: tuple[str, ...]
    supports_dimension: bool = True
    supports_sparse: bool = False
    supports_instruct: bool = False
    max_images: int | None = None
    max_videos: int | None = None
    max_image_bytes: int = 3 * MB
    image_formats: tuple[str, ...] = BASIC_FORMATS
    supports_fusion: bool = False
    supports_multi_images: bool = False
    supports_fused_items: bool = False
    batch_price_ratio: float = 0.5  # §5a "Price: 50% of real-time"


DOCUMENTED: dict[str, Row] = {
    "qwen3.7-text-embedding": Row(
        "§2.4 + §2.5 row 1 [DOC help.aliyun.com/zh/model-studio/text-embedding-api 2026]: "
        "≤20 rows, ≤128,000 tokens, dims 2560..256 default 1024, Beijing+Singapore; sparse and "
        "instruct [INF §11.2: open, the flash page claims sparse]",
        "text",
        20,
        128_000,
        (2560, 2048, 1536, 1024, 768, 512, 256),
        1024,
        (BJ, SG),
        supports_sparse=True,
        supports_instruct=True,
    ),
    "qwen3.7-text-embedding-flash": Row(
        "§2.4 + §2.5 row 2 [DOC same page + help.aliyun.com/en/model-studio/"
        "qwen3-7-text-embedding-flash]: ≤20 rows, 128,000 tokens, dims 1024..256, Beijing only; "
        "sparse per §2.2 (flash page), instruct [INF §11.2]",
        "text",
        20,
        128_000,
        (1024, 768, 512, 256),
        1024,
        (BJ,),
        supports_sparse=True,
        supports_instruct=True,
    ),
    "text-embedding-v4": Row(
        "§2.4 (≤10 items, ≤8,192 tokens) + §2.5 row 3 [DOC]: dims 2048..64 default 1024, "
        "Beijing+Singapore; output_type v3/v4 and instruct v4 per §2.2 [DOC]; Hong Kong "
        "(10 rows, 8,192 tokens) per the Model Studio model list of Mar 2026 (issue 16)",
        "text",
        10,
        8192,
        (2048, 1536, 1024, 768, 512, 256, 128, 64),
        1024,
        (BJ, SG, "cn-hongkong"),
        supports_sparse=True,
        supports_instruct=True,
    ),
    "text-embedding-v3": Row(
        "§2.4 (10 rows, history 6 → 20 → 10) + §2.5 row 4 [DOC]: Beijing dims 1024..64 default "
        "1024 (the intl page lists only 1024/768/512: §11.7), Beijing+Singapore; sparse per §2.2, "
        "no instruct (§2.2: v4 only)",
        "text",
        10,
        8192,
        (1024, 768, 512, 256, 128, 64),
        1024,
        (BJ, SG),
        supports_sparse=True,
    ),
    "text-embedding-v2": Row(
        "§2.4 (≤25 items, ≤2,048 tokens) + §2.5 row 5 [DOC]: 1536 fixed, no dimension parameter "
        "(§2.2), Beijing only",
        "text",
        25,
        2048,
        (1536,),
        1536,
        (BJ,),
        supports_dimension=False,
    ),
    "text-embedding-v1": Row(
        "§2.4 (≤25 items, ≤2,048 tokens) + §2.5 row 6 [DOC]: 1536 fixed, no dimension parameter "
        "(§2.2), Beijing only",
        "text",
        25,
        2048,
        (1536,),
        1536,
        (BJ,),
        supports_dimension=False,
    ),
    "multimodal-embedding-v1": Row(
        "§3.4 row 6 [DOC; SDK dashscope4j MmEmbeddingRequest]: 1024 fixed, 512 tokens, image "
        "≤3 MB, ≤20 elements, image ≤1, video ≤1, Beijing; no dimension parameter (§3.2)",
        "multimodal",
        20,
        512,
        (1024,),
        1024,
        (BJ,),
        supports_dimension=False,
        max_images=1,
        max_videos=1,
    ),
    "tongyi-embedding-vision-plus": Row(
        "§3.4 row 3 [DOC]: dims 1152..64 default 1152, 1,024 tokens, image ≤3 MB (older pages), "
        "JPG/PNG/BMP, multi_images (§3.2), independent only, Beijing+Singapore; no element cap "
        "documented [INF: the 20 elements the other models document]",
        "multimodal",
        20,
        1024,
        (1152, 1024, 512, 256, 128, 64),
        1152,
        (BJ, SG),
        supports_multi_images=True,
    ),
    "tongyi-embedding-vision-flash": Row(
        "§3.4 row 4 [DOC]: dims 768..64 default 768, 1,024 tokens, as plus otherwise, "
        "Beijing+Singapore",
        "multimodal",
        20,
        1024,
        (768, 512, 256, 128, 64),
        768,
        (BJ, SG),
        supports_multi_images=True,
    ),
    "tongyi-embedding-vision-plus-2026-03-06": Row(
        "§3.4 row 5 [DOC help.aliyun.com/zh/dashscope/developer-reference/"
        "one-peace-multimodal-embedding-root]: default 1152, 1,024 tokens, max 10 MB, ≤64 images, "
        "≤8 videos, ≤20 elements, multi-key object = fused, Beijing; dims as plus [INF]",
        "multimodal",
        20,
        1024,
        (1152, 1024, 512, 256, 128, 64),
        1152,
        (BJ,),
        max_images=64,
        max_videos=8,
        max_image_bytes=10 * MB,
        supports_multi_images=True,
        supports_fused_items=True,
    ),
    "tongyi-embedding-vision-flash-2026-03-06": Row(
        "§3.4 row 5 [DOC same page]: default 768, 1,024 tokens, max 10 MB, ≤64 images, "
        "≤8 videos, ≤20 elements, fused items, Beijing; dims as flash [INF]",
        "multimodal",
        20,
        1024,
        (768, 512, 256, 128, 64),
        768,
        (BJ,),
        max_images=64,
        max_videos=8,
        max_image_bytes=10 * MB,
        supports_multi_images=True,
        supports_fused_items=True,
    ),
    "qwen3-vl-embedding": Row(
        "§3.4 row 1 [DOC zh embedding guide via stored copy; alibabacloud doc-detail/2712517]: "
        "dims 2560..256 default 2560, 32,000 tokens, image ≤5 MB (2025 copy), formats JPEG..SGI, "
        "≤20 elements, images ≤5 [2nd; docs conflict 1/5/10], video ≤1, enable_fusion (§3.2), "
        "instruct (§3.2), Beijing",
        "multimodal",
        20,
        32_000,
        (2560, 2048, 1536, 1024, 768, 512, 256),
        2560,
        (BJ,),
        supports_instruct=True,
        max_images=5,
        max_videos=1,
        max_image_bytes=5 * MB,
        image_formats=VL_FORMATS,
        supports_fusion=True,
    ),
}


def spec_fields(spec: ModelSpec) -> dict[str, Any]:
    values = asdict(spec)
    values.pop("name")
    values.pop("known")
    return values


def row_fields(row: Row) -> dict[str, Any]:
    values = asdict(row)
    values.pop("source")
    return values


def test_the_table_names_every_field_of_a_model_spec() -> None:
    """The hand-written table covers every ModelSpec field (a new field needs its numbers here)."""
    assert {f.name for f in fields(Row)} - {"source"} == {f.name for f in fields(ModelSpec)} - {
        "name",
        "known",
    }


def test_the_catalog_has_exactly_the_documented_models() -> None:
    """No catalog row without a documented row here, and none missing."""
    assert sorted(MODELS) == sorted(DOCUMENTED)
    assert DEFAULT_TEXT_MODEL == "text-embedding-v4"


@pytest.mark.parametrize("name", DOCUMENTED, ids=list(DOCUMENTED))
def test_catalog_row_matches_the_documented_numbers(name: str) -> None:
    """Every field of the catalog row equals the documented value, dimension order included."""
    row = DOCUMENTED[name]
    spec = MODELS[name]
    assert row.source  # every row cites its section and source
    assert (spec.name, spec.known) == (name, True)
    assert spec_fields(spec) == row_fields(row)
    assert get_model(name) is spec
    assert get_model(name, kind="multimodal") is spec  # a catalog name ignores the kind
    assert spec.max_dimension == max(row.dimensions)
    assert row.default_dimension in row.dimensions


def test_unknown_text_model_stand_in() -> None:
    """An unknown text name gets 10 rows, 2,048 tokens, no dimension check, sparse and instruct."""
    spec = get_model("my-finetune")
    assert spec == ModelSpec(
        "my-finetune",
        "text",
        10,
        2048,
        (),
        1024,
        supports_dimension=True,
        supports_sparse=True,
        supports_instruct=True,
        regions=(),
        known=False,
        max_images=None,
        max_videos=None,
        max_image_bytes=3 * MB,
        image_formats=BASIC_FORMATS,
        supports_fusion=False,
        supports_multi_images=False,
        supports_fused_items=False,
        batch_price_ratio=0.5,
    )
    assert spec.max_dimension == 1024
    assert get_model("my-finetune", kind="text") == spec
    assert (
        ModelSpec(
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
        == UNKNOWN_TEXT_MODEL
    )


def test_unknown_multimodal_model_stand_in() -> None:
    """An unknown multimodal name gets 10 elements, 512 tokens, 1 image, 1 video, the VL formats."""
    spec = get_model("my-vision", kind="multimodal")
    assert spec == ModelSpec(
        "my-vision",
        "multimodal",
        10,
        512,
        (),
        1024,
        supports_dimension=True,
        supports_sparse=False,
        supports_instruct=True,
        regions=(),
        known=False,
        max_images=1,
        max_videos=1,
        max_image_bytes=3 * MB,
        image_formats=VL_FORMATS,
        supports_fusion=False,
        supports_multi_images=False,
        supports_fused_items=False,
        batch_price_ratio=0.5,
    )
    # every limit the multimodal validation compares with is a number, never a None stand-in
    for value in (spec.max_batch_size, spec.max_tokens, spec.max_images, spec.max_videos):
        assert type(value) is int
        assert value >= 1


def test_max_dimension_is_the_largest_documented_dimension() -> None:
    """max_dimension is the largest allowed dimension, or the default when none are listed."""
    assert get_model("qwen3.7-text-embedding").max_dimension == 2560
    assert get_model("text-embedding-v4").max_dimension == 2048
    assert get_model("tongyi-embedding-vision-plus").max_dimension == 1152
    assert ModelSpec("x", "text", 1, 1, (64, 512, 128), 128).max_dimension == 512
    assert ModelSpec("x", "text", 1, 1, (), 777).max_dimension == 777


@pytest.mark.parametrize(
    ("model", "region", "refused"),
    [
        ("text-embedding-v4", None, False),
        ("text-embedding-v4", "", False),
        ("text-embedding-v4", "cn-beijing", False),
        ("text-embedding-v4", "ap-southeast-1", False),
        ("text-embedding-v1", "cn-beijing", False),
        ("text-embedding-v1", "ap-southeast-1", True),
        ("qwen3-vl-embedding", "ap-southeast-1", True),
        ("tongyi-embedding-vision-plus", "ap-southeast-1", False),
        ("text-embedding-v1", "finance", False),
        ("text-embedding-v1", "us-east-1", True),
        ("text-embedding-v1", "eu-central-1", True),
        ("text-embedding-v4", "eu-central-1", False),
        ("qwen3.7-text-embedding", "cn-hongkong", False),
    ],
)
def test_region_rules_of_catalog_models(model: str, region: str | None, refused: bool) -> None:
    """Beijing/Singapore are checked against the table; finance is Beijing; others only refuse
    mainland-only models."""
    assert get_model(model).refuses_region(region) is refused


def test_region_rules_skip_unknown_models_and_unlisted_regions() -> None:
    """Unknown models and models without a region list are never refused client-side."""
    assert get_model("my-finetune").refuses_region("ap-southeast-1") is False
    assert get_model("my-finetune").refuses_region("finance") is False
    no_regions = ModelSpec("x", "text", 1, 1, (), 1)
    assert no_regions.refuses_region("ap-southeast-1") is False
    assert no_regions.refuses_region("us-east-1") is False
    singapore_only = ModelSpec("x", "text", 1, 1, (), 1, regions=(SG,))
    assert singapore_only.refuses_region("finance") is True
    assert singapore_only.refuses_region("cn-beijing") is True
    assert singapore_only.refuses_region("us-east-1") is False
    unknown_flagged = ModelSpec("x", "text", 1, 1, (), 1, regions=(BJ,), known=False)
    assert unknown_flagged.refuses_region("ap-southeast-1") is False


# --- suggest_model (bug 9) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("text-embeding-v4", "text", "text-embedding-v4"),  # a deletion
        ("text-embeddding-v4", "text", "text-embedding-v4"),  # an insertion
        ("text-embedxing-v4", "text", "text-embedding-v4"),  # a substitution
        ("text-embeddnig-v4", "text", "text-embedding-v4"),  # a swap in the middle
        ("etxt-embedding-v4", "text", "text-embedding-v4"),  # a swap at the start
        ("text-embedding-4v", "text", "text-embedding-v4"),  # a swap at the end
        ("xtext-embedding-v4", "text", "text-embedding-v4"),  # an insertion at the start
        ("text-embedding-v4x", None, "text-embedding-v4"),  # an insertion at the end
        ("ext-embedding-v4", "text", "text-embedding-v4"),  # a deletion at the start
        ("Text-Embedding-V4", "text", "text-embedding-v4"),  # case only
        (" text-embedding-v4 ", "text", "text-embedding-v4"),  # blanks only
        ("qwen3.7-text-embeding", "text", "qwen3.7-text-embedding"),
        ("qwen3-vl-embeding", "multimodal", "qwen3-vl-embedding"),
        ("qwen3-vl-embeding", None, "qwen3-vl-embedding"),
        ("qwen3-vl-embeding", "text", None),  # only models of the asked kind
        ("text-embeding-v4", "multimodal", None),
        ("multimodal-embedding-v2", "multimodal", "multimodal-embedding-v1"),
        ("text-embedding-v4", "text", None),  # a catalog name needs no suggestion
        ("text-embedding-v5", "text", None),  # one edit from v1, v2, v3 and v4: no guess
        ("text-embedding-v", "text", None),  # one deletion from v1..v4: no guess
        ("text-embdding-v", "text", None),  # two edits
        ("xett-embedding-v4", "text", None),  # a swap of non-neighbours is two edits
        ("text-embedding", "text", None),  # three deletions
        ("my-finetune", "text", None),
        ("", None, None),
    ],
)
def test_suggest_model(name: str, kind: Any, expected: str | None) -> None:
    """The one catalog name of that kind within one edit (ignoring case), else None."""
    assert suggest_model(name, kind) == expected


def test_suggest_model_considers_every_kind_by_default() -> None:
    """Without a kind, text and multimodal names are both candidates."""
    assert suggest_model("text-embeding-v4") == "text-embedding-v4"
    assert suggest_model("tongyi-embedding-vision-plux") == "tongyi-embedding-vision-plus"


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [
        ("", "", True),
        ("a", "", True),
        ("", "a", True),
        ("", "ab", False),
        ("abc", "abc", True),
        ("abc", "abd", True),
        ("abc", "xbc", True),
        ("abc", "axd", False),
        ("abc", "ab", True),
        ("ab", "abc", True),
        ("abc", "bc", True),
        ("abc", "ac", True),
        ("abc", "abcde", False),
        ("abcd", "abdc", True),
        ("abcd", "bacd", True),
        ("abcd", "acbd", True),
        ("abcd", "adcb", False),
        ("abcd", "badc", False),
        ("abc", "cab", False),
        ("abc", "bca", False),
        ("abcd", "abdcx", False),
        ("abxc", "abc", True),
        ("abxcd", "abcde", False),
        ("ab", "ba", True),
        ("aab", "aba", True),
        ("abca", "acba", True),
        ("abcx", "acbz", False),
        ("abcd", "baxd", False),
        ("abcd", "xbcd", True),
    ],
)
def test_one_edit_distance(a: str, b: str, close: bool) -> None:
    """Damerau–Levenshtein distance ≤ 1: one insertion, deletion, substitution or adjacent swap."""
    assert _models._within_one_edit(a, b) is close
    assert _models._within_one_edit(b, a) is close
