"""Every code block of README.md and docs/*.md runs against the emulator, page by page.

Each page runs in order in a fresh namespace (later blocks use earlier names) and a fresh
temporary working directory, with ``DASHSCOPE_BASE_URL`` pointing at an emulator started for the
page on 127.0.0.1 and ``DASHSCOPE_API_KEY`` set to a test key: exactly what a reader does with
``dashscope-embed emulator`` and two ``export`` lines. The documented emulator address
``http://127.0.0.1:8123`` is rewritten to that emulator's address. Shell blocks that run
``dashscope-embed`` run the console script's entry point (read from ``pyproject.toml``) with
this interpreter, in the same directory, with the page's environment (``export`` / ``unset``
lines apply to the rest of the page, Python included).

The per-page counts (run / no-run with reasons / set-up shell blocks) are printed at the end of
the session.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dashscope_embed.emulator import EmulatorServer, serve

from .harness import CLI, Block, Page, parse_page, shell_commands

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TEST_KEY = "sk-docs-0000"
DOC_EMULATOR = "http://127.0.0.1:8123"
#: Commands a CLI block may run besides dashscope-embed (inspecting what it wrote).
TOOLS = {"cat", "head", "ls", "wc", "python", "python3", "test"}

#: ``dashscope-embed ARGS`` runs as ``python -c <this> ARGS``: the entry point pyproject declares
#: (a regex, not tomllib: the suite also runs on Python 3.10).
_SCRIPT = re.search(
    rf'^{CLI}\s*=\s*"(?P<module>[\w.]+):(?P<func>\w+)"',
    (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
    re.M,
)
assert _SCRIPT, f"no [project.scripts] entry for {CLI} in pyproject.toml"
_MODULE, _FUNC = _SCRIPT.group("module"), _SCRIPT.group("func")
CLI_CODE = f"import sys; from {_MODULE} import {_FUNC}; sys.exit({_FUNC}())"

PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))]
REPORT: dict[str, Page] = {}


@pytest.fixture
def page_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """A fresh emulator on loopback, the variables a reader exports, and an empty directory."""
    restore = _snapshot_llama_index()
    with serve() as server:
        monkeypatch.setenv("DASHSCOPE_BASE_URL", server.url)
        monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        try:
            yield server
        finally:
            _stop_ray()
            _forget_chroma()
            restore()


def _forget_chroma() -> None:
    """Chroma keeps one in-memory system per process: a page's must not leak into later tests."""
    module = sys.modules.get("chromadb.api.shared_system_client")
    if module is not None:
        module.SharedSystemClient.clear_system_cache()


def _stop_ray() -> None:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _snapshot_llama_index() -> Callable[[], None]:
    """Pages set LlamaIndex's process-wide ``Settings`` and event handlers: undo that after."""
    try:
        from llama_index.core import Settings
        from llama_index.core.instrumentation import get_dispatcher
    except ImportError:  # pragma: no cover - the suite installs LlamaIndex
        return lambda: None
    settings = dict(vars(Settings))
    dispatcher = get_dispatcher()
    handlers = list(dispatcher.event_handlers)

    def restore() -> None:
        vars(Settings).clear()
        vars(Settings).update(settings)
        dispatcher.event_handlers[:] = handlers

    return restore


def _run_python(block: Block, namespace: dict[str, Any], url: str) -> None:
    source = block.source.replace(DOC_EMULATOR, url)
    # Pad so that tracebacks point at the page's own line numbers.
    code = compile("\n" * (block.line - 1) + source, block.page, "exec")
    exec(code, namespace)


def _run_cli(block: Block, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for cmd in shell_commands(block):
        argv = [os.path.expandvars(a.replace(DOC_EMULATOR, url)) for a in cmd.argv]
        where = f"{block.page}:{cmd.line}"
        if argv[0] == "export":
            for item in argv[1:]:
                name, _, value = item.partition("=")
                monkeypatch.setenv(name, value)
            continue
        if argv[0] == "unset":
            for name in argv[1:]:
                monkeypatch.delenv(name, raising=False)
            continue
        if "&" in argv or "|" in argv or ">" in argv:
            pytest.fail(
                f"{where}: background jobs, pipes and redirections are not run; "
                "mark the block <!-- no-run: REASON --> or split it"
            )
        if argv[0] == CLI:
            argv = [sys.executable, "-c", CLI_CODE, *argv[1:]]
        elif argv[0] in ("python", "python3"):
            argv = [sys.executable, *argv[1:]]
        elif argv[0] not in TOOLS:
            pytest.fail(
                f"{where}: {argv[0]!r} is not run by the docs harness (only {CLI} "
                f"and {sorted(TOOLS)}); mark the block no-run with a reason"
            )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), str(ROOT / "shared"), *filter(None, [env.get("PYTHONPATH")])]
        )
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if proc.returncode != 0:
            pytest.fail(
                f"{where}: `{' '.join(cmd.argv)}` exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )


@pytest.mark.integration
@pytest.mark.parametrize("page_path", PAGES)
def test_every_block_of_the_page_runs(
    page_path: str, page_env: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's Python and CLI blocks run in order on the emulator, without an error."""
    page = parse_page(ROOT / page_path, name=page_path)
    REPORT[page_path] = page
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in page.blocks:
        if not block.runs:
            continue
        try:
            if block.kind == "python":
                _run_python(block, namespace, page_env.url)
            else:
                _run_cli(block, page_env.url, monkeypatch)
        except pytest.fail.Exception:
            raise
        except BaseException as exc:  # SystemExit too: a snippet must not exit
            tb = "".join(traceback.format_exception(exc))
            pytest.fail(f"{block.where()}: the {block.kind} block failed:\n{tb}", pytrace=False)


def report_lines() -> list[str]:
    """One line per page: counts, then the reason of each no-run block."""
    out = []
    empty = [name for name, page in REPORT.items() if not page.blocks]
    for name, page in REPORT.items():
        if not page.blocks:
            continue
        counts = ", ".join(f"{n} {k}" for k, n in page.count().items())
        out.append(f"{name}: {counts}")
        out += [f"    no-run {b.where()}: {b.no_run}" for b in page.blocks if b.no_run]
    if empty:
        out.append(f"no code blocks: {', '.join(empty)}")
    return out
