"""`make demo` runs end to end on the emulator when no key is set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_demo_runs_on_the_emulator_and_ranks_every_query() -> None:
    """Without a key the demo says it uses the emulator and every part finds the right answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    out = subprocess.run(
        [sys.executable, "examples/demo.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith(
        "No DASHSCOPE_API_KEY set: running on the local dashscope-embed emulator"
    )
    assert "core search: 5/5 queries ranked the expected passage first" in text
    for part in ("2. LangChain", "3. LlamaIndex", "4. multimodal"):
        assert part in text
    assert "skipped" not in text
    assert text.count("\nok ") == 11  # 5 core + 3 LangChain + 3 LlamaIndex hits
    assert "\n-- " not in text
    assert "'a red square'           -> 'red square'" in text
    assert "'a green triangle'       -> 'green triangle'" in text
