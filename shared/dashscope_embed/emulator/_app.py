"""The emulator's pure core: request in, response (plus the delay to wait) out.

:meth:`Emulator.handle` does authentication, injected faults, routing and error envelopes; the
endpoint handlers do validation, quotas (:meth:`Emulator.admit`) and the answer. Nothing here
sleeps or touches a socket: the httpx transport (``_transport.py``) and the loopback server
(``_server.py``) are thin shells that wait ``delay`` and drop the connection when told to.

Adding an endpoint (multimodal, Files, Batches...) is one module with a handler
``handler(emu, req, match) -> EmuResponse`` plus one line in :data:`DEFAULT_ROUTES` (or a call to
:meth:`Emulator.add_route`). A handler raises :class:`~._faults.Rejection` for an error answer; the
app picks the native or OpenAI-compatible envelope from the path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dashscope_embed._models import MODELS, ModelSpec
from dashscope_embed.emulator import _batches, _files, _multimodal, _text
from dashscope_embed.emulator._faults import (
    INTERNAL_ERROR,
    FaultPlan,
    Rejection,
    ScriptedFault,
)
from dashscope_embed.emulator._quota import QuotaLimits

if TYPE_CHECKING:
    from dashscope_embed.emulator._transport import EmulatorTransport

__all__ = [
    "DEFAULT_ROUTES",
    "EmuRequest",
    "EmuResponse",
    "Emulator",
    "EmulatorConfig",
    "EmulatorStats",
    "Handler",
    "RecordedRequest",
    "Route",
]

logger = logging.getLogger(__name__)

_SECRET_HEADERS = frozenset({"authorization", "x-dashscope-apikey"})


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
    """

    latency: float = 0.0
    latency_jitter: float = 0.0
    rpm: int | None = None
    tpm: int | None = None
    quota_model: str = "bucket"
    error_rate: float = 0.0
    drop_rate: float = 0.0
    row_limits: dict[str, int] = field(default_factory=dict)
    api_keys: frozenset[str] | None = None
    retry_after: float | None = None
    extra_models: dict[str, ModelSpec] = field(default_factory=dict)
    seed: int = 0
    record: bool = True
    max_log: int = 10_000
    batch_speed: float = 1000.0


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


@dataclass(frozen=True)
class RecordedRequest:
    """One logged request; secret headers read ``"REDACTED"`` and status 0 means dropped.

    The key itself is never kept (a log may end up in a report or a cassette); ``key_digest``
    (SHA-256 of the key that was presented) lets a test prove which key reached the wire.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    status: int
    key_digest: str = ""

    def used_key(self, key: str) -> bool:
        """Whether this request carried ``key`` (compared by digest)."""
        return bool(self.key_digest) and hmac.compare_digest(self.key_digest, _digest(key))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class EmulatorStats:
    """A snapshot of the counters (successful requests only count ``tokens`` and ``rows``)."""

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    throttled: int = 0
    dropped: int = 0
    tokens: int = 0
    rows: int = 0


Handler = Callable[["Emulator", EmuRequest, "re.Match[str]"], EmuResponse]


@dataclass(frozen=True)
class Route:
    """A method, a path regex (matched in full) and its handler."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler


#: The routes every emulator starts with; a new endpoint adds one line here.
DEFAULT_ROUTES: list[Route] = [
    Route("POST", re.compile(re.escape(_text.NATIVE_PATH)), _text.handle_native),
    Route("POST", re.compile(re.escape(_text.COMPATIBLE_PATH)), _text.handle_compatible),
    Route("POST", _multimodal.PATH_PATTERN, _multimodal.handle_multimodal),
    *(Route(m, re.compile(p), h) for m, p, h in (*_files.ROUTES, *_batches.ROUTES)),
]


def new_request_id() -> str:
    """A request id shaped like the real ones: lowercase 8-4-4-4-12 hex, third group ``9xxx``."""
    raw = uuid.uuid4().hex
    return f"{raw[:8]}-{raw[8:12]}-9{raw[13:16]}-{raw[16:20]}-{raw[20:]}"


class Emulator:
    """A DashScope-compatible embedding service in memory; thread-safe, no I/O.

    Args:
        config: Behaviour; defaults to a fast, well-behaved service.
        clock: Monotonic seconds for the quota buckets; inject a fake one to drive time in tests.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config or EmulatorConfig()
        self.clock = clock  # also drives Batch API progress (emulator/_batches.py)
        self._lock = threading.Lock()
        self._routes: list[Route] = list(DEFAULT_ROUTES)
        self._quotas = QuotaLimits(
            self._config.rpm, self._config.tpm, clock, self._config.quota_model
        )
        self._faults = FaultPlan(self._config.error_rate, self._config.drop_rate, self._config.seed)
        self._log: deque[RecordedRequest] = deque(maxlen=max(self._config.max_log, 0))
        self._counts: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()

    @property
    def config(self) -> EmulatorConfig:
        """The configuration this emulator was built with."""
        return self._config

    # -- the core ---------------------------------------------------------------------------

    def handle(self, req: EmuRequest) -> EmuResponse:
        """Answer one request: auth, faults, routing, then the endpoint handler.

        Returns:
            The response, with ``delay`` for the shell to wait and ``drop`` to hang up instead.
        """
        if not self._authorised(req):
            response = self._auth_error(req)
        else:
            with self._lock:
                fault = self._faults.next_fault()
            if fault is None:
                response = self._route(req)
            elif fault.drop:
                response = EmuResponse(0, {}, b"", drop=True)
            else:
                rejection = Rejection(
                    fault.status, fault.code, fault.message, retry_after=fault.retry_after
                )
                response = self.error_response(req, rejection)
        with self._lock:
            response.delay = self._config.latency + self._faults.jitter(self._config.latency_jitter)
            self._account(req, response)
        return response

    def _route(self, req: EmuRequest) -> EmuResponse:
        path_matched = False
        for route in self._routes:
            match = route.pattern.fullmatch(req.path)
            if match is None:
                continue
            path_matched = True
            if route.method != req.method:
                continue
            try:
                return route.handler(self, req, match)
            except Rejection as rejection:
                return self.error_response(req, rejection)
            except Exception:  # a bug in a handler must still produce an answer, like a server
                logger.exception("emulator handler failed for %s %s", req.method, req.path)
                return self.error_response(req, Rejection(500, *INTERNAL_ERROR))
        if path_matched:
            refusal = Rejection(405, "MethodNotAllowed", f"Method {req.method} is not allowed.")
        else:
            refusal = Rejection(404, "NotFound", f"The requested URL {req.path} was not found.")
        return self.error_response(req, refusal)

    def add_route(self, method: str, pattern: str | re.Pattern[str], handler: Handler) -> None:
        """Register an endpoint; routes added later take precedence over earlier ones.

        Args:
            method: HTTP method, e.g. ``"POST"``.
            pattern: Path regex, matched against the whole path (groups reach the handler).
            handler: ``handler(emu, req, match) -> EmuResponse``.
        """
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        with self._lock:  # copy-on-write: requests in flight keep iterating the old list
            self._routes = [Route(method.upper(), compiled, handler), *self._routes]

    def transport(self) -> EmulatorTransport:
        """An httpx transport (sync and async) that sends requests to this emulator in-process."""
        from dashscope_embed.emulator._transport import EmulatorTransport

        return EmulatorTransport(self)

    # -- services for handlers ------------------------------------------------------------------

    def model_spec(self, name: str, *, kind: str = "text") -> ModelSpec | None:
        """The limits of ``name`` if the emulator serves it on endpoints of ``kind``, else None."""
        spec = self._config.extra_models.get(name) or MODELS.get(name)
        return spec if spec is not None and spec.kind == kind else None

    def row_limit(self, spec: ModelSpec) -> int:
        """Rows per request for ``spec``, honouring :attr:`EmulatorConfig.row_limits`."""
        return self._config.row_limits.get(spec.name, spec.max_batch_size)

    def admit(self, model: str, *, tokens: int, rows: int) -> None:
        """Charge a valid request to the model's quotas and count it.

        Raises:
            Rejection: 429 ``Throttling.RateQuota`` (RPM) or ``Throttling.AllocationQuota``
                (TPM); a refused request is not charged.
        """
        with self._lock:
            refused = self._quotas.admit(model, tokens)
            if refused is None:
                self._counts["tokens"] += tokens
                self._counts["rows"] += rows
        if refused is not None:
            raise Rejection(429, *refused, retry_after=self._config.retry_after)

    def respond(self, body: bytes, request_id: str, *, status: int = 200) -> EmuResponse:
        """A JSON response whose ``x-request-id`` header repeats the body's request id."""
        headers = {"content-type": "application/json", "x-request-id": request_id}
        return EmuResponse(status, headers, body)

    @staticmethod
    def new_request_id() -> str:
        """A fresh request id for a handler's answer (see :func:`new_request_id`)."""
        return new_request_id()

    def error_response(self, req: EmuRequest, rejection: Rejection) -> EmuResponse:
        """The error answer for ``rejection`` in the envelope the request's path uses."""
        request_id = new_request_id()
        payload: dict[str, Any]
        if req.compatible:
            error = {"message": rejection.message, "type": rejection.code, "param": None}
            payload = {"error": {**error, "code": rejection.code}}
            payload.update(id=request_id, request_id=request_id)
        else:
            payload = {"code": rejection.code, "message": rejection.message}
            payload["request_id"] = request_id
        response = self.respond(self._dumps(payload), request_id, status=rejection.status)
        if rejection.retry_after is not None:
            response.headers["retry-after"] = f"{rejection.retry_after:g}"
        return response

    # -- auth -------------------------------------------------------------------------------

    @staticmethod
    def _api_key(req: EmuRequest) -> str:
        """The key from ``Authorization: Bearer`` or, failing that, ``X-DashScope-ApiKey``."""
        scheme, _, value = req.headers.get("authorization", "").partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
        return key or req.headers.get("x-dashscope-apikey", "").strip()

    def _authorised(self, req: EmuRequest) -> bool:
        key = self._api_key(req)
        if self._config.api_keys is None:
            return key.startswith("sk-")
        return key in self._config.api_keys

    def _auth_error(self, req: EmuRequest) -> EmuResponse:
        if not req.compatible:
            return self.error_response(
                req, Rejection(401, "InvalidApiKey", "Invalid API-key provided.")
            )
        request_id = new_request_id()
        payload = {
            "error": {
                "message": "Incorrect API key provided. ",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            },
            "request_id": request_id,
        }
        return self.respond(self._dumps(payload), request_id, status=401)

    # -- observability ----------------------------------------------------------------------

    def _account(self, req: EmuRequest, response: EmuResponse) -> None:
        """Update counters and the log (called under the lock)."""
        self._counts["requests"] += 1
        if response.drop:
            self._counts["dropped"] += 1
        else:
            self._by_status[response.status] += 1
            if response.status == 429:
                self._counts["throttled"] += 1
        if self._config.record and self._log.maxlen:
            headers = {
                name: "REDACTED" if name in _SECRET_HEADERS else value
                for name, value in req.headers.items()
            }
            try:
                parsed = req.json() if req.body else None
            except ValueError:
                parsed = None
            status = 0 if response.drop else response.status
            key = self._api_key(req)
            digest = _digest(key) if key else ""
            self._log.append(RecordedRequest(req.method, req.path, headers, parsed, status, digest))

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of the counters since creation or :meth:`reset_stats`."""
        with self._lock:
            return EmulatorStats(
                requests=self._counts["requests"],
                by_status=dict(self._by_status),
                throttled=self._counts["throttled"],
                dropped=self._counts["dropped"],
                tokens=self._counts["tokens"],
                rows=self._counts["rows"],
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        """The request log, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    def reset_stats(self) -> None:
        """Zero the counters and clear the request log (quotas and queued faults are kept)."""
        with self._lock:
            self._counts.clear()
            self._by_status.clear()
            self._log.clear()

    def reset_quotas(self) -> None:
        """Refill every quota bucket."""
        with self._lock:
            self._quotas.reset()

    def enqueue_fault(
        self,
        status: int,
        code: str,
        message: str,
        *,
        count: int = 1,
        drop: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``count`` authorised requests with this error (or a dropped connection).

        Args:
            status: HTTP status, e.g. 429.
            code: DashScope code, e.g. ``"Throttling.RateQuota"``.
            message: Error message.
            count: How many consecutive requests get it.
            drop: Drop the connection instead of answering.
            retry_after: Seconds for a ``Retry-After`` header.
        """
        fault = ScriptedFault(status, code, message, drop=drop, retry_after=retry_after)
        with self._lock:
            self._faults.enqueue(fault, count)

    @staticmethod
    def _dumps(payload: object) -> bytes:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
