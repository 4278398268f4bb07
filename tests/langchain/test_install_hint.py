"""Without LangChain installed, importing the adapter says which extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A meta-path finder placed first that makes the named top-level packages look uninstalled,
# exactly as on a base install (`pip install dashscope-embed`).
BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = set(sys.argv[1].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    try:
        {statement}
    except ImportError as exc:
        print(type(exc).__name__, exc, sep=": ")
    else:
        print("imported")
    """
)


@pytest.mark.parametrize(
    "statement",
    [
        "from langchain_dashscope_embed import DashScopeEmbeddings",
        "from langchain_dashscope_embed.multimodal import DashScopeMultimodalEmbeddings",
    ],
)
@pytest.mark.parametrize("blocked", ["pydantic,langchain_core", "langchain_core", "pydantic"])
def test_missing_framework_gives_the_install_command(statement: str, blocked: str) -> None:
    """A base install gets an ImportError with the pip command, not "No module named 'pydantic'"."""
    code = BLOCKER.replace("{statement}", statement)
    out = subprocess.run(
        [sys.executable, "-c", code, blocked],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = out.stdout.strip()
    assert line.startswith("ImportError: langchain_dashscope_embed needs LangChain"), line
    assert line.endswith('pip install "dashscope-embed[langchain]"'), line
    for module in blocked.split(","):
        assert module in line


def test_the_core_imports_without_langchain() -> None:
    """The core never needs the framework: the same blocker leaves `import dashscope_embed` fine."""
    code = BLOCKER.replace("{statement}", "import dashscope_embed")
    out = subprocess.run(
        [sys.executable, "-c", code, "pydantic,langchain_core"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "imported"
