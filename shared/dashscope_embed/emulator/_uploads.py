"""Temporary-file uploads: the dashscope SDK's local-file path, served by the emulator itself.

The SDK turns ``{"image": "file:///…/cat.png"}`` into three requests (``dashscope-api.md`` §8.5):

1. ``GET /api/v1/uploads?action=getPolicy&model=…`` → an OSS upload policy (recorded shape);
2. a multipart form ``POST`` of the file to the policy's ``upload_host``;
3. the embedding request with ``oss://<key>`` and ``X-DashScope-OssResourceResolve: enable``.

Here ``upload_host`` is the emulator's own ``/_oss/…`` path (built from the request's ``Host``
header, so it is whatever address the client used), the policy's signature is an HMAC with a
per-emulator secret, and the bytes stay in memory: nothing leaves the machine. A later
multimodal request resolves ``oss://`` values to the stored bytes (:func:`resolve_contents`), so
an uploaded image gets exactly the vector of the same bytes sent as a ``data:`` URI.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dashscope_embed.emulator._faults import Rejection
from dashscope_embed.emulator._files import parse_multipart

if TYPE_CHECKING:
    from dashscope_embed.emulator._app import Emulator, EmuRequest, EmuResponse

__all__ = ["OSS_PATH", "ROUTES", "UPLOADS_PATH", "forget", "is_public", "resolve_contents"]

UPLOADS_PATH = "/api/v1/uploads"
#: Where the emulator accepts the OSS form post (authorised by the policy, not by an API key).
OSS_PATH = "/_oss/dashscope-file-mgr"
#: What ``getPolicy`` reports (the recorded values).
MAX_FILE_MB = 1024
EXPIRE_SECONDS = 300
ACCESS_KEY_ID = "LTAI-emulator-not-a-key"
RESOLVE_HEADER = "x-dashscope-ossresourceresolve"
_MEDIA_KEYS = ("image", "video")


@dataclass
class UploadStore:
    """The uploaded objects of one emulator, and the secret that signs its policies."""

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    objects: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sign(self, policy: str) -> str:
        mac = hmac.new(self.secret, policy.encode("ascii"), hashlib.sha1).digest()
        return base64.b64encode(mac).decode("ascii")


_STORES: weakref.WeakKeyDictionary[Emulator, UploadStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def _store(emu: Emulator) -> UploadStore:
    with _STORES_LOCK:
        store = _STORES.get(emu)
        if store is None:
            store = _STORES[emu] = UploadStore()
        return store


def forget(emu: Emulator) -> None:
    """Drop every upload of ``emu`` (its reset)."""
    with _STORES_LOCK:
        _STORES.pop(emu, None)


def is_public(req: EmuRequest) -> bool:
    """Whether ``req`` is authorised by an upload policy rather than an API key (like OSS)."""
    return req.method == "POST" and req.path == OSS_PATH


def _json(emu: Emulator, payload: object) -> EmuResponse:
    request_id = emu.new_request_id()
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return emu.respond(body, request_id)


def handle_policy(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``GET /api/v1/uploads?action=getPolicy&model=…`` → the recorded policy shape."""
    if req.query.get("action") != "getPolicy":
        # Invented: the doc records only the getPolicy action.
        raise Rejection(400, "InvalidParameter", "Unsupported action, only getPolicy is allowed.")
    upload_dir = f"dashscope-instant/{uuid.uuid4().hex}/{time.strftime('%Y-%m-%d')}/{uuid.uuid4()}"
    expires = time.gmtime(time.time() + EXPIRE_SECONDS)
    conditions = [["starts-with", "$key", upload_dir], ["content-length-range", 0, MAX_FILE_MB]]
    document: dict[str, Any] = {
        "expiration": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", expires),
        "conditions": conditions,
    }
    policy = base64.b64encode(json.dumps(document).encode()).decode("ascii")
    host = req.headers.get("host") or "127.0.0.1"
    data = {
        "policy": policy,
        "signature": _store(emu).sign(policy),
        "upload_dir": upload_dir,
        "upload_host": f"http://{host}{OSS_PATH}",
        "expire_in_seconds": EXPIRE_SECONDS,
        "max_file_size_mb": MAX_FILE_MB,
        "capacity_limit_mb": 999999999,
        "oss_access_key_id": ACCESS_KEY_ID,
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }
    return _json(emu, {"data": data, "request_id": emu.new_request_id()})


def _oss_error(emu: Emulator, status: int, code: str, message: str) -> EmuResponse:
    """An OSS-style XML error (OSS answers XML, not the DashScope envelope)."""
    request_id = emu.new_request_id()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{message}</Message>\n"
        f"  <RequestId>{request_id}</RequestId>\n</Error>\n"
    ).encode()
    response = emu.respond(body, request_id, status=status)
    response.headers["content-type"] = "application/xml"
    return response


def handle_oss_upload(emu: Emulator, req: EmuRequest, match: re.Match[str]) -> EmuResponse:
    """``POST /_oss/…``: the SDK's form post; stores the file under its ``key``."""
    try:
        fields = parse_multipart(req.headers.get("content-type", ""), req.body)
    except Rejection:
        return _oss_error(emu, 400, "InvalidArgument", "The body must be multipart/form-data.")
    text = {name: value.decode("utf-8", "replace") for name, (filename, value) in fields.items()}
    store = _store(emu)
    policy = text.get("policy", "")
    signature = text.get("Signature", "")
    if not policy or not hmac.compare_digest(store.sign(policy), signature):
        message = "The request signature we calculated does not match the signature you provided."
        return _oss_error(emu, 403, "SignatureDoesNotMatch", message)
    try:
        document = json.loads(base64.b64decode(policy))
        prefix = str(document["conditions"][0][2])
    except (ValueError, KeyError, IndexError, TypeError):
        return _oss_error(emu, 400, "InvalidPolicyDocument", "Invalid policy document.")
    key = text.get("key", "")
    if not key.startswith(prefix + "/") or "file" not in fields:
        return _oss_error(emu, 403, "AccessDenied", "Invalid according to Policy.")
    content_type = text.get("x-oss-content-type") or "application/octet-stream"
    with store.lock:
        if key in store.objects and text.get("x-oss-forbid-overwrite") == "true":
            return _oss_error(emu, 409, "FileAlreadyExists", "The object you specified exists.")
        store.objects[key] = (content_type, fields["file"][1])
    status = int(text.get("success_action_status") or 204)
    response = emu.respond(b"", emu.new_request_id(), status=status if status == 200 else 204)
    response.headers.pop("content-type", None)
    return response


def _resolve(store: UploadStore, value: str) -> str:
    key = value.removeprefix("oss://")
    with store.lock:
        found = store.objects.get(key)
    if found is None:
        # Invented: the doc records no message for a missing temporary file.
        raise Rejection(400, "InvalidURL", "Invalid URL provided in your request.")
    content_type, data = found
    if not content_type.startswith("image/"):
        return value  # videos stay URL-like: the emulator never decodes them
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def resolve_contents(emu: Emulator, req: EmuRequest, contents: list[Any]) -> list[Any]:
    """``contents`` with every ``oss://`` image replaced by a ``data:`` URI of its bytes.

    Raises:
        Rejection: 400 if an ``oss://`` value arrives without ``X-DashScope-OssResourceResolve:
            enable`` (the docs require it) or names nothing that was uploaded.
    """

    def is_oss(value: object) -> bool:
        return isinstance(value, str) and value.startswith("oss://")

    def uses_oss(item: object) -> bool:
        if not isinstance(item, dict):
            return False
        images = item.get("multi_images")
        many = images if isinstance(images, list) else []
        return any(is_oss(item.get(k)) for k in _MEDIA_KEYS) or any(map(is_oss, many))

    if not any(uses_oss(item) for item in contents):
        return contents
    if req.headers.get(RESOLVE_HEADER, "").lower() != "enable":
        raise Rejection(  # invented message, naming the header the docs require
            400,
            "InvalidParameter",
            "oss:// resources need the header X-DashScope-OssResourceResolve: enable.",
        )
    store = _store(emu)
    out: list[Any] = []
    for item in contents:
        if uses_oss(item):
            item = dict(item)
            for key in _MEDIA_KEYS:
                if is_oss(item.get(key)):
                    item[key] = _resolve(store, item[key])
            if isinstance(item.get("multi_images"), list):
                item["multi_images"] = [
                    _resolve(store, v) if is_oss(v) else v for v in item["multi_images"]
                ]
        out.append(item)
    return out


#: ``(method, path regex, handler)`` for the app's route table.
ROUTES = [
    ("GET", re.escape(UPLOADS_PATH), handle_policy),
    ("POST", re.escape(OSS_PATH), handle_oss_upload),
]
