"""The switch outside pytest: emulated() as a context manager and decorator, and --print-env."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

import dashscope_embed
from dashscope_embed import DashScopeClient
from dashscope_embed.emulator import ChaosRule, EmulatorConfig, client_env, emulated, text_vector
from dashscope_embed.emulator._cli import main
from dashscope_embed.emulator._switch import TEST_KEY, make_config

pytestmark = pytest.mark.integration

CLI = (sys.executable, "-m", "dashscope_embed.emulator")
NAMES = (
    "DASHSCOPE_API_KEY",
    "DASHSCOPE_BASE_URL",
    "DASHSCOPE_HTTP_BASE_URL",
    "DASHSCOPE_COMPATIBLE_BASE_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)


def test_context_manager_switches_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside: every variable points at the emulator and our client works with no arguments;
    after: a value set before is back, an absent one is gone, the server is stopped."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-one")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with emulated(row_limits={"text-embedding-v4": 2}) as emu:
        assert os.environ["OPENAI_BASE_URL"] == f"{emu.url}/compatible-mode/v1"
        assert {name: os.environ[name] for name in NAMES} == emu.env
        with DashScopeClient() as client:
            result = client.embed_texts(["a", "b", "c"], dimension=64)
        url = emu.url
        sizes = [len(r.json["input"]["texts"]) for r in emu.requests if r.status == 200]
    np.testing.assert_allclose(
        result.embeddings[2], text_vector("text-embedding-v4", "c", dimension=64), atol=1e-7
    )
    assert sorted(sizes) == [1, 2]
    assert os.environ["OPENAI_API_KEY"] == "sk-real-one"
    assert "OPENAI_BASE_URL" not in os.environ
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_emulator/health", timeout=2)


def test_decorator_runs_sync_and_async_functions() -> None:
    """@emulated() wraps a sync or an async function; the session is active only inside."""
    session = emulated(chaos=[{"endpoint": "text", "status": 429}])

    @session
    def sync() -> int:
        client = DashScopeClient(max_retries=0)
        with client, pytest.raises(dashscope_embed.RateLimitError):
            client.embed_texts(["x"])
        return session.stats.by_status[429]

    @session
    async def not_sync() -> str:
        await asyncio.sleep(0)
        return os.environ["DASHSCOPE_BASE_URL"]

    assert sync() == 1
    assert asyncio.run(not_sync()).startswith("http://127.0.0.1:")
    assert "DASHSCOPE_BASE_URL" not in os.environ
    assert repr(session) == "EmulatorSession(inactive)"


def test_key_follows_the_configured_keys_and_never_shows() -> None:
    """With api_keys set, clients get the first of them; the session's repr shows no key."""
    with emulated(api_keys=["sk-b", "sk-a"]) as emu:
        assert emu.api_key == os.environ["DASHSCOPE_API_KEY"] == "sk-a"
        assert "sk-a" not in repr(emu)
    with emulated() as emu:
        assert emu.api_key == TEST_KEY


def test_a_session_is_not_reentrant() -> None:
    """Entering an active session again is an error, not a second server."""
    with emulated() as emu, pytest.raises(RuntimeError, match="already active"):
        emu.start()


def test_make_config_converts_marker_values() -> None:
    """Lists become frozensets and ChaosRules; an unknown field names the known ones."""
    config = make_config(api_keys=["sk-a"], chaos=[{"endpoint": "files", "status": 500}])
    assert config.api_keys == frozenset({"sk-a"})
    assert config.chaos == (ChaosRule("files", status=500),)
    assert make_config(EmulatorConfig(rpm=5), tpm=9) == EmulatorConfig(rpm=5, tpm=9)
    with pytest.raises(TypeError, match="unknown emulator setting"):
        make_config(speed=1)


def test_print_env_prints_exports_for_every_client(capsys: pytest.CaptureFixture[str]) -> None:
    """--print-env prints export lines for the host/port (0.0.0.0 → 127.0.0.1) and exits 0."""
    assert main(["--print-env", "--host", "0.0.0.0", "--port", "9123"]) == 0
    out = capsys.readouterr().out
    expected = client_env("http://127.0.0.1:9123")
    assert out.splitlines() == [f"export {name}={value}" for name, value in expected.items()]


def test_print_env_runs_a_whole_app_against_the_emulator(tmp_path: Path) -> None:
    """The documented switch: a served emulator plus the printed exports make an unmodified
    script (our client and the openai SDK) talk to it."""
    script = tmp_path / "app.py"
    script.write_text(
        "import openai\n"
        "from dashscope_embed import DashScopeClient\n"
        "with DashScopeClient() as c:\n"
        "    print(c.embed_texts(['hi']).embeddings.shape)\n"
        "print(len(openai.OpenAI().embeddings.create(model='text-embedding-v4', input='x')"
        ".data[0].embedding))\n"
    )
    shared = Path(dashscope_embed.__file__).resolve().parents[1]
    with emulated() as emu:
        exports = subprocess.run(
            [*CLI, "--print-env", "--port", str(emu.server.port)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(shared)},
            timeout=60,
        ).stdout
        shell = f'{exports}\nexec "{sys.executable}" "{script}"\n'
        clean = {k: v for k, v in os.environ.items() if k not in NAMES}
        run = subprocess.run(
            ["bash", "-c", shell],
            capture_output=True,
            text=True,
            env={**clean, "PYTHONPATH": str(shared)},
            timeout=60,
        )
        paths = [r.path for r in emu.requests]
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(1,", "1024)", "1024"]
    assert paths == [
        "/api/v1/services/embeddings/text-embedding/text-embedding",
        "/compatible-mode/v1/embeddings",
    ]
