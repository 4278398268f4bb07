"""One switch for every client: run the emulator and point all three clients at it.

While an :class:`EmulatorSession` is active, code that builds a client *with no arguments* talks
to the emulator: ours (``DASHSCOPE_BASE_URL`` + ``DASHSCOPE_API_KEY``), the official dashscope
SDK (``DASHSCOPE_HTTP_BASE_URL``, plus its module attributes if it was imported before, since it
reads the environment at import time) and the openai SDK (``OPENAI_BASE_URL`` to the compatible
path, ``OPENAI_API_KEY``). Everything is put back on exit, whatever the test did.

It is the engine of the pytest fixtures (``pytest_plugin.py``) and usable directly::

    with emulated(row_limits={"text-embedding-v4": 6}) as emu:
        DashScopeClient().embed_texts(texts)
        assert max(len(r.json["input"]["texts"]) for r in emu.requests) <= 6

or as a decorator of a test function (sync or async), e.g. in ``unittest``.
"""

from __future__ import annotations

import functools
import inspect
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import fields
from types import TracebackType
from typing import Any, TypeVar

from dashscope_embed.emulator._app import Emulator, EmulatorConfig
from dashscope_embed.emulator._chaos import ChaosRule
from dashscope_embed.emulator._records import EmulatorStats, RecordedRequest
from dashscope_embed.emulator._server import EmulatorServer

__all__ = ["TEST_KEY", "EmulatorSession", "client_env", "emulated", "export_lines", "make_config"]

#: The key the switch hands every client (the emulator accepts any ``sk-`` key by default).
TEST_KEY = "sk-emulator-test-key"

F = TypeVar("F", bound=Callable[..., Any])
_MISSING = object()
#: Module attributes the SDKs read at call time: ``(module, attribute, env-derived value key)``.
_MODULE_ATTRIBUTES = (
    ("dashscope", "base_http_api_url", "DASHSCOPE_HTTP_BASE_URL"),
    ("dashscope", "base_compatible_api_url", "DASHSCOPE_COMPATIBLE_BASE_URL"),
    ("dashscope", "api_key", "DASHSCOPE_API_KEY"),
    ("openai", "base_url", "OPENAI_BASE_URL"),
    ("openai", "api_key", "OPENAI_API_KEY"),
)


def client_env(url: str, api_key: str = TEST_KEY) -> dict[str, str]:
    """The environment that points every client at the emulator at ``url``.

    Args:
        url: The emulator's base URL, e.g. ``"http://127.0.0.1:8123"``.
        api_key: The key the clients send.
    """
    base = url.rstrip("/")
    return {
        "DASHSCOPE_API_KEY": api_key,
        "DASHSCOPE_BASE_URL": f"{base}/api/v1",  # ours strips /api/v1; dashscope v2 wants it
        "DASHSCOPE_HTTP_BASE_URL": f"{base}/api/v1",
        "DASHSCOPE_COMPATIBLE_BASE_URL": f"{base}/compatible-mode/v1",
        "OPENAI_BASE_URL": f"{base}/compatible-mode/v1",
        "OPENAI_API_KEY": api_key,
    }


def export_lines(env: Mapping[str, str]) -> str:
    """``export NAME=value`` lines (shell-quoted) for ``eval "$(…)"``."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def make_config(base: EmulatorConfig | None = None, /, **changes: Any) -> EmulatorConfig:
    """An :class:`EmulatorConfig` from keyword fields, with the conversions a marker needs.

    ``api_keys`` may be any iterable of keys, ``chaos`` a list of :class:`ChaosRule` or dicts.

    Raises:
        TypeError: On a field :class:`EmulatorConfig` does not have (the message lists them).
    """
    known = {f.name for f in fields(EmulatorConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown emulator setting(s) {unknown}; known: {sorted(known)}")
    if changes.get("api_keys") is not None:
        changes["api_keys"] = frozenset(changes["api_keys"])
    if "chaos" in changes:
        changes["chaos"] = tuple(_rule(rule) for rule in changes["chaos"])
    if "row_limits" in changes:
        changes["row_limits"] = dict(changes["row_limits"])
    values = {f.name: getattr(base or EmulatorConfig(), f.name) for f in fields(EmulatorConfig)}
    return EmulatorConfig(**{**values, **changes})


def _rule(rule: ChaosRule | Mapping[str, Any]) -> ChaosRule:
    return rule if isinstance(rule, ChaosRule) else ChaosRule.from_json(rule)


class EmulatorSession:
    """An emulator on 127.0.0.1 with every client pointed at it; context manager and decorator.

    Args:
        config: The emulator's configuration (``**settings`` are merged into it).
        server: Serve from this server instead of starting one (the session fixture): it is
            reset to ``config`` on entry, so each use starts clean, and never stopped here.
        api_key: The key handed to the clients; default: :data:`TEST_KEY`, or the first of
            ``api_keys`` if the configuration restricts them.
        **settings: :class:`EmulatorConfig` fields, e.g. ``latency=0.1``, ``rpm=60``.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        server: EmulatorServer | None = None,
        api_key: str | None = None,
        **settings: Any,
    ) -> None:
        self._config = make_config(config, **settings) if settings else config
        self._given_server = server
        self._server: EmulatorServer | None = None
        self._api_key = api_key
        self._saved_env: dict[str, str | None] = {}
        self._saved_attrs: list[tuple[Any, str, object]] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> EmulatorSession:
        """Start serving (unless given a server) and switch every client over."""
        if self._server is not None:
            raise RuntimeError("this EmulatorSession is already active")
        server = self._given_server or EmulatorServer(config=self._config)
        if server is self._given_server:
            server.emulator.reset(self._config or EmulatorConfig())
        server.start()
        self._server = server
        self._switch(self.env)
        return self

    def stop(self) -> None:
        """Restore the environment and module attributes, then stop the server it started."""
        server, self._server = self._server, None
        if server is None:
            return
        self._restore()
        if server is not self._given_server:
            server.stop()

    def __enter__(self) -> EmulatorSession:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __call__(self, func: F) -> F:
        """Decorate a function (sync or async) to run with the emulator active."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]

    def __repr__(self) -> str:  # never the key
        state = self.url if self._server is not None else "inactive"
        return f"EmulatorSession({state})"

    # -- the switch -------------------------------------------------------------------------

    def _switch(self, env: dict[str, str]) -> None:
        self._saved_env = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        self._saved_attrs = []
        for module_name, attribute, source in _MODULE_ATTRIBUTES:
            module = sys.modules.get(module_name)
            if module is not None:
                self._saved_attrs.append((module, attribute, getattr(module, attribute, _MISSING)))
                setattr(module, attribute, env[source])

    def _restore(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for module, attribute, value in reversed(self._saved_attrs):
            if value is _MISSING:
                delattr(module, attribute)
            else:
                setattr(module, attribute, value)
        self._saved_env, self._saved_attrs = {}, []

    # -- what a test uses -------------------------------------------------------------------

    @property
    def server(self) -> EmulatorServer:
        """The running server (raises if the session is not active)."""
        if self._server is None:
            raise RuntimeError("the EmulatorSession is not active (use it in a with block)")
        return self._server

    @property
    def emulator(self) -> Emulator:
        """The emulator answering (its full Python API)."""
        return self.server.emulator

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:49152``."""
        return self.server.url

    @property
    def api_url(self) -> str:
        """The native base (``…/api/v1``)."""
        return f"{self.url}/api/v1"

    @property
    def compatible_url(self) -> str:
        """The OpenAI-compatible base (``…/compatible-mode/v1``)."""
        return f"{self.url}/compatible-mode/v1"

    @property
    def api_key(self) -> str:
        """The (test) key the clients were given."""
        if self._api_key:
            return self._api_key
        keys = self.emulator.config.api_keys
        return sorted(keys)[0] if keys else TEST_KEY

    @property
    def env(self) -> dict[str, str]:
        """The variables this session sets (see :func:`client_env`)."""
        return client_env(self.url, self.api_key)

    @property
    def stats(self) -> EmulatorStats:
        """The emulator's counters (see :class:`~._records.EmulatorStats`)."""
        return self.emulator.stats

    @property
    def requests(self) -> list[RecordedRequest]:
        """The request log, oldest first; keys are redacted (compare with ``used_key``)."""
        return self.emulator.requests

    def enqueue_fault(self, status: int, code: str, message: str, **options: Any) -> None:
        """Answer the next request(s) with this error: see :meth:`Emulator.enqueue_fault`."""
        self.emulator.enqueue_fault(status, code, message, **options)

    def add_chaos(self, rule: ChaosRule | None = None, **fields: Any) -> ChaosRule:
        """Add a chaos rule at run time: see :meth:`Emulator.add_chaos`."""
        return self.emulator.add_chaos(rule, **fields)

    def clear_chaos(self) -> None:
        """Remove every chaos rule."""
        self.emulator.clear_chaos()

    def reset(self, config: EmulatorConfig | None = None) -> None:
        """Forget traffic and state (optionally with a new configuration): see
        :meth:`Emulator.reset`."""
        self.emulator.reset(config)


def emulated(
    config: EmulatorConfig | None = None, /, *, api_key: str | None = None, **settings: Any
) -> EmulatorSession:
    """An :class:`EmulatorSession`: ``with emulated(latency=0.1) as emu: ...`` or ``@emulated()``.

    Args:
        config: A base configuration.
        api_key: The key handed to the clients.
        **settings: :class:`EmulatorConfig` fields (``row_limits``, ``rpm``, ``chaos``...).
    """
    return EmulatorSession(config, api_key=api_key, **settings)
