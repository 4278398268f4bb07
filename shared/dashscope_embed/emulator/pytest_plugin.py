"""The pytest plugin shipped with dashscope-embed: fixtures and a marker for the emulator.

Installed through the ``pytest11`` entry point, so ``pip install dashscope-embed`` makes it
available; load it explicitly with ``-p dashscope_embed.emulator.pytest_plugin`` (or
``pytest_plugins = [...]``) where entry points are off. It only registers fixtures and a marker:
a test that uses neither sees no change. (Living inside the package, loading it imports
``dashscope_embed`` and its emulator at pytest start, i.e. before pytest-cov begins measuring;
no server starts until a fixture is used.)

* ``dashscope_emulator``: a fresh emulator on 127.0.0.1 for the test, with every client pointed
  at it (:class:`~._switch.EmulatorSession`: ``url``, ``stats``, ``requests``, ``enqueue_fault``,
  ``add_chaos``, ``reset``...); the environment is restored afterwards.
* ``dashscope_emulator_session``: the same, but one server for the whole session, reset before
  each test (faster when many tests need it; same isolation of state, one port).
* ``@pytest.mark.dashscope_emulator(**settings)``: :class:`EmulatorConfig` fields for either
  fixture (``latency``, ``rpm``, ``tpm``, ``error_rate``, ``drop_rate``, ``row_limits``,
  ``api_keys``, ``chaos``...). A marked test that requests neither fixture gets
  ``dashscope_emulator``. Class- and module-level marks apply too; the closest wins per field.

Example::

    @pytest.mark.dashscope_emulator(row_limits={"text-embedding-v4": 6})
    def test_resplits(dashscope_emulator):
        DashScopeClient().embed_texts([f"t{i}" for i in range(20)])
        assert all(len(r.json["input"]["texts"]) <= 6 for r in dashscope_emulator.requests
                   if r.status == 200)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dashscope_embed.emulator._app import EmulatorConfig
    from dashscope_embed.emulator._server import EmulatorServer
    from dashscope_embed.emulator._switch import EmulatorSession

__all__ = [
    "MARKER",
    "dashscope_emulator",
    "dashscope_emulator_session",
    "pytest_collection_modifyitems",
    "pytest_configure",
]

MARKER = "dashscope_emulator"
_FIXTURES = ("dashscope_emulator", "dashscope_emulator_session")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): EmulatorConfig fields for the dashscope_emulator fixtures "
        "(latency, rpm, tpm, error_rate, drop_rate, row_limits, api_keys, chaos, ...)",
    )


def _marked_config(request: pytest.FixtureRequest) -> EmulatorConfig | None:
    """The test's marker settings as a config (``None`` if unmarked), closest mark winning."""
    from dashscope_embed.emulator._switch import make_config

    marks = list(request.node.iter_markers(MARKER))  # closest first
    if not marks:
        return None
    settings: dict[str, Any] = {}
    for mark in reversed(marks):
        if mark.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword settings only")
        settings.update(mark.kwargs)
    try:
        return make_config(**settings)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"@pytest.mark.{MARKER}: {exc}") from None


@pytest.fixture
def dashscope_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorSession]:
    """A fresh emulator on 127.0.0.1 for this test, with every client pointed at it."""
    from dashscope_embed.emulator._switch import EmulatorSession

    with EmulatorSession(_marked_config(request)) as session:
        yield session


@pytest.fixture(scope="session")
def _dashscope_emulator_server() -> Iterator[EmulatorServer]:
    """The one server behind ``dashscope_emulator_session``."""
    from dashscope_embed.emulator._server import EmulatorServer

    server = EmulatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def dashscope_emulator_session(
    request: pytest.FixtureRequest, _dashscope_emulator_server: EmulatorServer
) -> Iterator[EmulatorSession]:
    """The session's shared emulator, reset (to this test's marker settings) for this test."""
    from dashscope_embed.emulator._switch import EmulatorSession

    config = _marked_config(request)
    with EmulatorSession(config, server=_dashscope_emulator_server) as session:
        yield session


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give a marked test that requests neither fixture the per-test one.

    Appended to the test's fixture names rather than requested from an autouse fixture, so it
    is set up after the project's own autouse fixtures (which may clean the environment).
    """
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker(MARKER) is None:
            continue
        if not any(name in item.fixturenames for name in _FIXTURES):
            item.fixturenames.append("dashscope_emulator")
