"""The site's build hooks: the model catalog and the benchmark output are generated, not copied."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from dashscope_embed import MODELS

ROOT = Path(__file__).resolve().parents[2]


def _hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"hook_{name}", ROOT / "docs/_hooks" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_catalog_page_lists_every_model_of_the_catalog_with_its_limits() -> None:
    """Every model of dashscope_embed.MODELS gets a row, with its row limit and default dimension;
    the page itself carries only the markers."""
    catalog = _hook("catalog")
    source = (ROOT / "docs/models.md").read_text(encoding="utf-8")
    assert "<!-- catalog: text -->" in source
    assert "<!-- catalog: multimodal -->" in source
    page = catalog.render(source)
    assert "<!-- catalog:" not in page
    for spec in MODELS.values():
        (row,) = [line for line in page.splitlines() if line.startswith(f"| `{spec.name}` |")]
        assert f"**{spec.default_dimension}**" in row
        assert f" {spec.max_batch_size} |" in row


def test_benchmark_page_includes_the_recorded_output() -> None:
    """The benchmarks page shows benchmarks/results/*.md as recorded, or says to run make bench."""
    bench = _hook("bench_output")
    page = bench.render((ROOT / "docs/benchmarks.md").read_text(encoding="utf-8"))
    recorded = (ROOT / "benchmarks/results/cpu.md").read_text(encoding="utf-8").splitlines()
    table = [line for line in recorded if line.startswith("| parse only |")]
    assert table
    assert all(line in page for line in table)
    assert "`benchmarks.ray_quota` has no recorded output" in page or "Ray Data" in page


@pytest.mark.parametrize(
    ("module", "page"),
    [
        ("dashscope_embed", "core"),
        ("dashscope_embed.emulator", "emulator"),
        ("dashscope_embed.ray", "ray"),
        ("langchain_dashscope_embed", "langchain"),
        ("llama_index_dashscope_embed", "llamaindex"),
    ],
)
def test_api_reference_documents_every_public_name(module: str, page: str) -> None:
    """Each name of a package's ``__all__`` has its ``::: module.name`` entry in the reference,
    and the reference documents nothing that is not public."""
    names = {n for n in importlib.import_module(module).__all__ if not n.startswith("__")}
    text = (ROOT / "docs/reference" / f"{page}.md").read_text(encoding="utf-8")
    documented = set(re.findall(rf"^::: {re.escape(module)}\.(\w+)$", text, flags=re.M))
    assert documented == names
