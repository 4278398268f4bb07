"""The OpenAI-compatible Batches API (``dashscope-api.md`` §5a.3–§5a.7), in memory.

``POST /compatible-mode/v1/batches``, ``GET /batches``, ``GET /batches/{id}``,
``POST /batches/{id}/cancel``. Batch objects have the recorded keys in the recorded order.

Progress is computed lazily from the emulator's clock whenever a batch is read (no thread), so
tests are deterministic and can drive time with a fake clock:

* created → ``validating``; the next read validates every line (bad JSON, ``url``, ``model``,
  duplicate ``custom_id``…: the whole batch ``failed`` with ``errors``, as recorded) and moves to
  ``in_progress``;
* lines are processed at :attr:`EmulatorConfig.batch_speed` lines per second since creation
  (``inf``: all at once). Each line's body is answered by the emulator's own compatible
  embeddings handler, so a line with an invalid text fails alone (it goes to the error file);
* the read that sees the last line done answers ``finalizing``; the next one ``completed``, with
  ``output_file_id`` / ``error_file_id`` set;
* cancel answers ``cancelling``; the next read ``cancelled``: processed lines keep their results,
  the rest go to the error file (``batch_cancelled``). A batch past its completion window ends
  ``expired`` the same way (``batch_expired``).

Line processing goes through :meth:`Emulator.admit`, so configured RPM/TPM quotas also apply to
batch lines (a throttled line fails with its 429 code). Error messages marked "invented" were
not recorded from the real service."""

from __future__ import annotations

import json
import re
import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from dashscope_embed.emulator import _text
from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._files import files_of

from ._batch_run import TERMINAL, _advance, _Batch, _now

__all__ = [
    "BATCHES_PATH",
    "ENDPOINTS",
    "ROUTES",
    "BatchStore",
    "batches_of",
    "forget",
    "handle_cancel",
    "handle_create",
    "handle_get",
    "handle_list",
]


if TYPE_CHECKING:
    from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse


BATCHES_PATH = "/compatible-mode/v1/batches"


ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/chat/ds-test")


_WINDOW = re.compile(r"(\d+)([hd])")


class BatchStore:
    """The batches of one emulator; every method is thread-safe."""

    def __init__(self) -> None:
        self.batches: dict[str, _Batch] = {}
        self.lock = threading.Lock()


_STORES: weakref.WeakKeyDictionary[Emulator, BatchStore] = weakref.WeakKeyDictionary()


_STORES_LOCK = threading.Lock()


def forget(emu: Emulator) -> None:
    """Drop the store of ``emu`` (its reset); the next use starts an empty one."""
    with _STORES_LOCK:
        _STORES.pop(emu, None)


def batches_of(emu: Emulator) -> BatchStore:
    """The batch store of ``emu`` (created on first use)."""
    with _STORES_LOCK:
        store = _STORES.get(emu)
        if store is None:
            store = _STORES[emu] = BatchStore()
        return store


def _bad(message: str) -> Rejection:
    return Rejection(400, "invalid_parameter_error", message)


def _respond(emu: Emulator, payload: object) -> EmuResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return emu.respond(body, emu.new_request_id())


def _parse_body(req: EmuRequest) -> dict[str, Any]:
    try:
        body = json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        raise Rejection(400, *_text.ILLEGAL_INPUT) from None
    if not isinstance(body, dict):
        raise Rejection(400, *_text.ILLEGAL_INPUT)
    return body


def _window_seconds(value: object) -> float:
    match = _WINDOW.fullmatch(value) if isinstance(value, str) else None
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1) if match else 0
    if not 24 <= hours <= 336:
        raise _bad(  # invented, following the documented range
            f"Invalid completion_window {value!r}: use 24h to 336h (or 1d to 14d)."
        )
    return hours * 3600.0


def handle_create(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``POST /batches`` → the batch object, ``validating``."""
    body = _parse_body(req)
    file_id = body.get("input_file_id")
    endpoint = body.get("endpoint")
    if not isinstance(file_id, str) or not file_id:
        raise _bad("Missing required parameter: 'input_file_id'.")  # invented
    if endpoint not in ENDPOINTS:
        raise _bad(f"Invalid endpoint {endpoint!r}; supported: {', '.join(ENDPOINTS)}.")
    stored = files_of(emu).get(file_id)
    if stored.purpose != "batch":
        raise _bad(f"File {file_id} has purpose {stored.purpose!r}, not 'batch'.")  # invented
    window = body.get("completion_window", "24h")
    seconds = _window_seconds(window)
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _bad("metadata must be an object.")  # invented
    if (
        len(str(metadata.get("ds_name", ""))) > 100
        or len(str(metadata.get("ds_description", ""))) > 200
    ):
        raise _bad("metadata.ds_name is limited to 100 and ds_description to 200 characters.")
    batch = _Batch(
        id=f"batch_{uuid.uuid4()}",
        input_file_id=file_id,
        endpoint=str(endpoint),
        window=str(window),
        window_seconds=seconds,
        metadata=metadata,
        created_at=_now(),
        started=emu.clock(),
    )
    store = batches_of(emu)
    with store.lock:
        store.batches[batch.id] = batch
        return _respond(emu, batch.to_json())


def _get(store: BatchStore, batch_id: str) -> _Batch:
    batch = store.batches.get(batch_id)
    if batch is None:
        raise Rejection(404, "NotFound", f"No batch found with id '{batch_id}'.")  # invented
    return batch


def handle_get(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``GET /batches/{id}``: advances the batch to the emulator's "now" first."""
    store = batches_of(emu)
    with store.lock:
        batch = _get(store, match.group("batch_id"))
        _advance(emu, batch)
        return _respond(emu, batch.to_json())


def handle_cancel(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``POST /batches/{id}/cancel`` → ``cancelling`` (``cancelled`` on the next read)."""
    store = batches_of(emu)
    with store.lock:
        batch = _get(store, match.group("batch_id"))
        _advance(emu, batch)
        if batch.status in TERMINAL:
            raise _bad(f"Cannot cancel a batch with status '{batch.status}'.")  # invented
        if batch.status != "cancelling":
            batch.status = "cancelling"
            batch.times["cancelling_at"] = _now()
        return _respond(emu, batch.to_json())


def handle_list(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``GET /batches?after&limit&input_file_ids&status&ds_name``: newest first;
    an empty page has ``"data": null`` (as recorded)."""
    q = req.query
    try:
        limit = int(q.get("limit") or 20)
    except ValueError:
        raise _bad("limit must be an integer.") from None  # invented
    if not 1 <= limit <= 100:
        raise _bad("limit must be between 1 and 100.")  # invented
    file_ids = {f for f in (q.get("input_file_ids") or "").split(",") if f}
    statuses = {s for s in (q.get("status") or "").split(",") if s}
    name = q.get("ds_name") or ""
    store = batches_of(emu)
    with store.lock:
        batches = list(reversed(store.batches.values()))
        if q.get("after"):
            ids = [b.id for b in batches]
            batches = batches[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        for batch in batches:
            _advance(emu, batch)
        chosen = [
            b
            for b in batches
            if (not file_ids or b.input_file_id in file_ids)
            and (not statuses or b.status in statuses)
            and name in str(b.metadata.get("ds_name", ""))
        ]
        page = [b.to_json() for b in chosen[:limit]]
    return _respond(
        emu,
        {
            "object": "list",
            "data": page or None,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(chosen) > limit,
        },
    )


_ID = r"(?P<batch_id>[^/]+)"


#: ``(method, path regex, handler)`` for the app's route table.
ROUTES = [
    ("POST", re.escape(BATCHES_PATH), handle_create),
    ("GET", re.escape(BATCHES_PATH), handle_list),
    ("GET", re.escape(BATCHES_PATH) + "/" + _ID, handle_get),
    ("POST", re.escape(BATCHES_PATH) + "/" + _ID + "/cancel", handle_cancel),
]
