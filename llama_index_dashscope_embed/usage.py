"""Real token usage on LlamaIndex's instrumentation bus.

Why not the callback system: ``TokenCountingHandler`` counts embedding tokens by running its own
tokenizer (tiktoken ``cl100k`` by default) over the ``CHUNKS`` of the ``EMBEDDING`` callback
event, and llama-index-core builds that payload itself (``chunks`` + ``embeddings`` only), so an
embedding class cannot put the server's counts there. DashScope returns the real count
(``usage.total_tokens``) on every response; each adapter call therefore dispatches one
:class:`DashScopeUsageEvent`, and :class:`DashScopeUsageHandler` sums them like
``TokenCountingHandler`` does::

    import llama_index.core.instrumentation as instrument
    usage = DashScopeUsageHandler()
    instrument.get_dispatcher().add_event_handler(usage)
    ...
    usage.total_embedding_token_count
"""

from __future__ import annotations

import threading
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

__all__ = ["DashScopeUsageEvent", "DashScopeUsageHandler"]


class DashScopeUsageEvent(BaseEvent):
    """Token usage of one DashScope call as the server reported it (one per adapter call).

    Attributes:
        model_name: The model that produced the vectors.
        text_type: ``"query"`` or ``"document"``, as sent.
        output_type: ``"dense"``, ``"sparse"`` or ``"dense&sparse"``.
        rows: Texts embedded by the call.
        requests: HTTP requests that succeeded (the core batches to the model's row limit).
        total_tokens: The server's ``usage.total_tokens``, summed over those requests.
        request_ids: Server request ids, for support tickets.
    """

    model_name: str
    text_type: str | None
    output_type: str
    rows: int
    requests: int
    total_tokens: int
    request_ids: list[str]

    @classmethod
    def class_name(cls) -> str:
        return "DashScopeUsageEvent"


class DashScopeUsageHandler(BaseEventHandler):
    """Sums :class:`DashScopeUsageEvent` counts across every DashScope adapter in the process.

    Keeps counters, not the events, so it can stay attached for the life of a service.
    """

    total_embedding_token_count: int = Field(default=0, description="Tokens billed so far.")
    request_count: int = Field(default=0, description="HTTP requests that succeeded so far.")
    row_count: int = Field(default=0, description="Texts embedded so far.")
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "DashScopeUsageHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, DashScopeUsageEvent):
            with self._lock:
                self.total_embedding_token_count += event.total_tokens
                self.request_count += event.requests
                self.row_count += event.rows

    def reset_counts(self) -> None:
        """Start counting from zero again."""
        with self._lock:
            self.total_embedding_token_count = self.request_count = self.row_count = 0
