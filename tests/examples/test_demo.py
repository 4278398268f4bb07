"""`make demo` runs end to end on the emulator when no key is set."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_with_a_key_and_no_network_explains_how_to_go_offline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key set but the service unreachable: exit 1 and one paragraph saying to unset the key,
    no traceback (retries are not slept here, only counted)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-offline-test")
    monkeypatch.setenv("DASHSCOPE_BASE_URL", url)
    monkeypatch.setattr(time, "sleep", lambda _s: None)  # the client's backoff, read at init
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    import _common

    _common._connect.cache_clear()
    spec = importlib.util.spec_from_file_location("demo_under_test", ROOT / "examples/demo.py")
    assert spec is not None
    assert spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    try:
        assert demo.main() == 1
    finally:
        _common._connect.cache_clear()
    err = capsys.readouterr().err
    assert f"Could not reach DashScope at {url} (APIConnectionError)" in err
    assert "unset DASHSCOPE_API_KEY" in err
    assert "Traceback" not in err
