"""The Ray subpackage's surface: what it exports, and that the core never imports Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dashscope_embed
import dashscope_embed.ray as ray_pkg
from dashscope_embed.ray._pipeline import _guess_format


def test_exported_members() -> None:
    """The public API of dashscope_embed.ray is exactly this sorted list."""
    assert ray_pkg.__all__ == [
        "STATUS_COLUMN",
        "DashScopeEmbedder",
        "EmbedFilesReport",
        "LeasedThrottle",
        "OnError",
        "QuotaState",
        "QuotaStats",
        "SharedQuota",
        "SourceFormat",
        "embed_files",
    ]


def test_core_does_not_import_ray() -> None:
    """`import dashscope_embed` (and its emulator) loads neither Ray nor this subpackage."""
    code = (
        "import sys, dashscope_embed, dashscope_embed.emulator\n"
        "prefixes = ('ray.', 'dashscope_embed.ray')\n"
        "bad = [m for m in sys.modules if m == 'ray' or m.startswith(prefixes)]\n"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_no_core_module_mentions_the_subpackage() -> None:
    """No module outside dashscope_embed/ray imports it (Ray stays an optional extra)."""
    root = Path(dashscope_embed.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "ray" not in path.relative_to(root).parts[:1]
        and ("dashscope_embed.ray" in path.read_text() or "import ray" in path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["a.parquet", "b.PARQUET"], "parquet"),
        (["docs.jsonl"], "json"),
        (["docs.json.gz"], "json"),
        (["s3://bucket/table.csv"], "csv"),
    ],
)
def test_source_format_from_extension(paths: list[str], expected: str) -> None:
    """The reader is chosen from the file extension (compressed files included)."""
    assert _guess_format(paths) == expected


def test_unknown_or_mixed_extensions_ask_for_the_format() -> None:
    """A directory or mixed extensions need source_format, and the error says so."""
    with pytest.raises(ValueError, match="source_format"):
        _guess_format(["data/", "x.csv"])
