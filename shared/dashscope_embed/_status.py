"""Error answers: the envelope, ``Retry-After``, and the one status → exception mapping.

Pure functions over bytes and headers; :mod:`._errors` holds the classes they return.
"""

from __future__ import annotations

import datetime
import email.utils
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BatchSizeError,
    ContentModerationError,
    InputTooLongError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ._models import suggest_model
from ._wire import loads

__all__ = ["ErrorBody", "make_status_error", "model_hint", "parse_error_body", "parse_retry_after"]


@dataclass(frozen=True)
class ErrorBody:
    """The code / message / request id of an error answer (native or OpenAI envelope)."""

    code: str
    message: str
    request_id: str | None


def parse_error_body(body: bytes, headers: Mapping[str, str]) -> ErrorBody:
    """Read ``{code, message, request_id}`` or ``{"error": {...}}``; tolerate non-JSON bodies.

    A body that is not a JSON object (empty, HTML, text, not UTF-8) gives code ``"Unknown"`` and
    its first 500 characters (``"(empty body)"`` when there are none) as the message.
    """
    header_id = headers.get("x-request-id") or headers.get("X-Request-ID")
    try:
        doc = loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = body.decode("utf-8", "replace").strip()[:500]
        return ErrorBody("Unknown", text or "(empty body)", header_id)
    err = doc.get("error")
    if isinstance(err, dict):
        code = str(err.get("code") or err.get("type") or "")
        message = str(err.get("message") or "")
    else:
        code = str(doc.get("code") or "")
        message = str(doc.get("message") or doc.get("msg") or "")
    rid = doc.get("request_id") or doc.get("id") or header_id
    return ErrorBody(code, message, str(rid) if rid else None)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), if present."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are GMT, never the machine's local time
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_BATCH_LIMIT_RE = re.compile(r"should not be larger than (\d+)")


_LENGTH_RE = re.compile(r"Range of input length should be \[1, ?(\d+)\]")


_REGION_HINT = (
    "DashScope API keys are region-specific: a Beijing (cn-beijing) key fails on the "
    "international host and vice versa. Check region=/base_url= against the console where the "
    "key was created."
)


_THROTTLE_HINT = "throttled by the account's RPM/TPM quota; lower max_concurrency or set rpm/tpm."


_MODEL_MISSING_RE = re.compile(  # the answers of §2.6 of the API notes for an unknown model
    r"model (?:does )?not exist|model can ?not be found|model name is invalid", re.IGNORECASE
)


_MODEL_MISSING_CODES = ("ModelNotFound",)


def model_hint(error: ErrorBody, model: str | None) -> str:
    """``"did you mean X?"`` when the server says ``model`` does not exist and ``X`` is one edit
    away from it in the catalog; ``""`` otherwise."""
    if not model:
        return ""
    if error.code not in _MODEL_MISSING_CODES and not _MODEL_MISSING_RE.search(error.message):
        return ""
    suggestion = suggest_model(model)
    return f"did you mean {suggestion}?" if suggestion else ""


def make_status_error(
    status: int,
    error: ErrorBody,
    *,
    input_indices: Sequence[int] = (),
    retry_after: float | None = None,
    model: str | None = None,
) -> APIStatusError:
    """Map an HTTP status and DashScope code to the one matching exception class.

    ``model`` is the name the request sent: when the server answers that the model does not
    exist and the name is one edit away from a catalog name, the error's hint says
    ``did you mean <name>?``.
    """
    kw: dict[str, Any] = {
        "status": status,
        "code": error.code,
        "request_id": error.request_id,
        "input_indices": input_indices,
    }
    code, msg = error.code, error.message
    if code == "DataInspectionFailed" or "inappropriate content" in msg:
        return ContentModerationError(msg, **kw)
    if code == "Arrearage" or status == 403:
        return PermissionDeniedError(msg, **kw)
    if status == 401 or code in ("InvalidApiKey", "invalid_api_key"):
        return AuthenticationError(msg, hint=_REGION_HINT, **kw)
    if status == 429 or code.startswith("Throttling"):
        return RateLimitError(msg, retry_after=retry_after, hint=_THROTTLE_HINT, **kw)
    if status == 404:
        return NotFoundError(msg, hint=model_hint(error, model), **kw)
    if status == 408 or status >= 500:
        return ServerError(msg, **kw)
    limit = _BATCH_LIMIT_RE.search(msg)
    if limit and "batch size" in msg:
        return BatchSizeError(msg, limit=int(limit.group(1)), **kw)
    if _LENGTH_RE.search(msg):
        return InputTooLongError(msg, **kw)
    return BadRequestError(msg, hint=model_hint(error, model), **kw)
