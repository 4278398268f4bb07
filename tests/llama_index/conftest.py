"""LlamaIndex adapter fixtures: adapters wired to the emulator, and recorders for every channel
LlamaIndex reports through (instrumentation events, spans, callbacks).

Unit tests run with sockets disabled; tests marked ``integration`` use the loopback emulator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import pytest_socket
from llama_index.core import Settings
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms.mock import MockLLM

from dashscope_embed.emulator import Emulator
from tests.conftest import TEST_KEY

__all__ = ["EMU_URL", "TEST_KEY", "Recorder", "body_params", "rows_per_request"]

EMU_URL = "http://emulator.test"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _sockets(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit tests never open a socket; integration tests talk to the emulator on loopback."""
    if request.node.get_closest_marker("integration") is None:
        pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


@pytest.fixture(autouse=True)
def _no_openai() -> Iterator[None]:
    """Nothing falls back to OpenAI: the global LLM is a MockLLM and restored afterwards."""
    previous = Settings._llm
    Settings.llm = MockLLM()
    yield
    Settings._llm = previous


@pytest.fixture
def make(emulator: Emulator) -> Callable[..., Any]:
    """Build an adapter class on the in-process emulator (sync and async transports)."""

    def _make(cls: type[T], **kwargs: Any) -> T:
        kwargs.setdefault("api_key", TEST_KEY)
        kwargs.setdefault("base_url", EMU_URL)
        kwargs.setdefault("http_client", httpx.Client(transport=emulator.transport()))
        kwargs.setdefault("async_http_client", httpx.AsyncClient(transport=emulator.transport()))
        return cls(**kwargs)

    return _make


def body_params(emulator: Emulator) -> list[dict[str, Any]]:
    """The ``parameters`` object of every request the emulator received, in order."""
    return [r.json.get("parameters", {}) for r in emulator.requests]


def rows_per_request(emulator: Emulator) -> list[int]:
    """How many texts each request carried (what actually went on the wire)."""
    return [len(r.json["input"]["texts"]) for r in emulator.requests]


class _Events(BaseEventHandler):
    seen: list[BaseEvent] = Field(default_factory=list)

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.seen.append(event)


class _Spans(SimpleSpanHandler):
    seen: list[str] = Field(default_factory=list)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        self.seen.append(f"{bound_args.arguments!r} {instance!r} {tags!r}")
        return super().new_span(id_, bound_args, instance, parent_span_id, tags, **kwargs)

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any = None,
        result: Any = None,
        **kwargs: Any,
    ) -> Any:
        self.seen.append(f"{result!r}")
        return super().prepare_to_exit_span(id_, bound_args, instance, result, **kwargs)

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> Any:
        self.seen.append(f"{err!r} {err!s}")
        return super().prepare_to_drop_span(id_, bound_args, instance, err, **kwargs)


class _Callbacks(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__([], [])
        self.seen: list[tuple[str, CBEventType, dict[str, Any] | None]] = []

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        self.seen.append(("start", event_type, payload))
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        self.seen.append(("end", event_type, payload))

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(
        self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None
    ) -> None:
        return None


class Recorder:
    """Everything LlamaIndex handed to observers: events, spans and callback payloads."""

    def __init__(self) -> None:
        self.events = _Events()
        self.spans = _Spans()
        self.callbacks = _Callbacks()
        self.callback_manager = CallbackManager([self.callbacks])

    def of_type(self, cls: type[T]) -> list[T]:
        return [e for e in self.events.seen if isinstance(e, cls)]

    def dump(self) -> str:
        """One string holding the repr and JSON of everything observed."""
        parts = [repr(e) + e.model_dump_json() for e in self.events.seen]
        parts += self.spans.seen
        parts += [repr(c) for c in self.callbacks.seen]
        return "\n".join(parts)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Attach event, span and callback recorders to LlamaIndex's root dispatcher."""
    rec = Recorder()
    root = get_dispatcher()
    root.add_event_handler(rec.events)
    root.add_span_handler(rec.spans)
    yield rec
    root.event_handlers.remove(rec.events)
    root.span_handlers.remove(rec.spans)
