"""The OpenAI-compatible Files API (``dashscope-api.md`` §5a.1, §5a.7), kept in memory.

``POST /compatible-mode/v1/files`` (multipart ``file`` + ``purpose``), ``GET /files``,
``GET /files/{id}``, ``GET /files/{id}/content``, ``DELETE /files/{id}``. Object shapes follow
the recorded answers: ``{"id","object":"file","bytes","created_at","filename","purpose",
"status":"processed","status_details":null}``; delete answers ``{"id","object":"file",
"deleted":true}``; content is the raw bytes with no content type. Input ids look like
``file-batch-<24 hex>``, batch outputs ``file-batch_output-<24 hex>`` and error files
``file-batch_error-<24 hex>``.

Error messages marked "invented" were not recorded from the real service.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dashscope_embed.emulator._faults import Rejection

if TYPE_CHECKING:
    from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse

__all__ = ["ROUTES", "FileStore", "StoredFile", "files_of", "forget", "parse_multipart"]

FILES_PATH = "/compatible-mode/v1/files"
PURPOSES = ("batch", "file-extract")
#: Largest accepted upload (the documented 500 MB per batch input file).
MAX_FILE_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    """One file held by the emulator."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class FileStore:
    """The files of one emulator (thread-safe)."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._lock = threading.Lock()

    def add(
        self, filename: str, purpose: str, data: bytes, *, prefix: str = "file-batch-"
    ) -> StoredFile:
        """Store ``data`` under a new id (``prefix`` + 24 hex)."""
        stored = StoredFile(
            f"{prefix}{uuid.uuid4().hex[:24]}", filename, purpose, data, int(time.time())
        )
        with self._lock:
            self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        """The file, or a 404 rejection."""
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise Rejection(404, "NotFound", f"No such File object: {file_id}")  # invented
        return stored

    def delete(self, file_id: str) -> None:
        self.get(file_id)
        with self._lock:
            self._files.pop(file_id, None)

    def all(self) -> list[StoredFile]:
        """Every file, newest first."""
        with self._lock:
            return list(reversed(self._files.values()))


_STORES: weakref.WeakKeyDictionary[Emulator, FileStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def forget(emu: Emulator) -> None:
    """Drop the store of ``emu`` (its reset); the next use starts an empty one."""
    with _STORES_LOCK:
        _STORES.pop(emu, None)


def files_of(emu: Emulator) -> FileStore:
    """The file store of ``emu`` (created on first use; it lives as long as the emulator)."""
    with _STORES_LOCK:
        store = _STORES.get(emu)
        if store is None:
            store = _STORES[emu] = FileStore()
        return store


_DISPOSITION = re.compile(r'(\w+)="([^"]*)"')


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Fields of a ``multipart/form-data`` body: ``name -> (filename or None, content)``."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if "multipart/form-data" not in content_type or match is None:
        raise Rejection(
            400, "invalid_parameter_error", "The request must be multipart/form-data."
        )  # invented
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
        params = dict(_DISPOSITION.findall(disposition))
        if "name" in params:
            fields[params["name"]] = (params.get("filename"), content)
    return fields


def _json(emu: Emulator, payload: object) -> EmuResponse:
    request_id = emu.new_request_id()
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return emu.respond(body, request_id)


def handle_upload(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``POST /files``: multipart ``file`` and ``purpose`` → the file object."""
    fields = parse_multipart(req.headers.get("content-type", ""), req.body)
    purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace").strip()
    if "file" not in fields:
        raise Rejection(400, "invalid_parameter_error", "Missing required parameter: 'file'.")
    if purpose not in PURPOSES:
        raise Rejection(  # invented
            400,
            "invalid_parameter_error",
            f"Invalid value for 'purpose': {purpose!r}; supported: {', '.join(PURPOSES)}.",
        )
    filename, data = fields["file"]
    if not data:
        raise Rejection(400, "invalid_parameter_error", "The uploaded file is empty.")  # invented
    if len(data) > MAX_FILE_BYTES:
        raise Rejection(  # invented
            400, "invalid_parameter_error", "The file exceeds the 500 MB limit of a batch file."
        )
    stored = files_of(emu).add(filename or "upload.jsonl", purpose, data)
    return _json(emu, stored.to_json())


def handle_list(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``GET /files[?purpose=…]``: newest first."""
    purpose = req.query.get("purpose")
    data = [f.to_json() for f in files_of(emu).all() if purpose in (None, "", f.purpose)]
    return _json(
        emu,
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        },
    )


def handle_get(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``GET /files/{id}``."""
    return _json(emu, files_of(emu).get(match.group("file_id")).to_json())


def handle_content(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``GET /files/{id}/content``: the bytes (the recording had no content type)."""
    stored = files_of(emu).get(match.group("file_id"))
    response = emu.respond(stored.data, emu.new_request_id())
    response.headers.pop("content-type", None)
    return response


def handle_delete(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``DELETE /files/{id}``."""
    file_id = match.group("file_id")
    files_of(emu).delete(file_id)
    return _json(emu, {"id": file_id, "object": "file", "deleted": True})


_ID = r"(?P<file_id>[^/]+)"

#: ``(method, path regex, handler)`` for the app's route table.
ROUTES = [
    ("POST", re.escape(FILES_PATH), handle_upload),
    ("GET", re.escape(FILES_PATH), handle_list),
    ("GET", re.escape(FILES_PATH) + "/" + _ID, handle_get),
    ("DELETE", re.escape(FILES_PATH) + "/" + _ID, handle_delete),
    ("GET", re.escape(FILES_PATH) + "/" + _ID + "/content", handle_content),
]
