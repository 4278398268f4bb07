"""The emulator's pure core: request in, response (plus the delay to wait) out.

:meth:`Emulator.handle` does authentication, injected faults (queued, chaos rules by endpoint
from ``_chaos.py``, random rates), routing and error envelopes; the endpoint handlers do
validation, quotas (:meth:`Emulator.admit`) and the answer. ``/_emulator/…`` is the admin side
channel (``_admin.py``), answered before any of that. The log and counters live in
``_records.py``, the value types in ``_shapes.py``, the run-time fault controls
(``add_chaos``, ``enqueue_fault``) in ``_controls.py``. Nothing here
sleeps or touches a socket: the httpx transport (``_transport.py``) and the loopback server
(``_server.py``) are thin shells that wait ``delay`` and drop the connection when told to.

Adding an endpoint (multimodal, Files, Batches...) is one module with a handler
``handler(emu, req, match) -> EmuResponse`` plus one line in :data:`DEFAULT_ROUTES` (or a call to
:meth:`Emulator.add_route`). A handler raises :class:`~._faults.Rejection` for an error answer; the
app picks the native or OpenAI-compatible envelope from the path.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dashscope_embed._models import MODELS, ModelSpec
from dashscope_embed.emulator import _batches, _files, _multimodal, _text, _uploads
from dashscope_embed.emulator._admin import ADMIN_PREFIX, handle_admin
from dashscope_embed.emulator._chaos import ChaosPlan, endpoint_of
from dashscope_embed.emulator._controls import FaultControls
from dashscope_embed.emulator._faults import INTERNAL_ERROR, FaultPlan, Rejection, ScriptedFault
from dashscope_embed.emulator._quota import QuotaLimits
from dashscope_embed.emulator._records import (
    EmulatorStats,
    RecordedRequest,
    digest,
    redact_headers,
)
from dashscope_embed.emulator._shapes import (
    EmulatorConfig,
    EmuRequest,
    EmuResponse,
    new_request_id,
)

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
    *(
        Route(m, re.compile(p), h)
        for m, p, h in (*_files.ROUTES, *_batches.ROUTES, *_uploads.ROUTES)
    ),
]


class Emulator(FaultControls):
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
        self._counts: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._configure(self._config)

    def _configure(self, config: EmulatorConfig) -> None:
        """(Re)build every piece of state that the configuration shapes."""
        self._config = config
        self._quotas = QuotaLimits(config.rpm, config.tpm, self.clock, config.quota_model)
        self._faults = FaultPlan(config.error_rate, config.drop_rate, config.seed)
        self._chaos = ChaosPlan(config.chaos, config.seed)
        self._log: deque[RecordedRequest] = deque(maxlen=max(config.max_log, 0))

    @property
    def config(self) -> EmulatorConfig:
        """The configuration this emulator was built with."""
        return self._config

    # -- the core ---------------------------------------------------------------------------

    def handle(self, req: EmuRequest) -> EmuResponse:
        """Answer one request: admin, auth, faults (queued, chaos, random), routing, handler.

        Returns:
            The response, with ``delay`` for the shell to wait and ``drop`` to hang up instead.
            Compatible-mode answers carry ``request-duration`` (milliseconds, delay included),
            as the recorded ones do.
        """
        if req.path.startswith(ADMIN_PREFIX):
            return handle_admin(self, req)  # the test's side channel: no auth, log or faults
        started = time.perf_counter()
        extra = 0.0
        fault: ScriptedFault | None = None
        if not (self._authorised(req) or _uploads.is_public(req)):
            response = self._auth_error(req)
        else:
            with self._lock:
                fault = self._faults.pop_scripted()
                if fault is None:
                    chaos, extra = self._chaos.draw(endpoint_of(req.path))
                    random_fault = self._faults.random_fault()  # drawn always: stable sequence
                    fault = chaos or random_fault
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
            jitter = self._faults.jitter(self._config.latency_jitter)
            response.delay = self._config.latency + jitter + extra
            self._account(req, response, injected=fault is not None)
        if req.compatible and not response.drop:
            elapsed = time.perf_counter() - started + response.delay
            response.headers["request-duration"] = str(max(1, round(elapsed * 1000)))
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
            error = {"message": rejection.message, "type": rejection.error_type, "param": None}
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

    def _account(self, req: EmuRequest, response: EmuResponse, *, injected: bool) -> None:
        """Update counters and the log (called under the lock)."""
        self._counts["requests"] += 1
        self._counts["injected"] += injected
        if response.drop:
            self._counts["dropped"] += 1
        else:
            self._by_status[response.status] += 1
            if response.status == 429:
                self._counts["throttled"] += 1
        if self._config.record and self._log.maxlen:
            headers = redact_headers(req.headers)
            try:
                parsed = req.json() if req.body else None
            except ValueError:
                parsed = None
            status = 0 if response.drop else response.status
            key = self._api_key(req)
            key_digest = digest(key) if key else ""
            self._log.append(
                RecordedRequest(
                    req.method, req.path, headers, parsed, status, key_digest, dict(req.query)
                )
            )

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
                injected=self._counts["injected"],
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

    def reset(self, config: EmulatorConfig | None = None) -> None:
        """Back to a fresh emulator, optionally with a new configuration, keeping its routes.

        Forgets the log, counters, quotas, queued faults, runtime chaos rules, files, batches
        and uploads, so a server shared by many tests (the session fixture) gives each test
        the state a new one would, without a new port.
        """
        with self._lock:
            self._counts.clear()
            self._by_status.clear()
            self._configure(config or self._config)
        _files.forget(self)
        _batches.forget(self)
        _uploads.forget(self)

    @staticmethod
    def _dumps(payload: object) -> bytes:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
