"""How an emulated batch runs: validation of its input file, then every line answered in turn.

The same checks and error lines as the service's Batch API (see the API reference, section 5).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dashscope_embed.emulator import _text
from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._files import files_of

if TYPE_CHECKING:
    from dashscope_embed.emulator._app import Emulator

__all__ = ["MAX_LINES", "TERMINAL"]


TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


#: Requests per input file (documented limit).
MAX_LINES = 50_000


# Invented messages for lines a batch never reached.
_CANCELLED = "The batch was cancelled before this request was processed."


_EXPIRED = "The batch expired before this request was processed."


_TIMES = (
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    window: str
    window_seconds: float
    metadata: dict[str, Any]
    created_at: int
    started: float  # emulator clock at creation
    status: str = "validating"
    errors: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    processed: int = 0
    completed: int = 0
    failed: int = 0
    output: list[bytes] = field(default_factory=list)
    error_lines: list[bytes] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(_TIMES))

    def to_json(self) -> dict[str, Any]:
        visible = self.status in TERMINAL
        out: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.window,
            "status": self.status,
            "output_file_id": self.output_file_id if visible else None,
            "error_file_id": self.error_file_id if visible else None,
            "created_at": self.created_at,
        }
        out.update(self.times)
        total = len(self.lines) if self.status != "validating" else 0
        out["request_counts"] = {"total": total, "completed": self.completed, "failed": self.failed}
        out["metadata"] = self.metadata
        return out


def _now() -> int:
    return int(time.time())


def _advance(emu: Emulator, batch: _Batch) -> None:
    """Bring ``batch`` to what it would be now (called under the store lock)."""
    if batch.status in TERMINAL:
        return
    if batch.status == "cancelling":
        _end(emu, batch, "cancelled", "batch_cancelled", _CANCELLED)
        return
    if batch.status == "validating":
        if not _validate(emu, batch):
            return
        batch.status = "in_progress"
        batch.times["in_progress_at"] = _now()
    if batch.status == "finalizing":
        _end(emu, batch, "completed", "", "")
        return
    elapsed = emu.clock() - batch.started
    speed = emu.config.batch_speed
    running = min(max(elapsed, 0.0), batch.window_seconds)  # nothing runs past the window
    target = len(batch.lines) if math.isinf(speed) else int(running * speed)
    _process(emu, batch, min(target, len(batch.lines)))
    if batch.processed == len(batch.lines):
        batch.status = "finalizing"
        batch.times["finalizing_at"] = _now()
    elif elapsed > batch.window_seconds:
        _end(emu, batch, "expired", "batch_expired", _EXPIRED)


def _validate(emu: Emulator, batch: _Batch) -> bool:
    """Parse and check every line; on errors the whole batch fails (as recorded)."""
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    lines: list[dict[str, Any]] = []

    def error(code: str, message: str, line: int, param: str | None = None) -> None:
        if len(errors) < 100:
            errors.append({"code": code, "message": message, "param": param, "line": line})

    try:
        data = files_of(emu).get(batch.input_file_id).data
    except Rejection:  # deleted after the batch was created
        data = b""
        error("file_not_found", f"The input file {batch.input_file_id} no longer exists.", 0)
    raw_lines = [raw for raw in data.split(b"\n") if raw.strip()]
    if not raw_lines and not errors:  # OpenAI's code for it; the message is invented
        error("empty_file", f"The input file {batch.input_file_id} contains no requests.", 0)
    if len(raw_lines) > MAX_LINES:  # invented message
        count = len(raw_lines)
        error("too_many_requests", f"{count} requests; a file holds at most {MAX_LINES}.", count)
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = json.loads(raw)
        except ValueError:
            error("invalid_json_line", "This line is not valid JSON.", number)  # invented
            continue
        if not isinstance(line, dict):
            error("invalid_json_line", "This line is not a JSON object.", number)  # invented
            continue
        cid = line.get("custom_id")
        url = line.get("url")
        body = line.get("body")
        # Codes and messages: url_not_found (recorded: a line whose url is not the batch's
        # endpoint, e.g. /v1/chat/completion in a /v1/chat/ds-test batch), duplicate_custom_id
        # / mismatched_model / model_not_found (the error-code page's); missing_custom_id and
        # invalid_body are invented.
        if not isinstance(cid, str) or not cid:
            error("missing_custom_id", "Each line needs a string custom_id.", number, "custom_id")
        elif cid in seen:
            message = (
                f"The custom_id '{cid}' for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each request in a batch."
            )
            error("duplicate_custom_id", message, number, "custom_id")
        else:
            seen.add(cid)
        if url != batch.endpoint:
            message = f"The provided url '{url}' is not supported by the Batch API."
            error("url_not_found", message, number, "url")
        name = body.get("model") if isinstance(body, dict) else None
        if not isinstance(body, dict):
            error("invalid_body", "Each line needs a JSON object body.", number, "body")
        elif emu.model_spec(str(name), kind="text") is None:
            message = f"The provided model '{name}' is not supported by the Batch API."
            error("model_not_found", message, number, "body.model")
        elif model is not None and name != model:
            message = (
                f"The model '{name}' for this request does not match the rest of the batch. "
                "Each batch must contain requests for a single model."
            )
            error("mismatched_model", message, number, "body.model")
        else:
            model = str(name)
        lines.append(line)
    if errors:
        batch.status = "failed"
        batch.errors = errors
        batch.times["failed_at"] = _now()
        return False
    batch.lines = lines
    return True


def _process(emu: Emulator, batch: _Batch, target: int) -> None:
    """Answer lines ``processed .. target-1`` with the compatible embeddings handler."""
    from dashscope_embed.emulator._app import EmuRequest

    while batch.processed < target:
        line = batch.lines[batch.processed]
        batch.processed += 1
        cid = json.dumps(line["custom_id"], ensure_ascii=False).encode()
        body = json.dumps(line["body"], ensure_ascii=False).encode()
        request = EmuRequest("POST", _text.COMPATIBLE_PATH, {}, body)
        match = re.fullmatch(re.escape(_text.COMPATIBLE_PATH), _text.COMPATIBLE_PATH)
        assert match is not None
        try:
            answer = _text.handle_compatible(emu, request, match)
        except Rejection as rejection:
            batch.failed += 1
            batch.error_lines.append(_error_line(emu, cid, rejection))
            continue
        rid = answer.headers.get("x-request-id", emu.new_request_id()).encode()
        batch.completed += 1
        batch.output.append(_OK_LINE % (rid, cid, rid, answer.body))


_OK_LINE = (
    b'{"id":"%s","custom_id":%s,"response":{"status_code":200,"request_id":"%s","body":%s},'
    b'"error":null}'
)


def _error_line(emu: Emulator, cid: bytes, rejection: Rejection) -> bytes:
    rid = emu.new_request_id()
    envelope = {
        "error": {
            "message": rejection.message,
            "type": rejection.code,
            "param": None,
            "code": rejection.code,
        },
        "id": rid,
        "request_id": rid,
    }
    line = {
        "id": rid,
        "custom_id": json.loads(cid),
        "response": {"status_code": rejection.status, "request_id": rid, "body": envelope},
        "error": {"code": rejection.code, "message": rejection.message},
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()


def _end(emu: Emulator, batch: _Batch, status: str, code: str, message: str) -> None:
    """Finish: unprocessed lines fail with ``code``; output and error files are stored."""
    if status != "completed":
        for line in batch.lines[batch.processed :]:
            rid = emu.new_request_id()
            batch.failed += 1
            batch.error_lines.append(
                json.dumps(
                    {
                        "id": rid,
                        "custom_id": line.get("custom_id"),
                        "response": None,
                        "error": {"code": code, "message": message},
                    },
                    ensure_ascii=False,
                    separators=(",", ":"),
                ).encode()
            )
        batch.processed = len(batch.lines)
    store = files_of(emu)
    if batch.output:
        name = f"{batch.id}_output.jsonl"
        data = b"\n".join(batch.output) + b"\n"
        batch.output_file_id = store.add(name, "batch_output", data, prefix="file-batch_output-").id
    if batch.error_lines:
        name = f"{batch.id}_error.jsonl"
        data = b"\n".join(batch.error_lines) + b"\n"
        batch.error_file_id = store.add(name, "batch_output", data, prefix="file-batch_error-").id
    batch.output, batch.error_lines = [], []
    batch.status = status
    batch.times[f"{status}_at"] = _now()
