"""docs/emulator.md stays true: its pytest examples pass and its other Python blocks run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dashscope_embed

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "emulator.md"
SHARED = Path(dashscope_embed.__file__).resolve().parents[1]
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def clean_env() -> dict[str, str]:
    """No client variable leaks in: each block must switch the clients itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(SHARED)])
    return env


def test_the_page_opens_with_a_five_line_pytest_example() -> None:
    """The first block is the five-line fixture example the page promises."""
    first = BLOCKS[0].rstrip("\n").splitlines()
    assert len(first) == 5
    assert "def test_" in BLOCKS[0]
    assert "dashscope_emulator" in BLOCKS[0]
    assert DOC.read_text().index("```python") < DOC.read_text().index("\n## ")


def test_pytest_blocks_pass_with_the_plugin(tmp_path: Path) -> None:
    """Blocks that define tests pass when run by pytest with the plugin and nothing else."""
    tests = [block for block in BLOCKS if "def test_" in block]
    assert len(tests) >= 2
    for index, block in enumerate(tests):
        (tmp_path / f"test_block_{index}.py").write_text(block)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    plugin = "dashscope_embed.emulator.pytest_plugin"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", plugin, "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(tests)} passed" in done.stdout


@pytest.mark.parametrize("index", [i for i, block in enumerate(BLOCKS) if "def test_" not in block])
def test_script_blocks_run_as_is(index: int, tmp_path: Path) -> None:
    """Every other Python block runs as a script against its own emulator and exits 0."""
    script = tmp_path / "block.py"
    script.write_text(BLOCKS[index])
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
