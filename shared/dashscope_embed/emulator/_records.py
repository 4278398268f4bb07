"""What the emulator remembers about its traffic: the redacted request log and the counters.

Kept apart from the app (``_app.py``) because tests, the pytest plugin and the admin endpoint
all read these records, and because redaction must happen in exactly one place: a log may end up
in a test report, a cassette or an admin answer, so secrets are replaced *before* a record exists.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SECRET_HEADERS", "EmulatorStats", "RecordedRequest", "digest", "redact_headers"]

#: Headers whose values never reach the log (the key travels in either of them).
SECRET_HEADERS = frozenset({"authorization", "x-dashscope-apikey"})
REDACTED = "REDACTED"


def digest(key: str) -> str:
    """SHA-256 hex of ``key``: enough to prove which key was used, useless to recover it."""
    return hashlib.sha256(key.encode()).hexdigest()


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of ``headers`` (lower-case names) with every secret value replaced."""
    return {name: REDACTED if name in SECRET_HEADERS else value for name, value in headers.items()}


@dataclass(frozen=True)
class RecordedRequest:
    """One logged request; secret headers read ``"REDACTED"`` and status 0 means dropped.

    The key itself is never kept (a log may end up in a report or a cassette); ``key_digest``
    (SHA-256 of the key that was presented) lets a test prove which key reached the wire.
    ``query`` holds the URL query parameters (e.g. ``action=getPolicy``).
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    status: int
    key_digest: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def used_key(self, key: str) -> bool:
        """Whether this request carried ``key`` (compared by digest)."""
        return bool(self.key_digest) and hmac.compare_digest(self.key_digest, digest(key))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the admin endpoint's ``/requests`` rows)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "status": self.status,
        }


@dataclass(frozen=True)
class EmulatorStats:
    """A snapshot of the counters (successful requests only count ``tokens`` and ``rows``).

    ``injected`` counts answers that were faults on purpose (queued, chaos rules, random rates).
    """

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    throttled: int = 0
    dropped: int = 0
    tokens: int = 0
    rows: int = 0
    injected: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (status codes become string keys)."""
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "throttled": self.throttled,
            "dropped": self.dropped,
            "tokens": self.tokens,
            "rows": self.rows,
            "injected": self.injected,
        }
