"""mkdocs hook: the model catalog pages are generated from ``dashscope_embed.MODELS``.

A page writes ``<!-- catalog: text -->`` or ``<!-- catalog: multimodal -->`` where a table
belongs; the hook replaces the marker with the table built from the catalog of the checkout
being built (``shared/`` first on ``sys.path``), so the docs can never disagree with the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "shared") not in sys.path:
    sys.path.insert(0, str(ROOT / "shared"))

from dashscope_embed import MODELS, ModelSpec  # noqa: E402

MARKER = re.compile(r"<!--\s*catalog:\s*(?P<kind>text|multimodal)\s*-->")
REGION_NAMES = {
    "cn-beijing": "Beijing",
    "ap-southeast-1": "Singapore",
    "us-east-1": "Virginia",
    "cn-hongkong": "Hong Kong",
    "finance": "finance",
    "eu-central-1": "Frankfurt",
    "ap-northeast-1": "Tokyo",
}


def _dims(spec: ModelSpec) -> str:
    if not spec.dimensions:
        return "—"
    shown = [f"**{d}**" if d == spec.default_dimension else str(d) for d in spec.dimensions]
    return ", ".join(shown) + ("" if spec.supports_dimension else " (fixed)")


def _yes(flag: bool) -> str:
    return "yes" if flag else "—"


def _regions(spec: ModelSpec) -> str:
    return ", ".join(REGION_NAMES.get(r, r) for r in spec.regions) or "—"


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:g} MiB"


def text_table() -> str:
    rows = [
        "| model | rows / request | tokens / row | dimensions (default **bold**) | sparse "
        "| `instruct` | regions | Batch API price |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in MODELS.values():
        if spec.kind != "text":
            continue
        price = "—" if spec.batch_price_ratio is None else f"{spec.batch_price_ratio:.0%}"
        rows.append(
            f"| `{spec.name}` | {spec.max_batch_size} | {spec.max_tokens:,} | {_dims(spec)} "
            f"| {_yes(spec.supports_sparse)} | {_yes(spec.supports_instruct)} "
            f"| {_regions(spec)} | {price} |"
        )
    return "\n".join(rows)


def multimodal_table() -> str:
    rows = [
        "| model | dimensions (default **bold**) | elements / request | images / request "
        "| videos / request | image size | image formats | `MultiImages` | `Fused` / fusion "
        "| `instruct` | regions |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in MODELS.values():
        if spec.kind != "multimodal":
            continue
        fusion = (
            "`Fused(...)` items"
            if spec.supports_fused_items
            else ("`enable_fusion=True`" if spec.supports_fusion else "—")
        )
        rows.append(
            f"| `{spec.name}` | {_dims(spec)} | {spec.max_batch_size} "
            f"| {spec.max_images if spec.max_images is not None else '—'} "
            f"| {spec.max_videos if spec.max_videos is not None else '—'} "
            f"| {_mib(spec.max_image_bytes)} | {', '.join(spec.image_formats) or '—'} "
            f"| {_yes(spec.supports_multi_images)} | {fusion} "
            f"| {_yes(spec.supports_instruct)} | {_regions(spec)} |"
        )
    return "\n".join(rows)


def render(markdown: str) -> str:
    """Replace every catalog marker of a page with its table."""
    tables = {"text": text_table, "multimodal": multimodal_table}
    return MARKER.sub(lambda m: tables[m.group("kind")](), markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return render(markdown)
