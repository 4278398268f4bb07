"""The emulator's value types: its configuration and a transport-neutral request and response.

Kept apart from the app so the shells (``_transport.py``, ``_server.py``), the switch and the
handlers can share them without importing the whole emulator, and so ``_app.py`` stays one
concern: deciding the answer.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from dashscope_embed._models import ModelSpec
from dashscope_embed.emulator._chaos import ChaosRule

__all__ = ["EmuRequest", "EmuResponse", "EmulatorConfig", "new_request_id"]


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves; every field has a default (a well-behaved, fast service).

    Attributes:
        latency: Seconds every answer is delayed.
        latency_jitter: Extra uniform random delay in ``[0, latency_jitter]`` seconds (seeded).
        rpm: Requests per minute per model (enforced per second, like the real service).
        tpm: Tokens per minute per model (enforced per second).
        quota_model: How ``rpm``/``tpm`` are enforced: ``"bucket"`` (per-second token bucket),
            ``"window"`` (sliding one-second window) or ``"minute"`` (per-minute window); see
            :mod:`dashscope_embed.emulator._quota`.
        error_rate: Share of requests answered ``500 InternalError``.
        drop_rate: Share of requests whose connection is dropped without an answer.
        row_limits: Per-model rows-per-request overrides, e.g. ``{"text-embedding-v3": 6}`` to
            replay the 2024 limit.
        api_keys: Accepted keys; ``None`` accepts any key that starts with ``"sk-"``.
        retry_after: If set, 429 answers carry ``Retry-After`` with this many seconds.
        extra_models: More model names to accept, with their limits.
        seed: Seed for the random faults and jitter.
        record: Keep a log of requests (:attr:`Emulator.requests`).
        max_log: Most requests kept in the log (oldest dropped first).
        batch_speed: Batch API lines processed per second (``float("inf")``: at once).
        chaos: Fault rules by endpoint (:class:`~._chaos.ChaosRule`), evaluated in order after
            queued faults and before the random ``error_rate`` / ``drop_rate``.
    """

    latency: float = 0.0
    latency_jitter: float = 0.0
    rpm: int | None = None
    tpm: int | None = None
    quota_model: str = "bucket"
    error_rate: float = 0.0
    drop_rate: float = 0.0
    row_limits: dict[str, int] = field(default_factory=dict)
    api_keys: frozenset[str] | None = field(default=None, repr=False)  # never in a repr
    retry_after: float | None = None
    extra_models: dict[str, ModelSpec] = field(default_factory=dict)
    seed: int = 0
    record: bool = True
    max_log: int = 10_000
    batch_speed: float = 1000.0
    chaos: tuple[ChaosRule, ...] = ()


@dataclass
class EmuRequest:
    """A transport-neutral HTTP request. Header names are lower-cased on construction."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)

    _parsed: tuple[Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self.headers = {name.lower(): value for name, value in self.headers.items()}

    def json(self) -> Any:
        """The body parsed as JSON, parsed once (handlers and the request log share it).

        Raises:
            ValueError: If the body is not valid UTF-8 JSON.
        """
        if self._parsed is None:
            self._parsed = (json.loads(self.body),)
        return self._parsed[0]

    @property
    def compatible(self) -> bool:
        """True for OpenAI-compatible paths, whose errors use the OpenAI envelope."""
        return self.path.startswith("/compatible-mode/")


@dataclass
class EmuResponse:
    """What to answer, after waiting ``delay`` seconds; ``drop`` means close without answering."""

    status: int
    headers: dict[str, str]
    body: bytes
    delay: float = 0.0
    drop: bool = False


def new_request_id() -> str:
    """A request id shaped like the real ones: lowercase 8-4-4-4-12 hex, third group ``9xxx``."""
    raw = uuid.uuid4().hex
    return f"{raw[:8]}-{raw[8:12]}-9{raw[13:16]}-{raw[16:20]}-{raw[20:]}"
