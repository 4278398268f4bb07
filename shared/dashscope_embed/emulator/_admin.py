"""The admin HTTP endpoint ``/_emulator/…``: inspect and steer a running emulator from outside.

For a whole app run against the emulator (``eval "$(dashscope-embed emulator --print-env)"``),
the test harness is another process and cannot call Python methods, so the same controls are
exposed over HTTP:

=======================  ================================================================
``GET  /_emulator/health``    ``{"status": "ok"}``
``GET  /_emulator/stats``     the counters (:class:`~._records.EmulatorStats`)
``GET  /_emulator/requests``  the request log, secrets redacted
``GET  /_emulator/chaos``     the chaos rules; ``POST`` adds one rule (or a list), ``DELETE``
                              removes them all
``POST /_emulator/faults``    queue faults: ``{"status", "code", "message", "count", ...}``
``POST /_emulator/reset``     forget traffic, files, batches, uploads and runtime rules
=======================  ================================================================

Admin requests need no API key, are never logged or counted and never get faults: they are the
test's side channel, not traffic. The emulator binds 127.0.0.1 by default; do not expose it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dashscope_embed.emulator._chaos import ChaosRule

if TYPE_CHECKING:
    from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse

__all__ = ["ADMIN_PREFIX", "handle_admin"]

ADMIN_PREFIX = "/_emulator/"

_FAULT_FIELDS = {"status", "code", "message", "count", "drop", "retry_after"}


def _answer(emu: Emulator, payload: object, status: int = 200) -> EmuResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return emu.respond(body, emu.new_request_id(), status=status)


def _body(req: EmuRequest) -> Any:
    return json.loads(req.body) if req.body.strip() else {}


def handle_admin(emu: Emulator, req: EmuRequest) -> EmuResponse:
    """Answer one admin request (any path under :data:`ADMIN_PREFIX`)."""
    name = req.path[len(ADMIN_PREFIX) :].strip("/")
    try:
        return _dispatch(emu, req, name)
    except (ValueError, TypeError) as exc:  # bad JSON or a bad rule: say what is wrong
        return _answer(emu, {"error": str(exc)}, status=400)


def _dispatch(emu: Emulator, req: EmuRequest, name: str) -> EmuResponse:
    method = req.method
    if (name, method) == ("health", "GET"):
        return _answer(emu, {"status": "ok"})
    if (name, method) == ("stats", "GET"):
        return _answer(emu, emu.stats.to_json())
    if (name, method) == ("requests", "GET"):
        return _answer(emu, [record.to_json() for record in emu.requests])
    if name == "chaos" and method == "GET":
        return _answer(emu, [rule.to_json() for rule in emu.chaos_rules])
    if name == "chaos" and method == "POST":
        data = _body(req)
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(item, dict) for item in items):
            raise ValueError("a chaos rule must be a JSON object (or a list of them)")
        rules = [ChaosRule.from_json(item) for item in items]  # all valid, or none added
        for rule in rules:
            emu.add_chaos(rule)
        return _answer(emu, [rule.to_json() for rule in emu.chaos_rules])
    if name == "chaos" and method == "DELETE":
        emu.clear_chaos()
        return _answer(emu, [])
    if (name, method) == ("faults", "POST"):
        data = _body(req)
        if not isinstance(data, dict) or not _FAULT_FIELDS >= set(data) >= {"status", "code"}:
            raise ValueError(f"a fault needs status and code; fields: {sorted(_FAULT_FIELDS)}")
        emu.enqueue_fault(
            int(data["status"]),
            str(data["code"]),
            str(data.get("message", data["code"])),
            count=int(data.get("count", 1)),
            drop=bool(data.get("drop", False)),
            retry_after=data.get("retry_after"),
        )
        return _answer(emu, {"queued": int(data.get("count", 1))})
    if (name, method) == ("reset", "POST"):
        emu.reset()
        return _answer(emu, {"reset": True})
    return _answer(emu, {"error": f"no admin endpoint {method} {ADMIN_PREFIX}{name}"}, 404)
