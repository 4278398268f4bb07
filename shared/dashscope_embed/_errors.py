"""One exception tree for everything the client raises.

::

    DashScopeError
    ├── ConfigurationError            bad client settings (no key, unknown region, ...) — ValueError
    ├── InvalidInputError             rejected before any request (index + rule) — ValueError
    ├── APIConnectionError            no HTTP answer (DNS, refused, dropped connection)
    │   └── APITimeoutError           the request timed out
    └── APIStatusError                the server answered with an error status/code
        ├── BadRequestError           400 (InvalidParameter, BadRequest.*)
        │   ├── BatchSizeError        "batch size is invalid, it should not be larger than N"
        │   ├── InputTooLongError     "Range of input length should be [1, N]"
        │   └── ContentModerationError  DataInspectionFailed
        ├── AuthenticationError       401 InvalidApiKey (keys are region-specific: see the hint)
        ├── PermissionDeniedError     403, and Arrearage (account in arrears)
        ├── NotFoundError             404 (ModelNotFound, WorkSpaceNotFound, UnsupportedModel)
        ├── RateLimitError            429 Throttling* (carries retry_after)
        └── ServerError               408, 5xx

Every :class:`APIStatusError` carries the HTTP ``status``, DashScope ``code``, ``message``,
``request_id`` and ``input_indices`` (positions, in the caller's input, of the batch that failed).
The API key never appears in any message: errors are built from the server's answer only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._types import PartialResult

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchSizeError",
    "ConfigurationError",
    "ContentModerationError",
    "DashScopeError",
    "InputTooLongError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
]


class DashScopeError(Exception):
    """Base class of every error raised by dashscope-embed.

    Attributes:
        partial: For an error that stopped an embedding call after some requests succeeded,
            a :class:`~dashscope_embed.PartialResult` with those rows and their vectors
            (``None`` when nothing was embedded or the error came before any request).
    """

    partial: PartialResult | None = None


class ConfigurationError(DashScopeError, ValueError):
    """The client was configured in a way that cannot work (checked at construction)."""


class InvalidInputError(DashScopeError, ValueError):
    """An input was rejected before any request was sent.

    Attributes:
        index: Position of the offending input (``None`` for a bad option).
        rule: Short name of the violated rule (``"empty_text"``, ``"dimension"``...).
    """

    def __init__(self, message: str, *, index: int | None = None, rule: str = "") -> None:
        super().__init__(message)
        self.index = index
        self.rule = rule


class APIConnectionError(DashScopeError):
    """No HTTP answer was received (after retries)."""

    def __init__(self, message: str, *, input_indices: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.input_indices = tuple(input_indices)


class APITimeoutError(APIConnectionError):
    """The request timed out (after retries)."""


class APIStatusError(DashScopeError):
    """The server answered with an error.

    Attributes:
        status: HTTP status code.
        code: DashScope error code, e.g. ``"InvalidParameter"`` or ``"Throttling.RateQuota"``.
        message: The server's message, verbatim.
        request_id: The server's request id (quote it to Alibaba Cloud support).
        input_indices: Positions in the caller's input of the rows in the failed request.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "",
        request_id: str | None = None,
        input_indices: Sequence[int] = (),
        hint: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.input_indices = tuple(input_indices)
        self.hint = hint
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code:
            parts.append(self.code)
        text = f"{' '.join(parts)}: {self.message}"
        if self.input_indices:
            shown = ", ".join(str(i) for i in self.input_indices[:20])
            more = "…" if len(self.input_indices) > 20 else ""
            text += f" (inputs {shown}{more})"
        if self.request_id:
            text += f" [request_id={self.request_id}]"
        if self.hint:
            text += f"\nHint: {self.hint}"
        return text


class BadRequestError(APIStatusError):
    """HTTP 400: the request was invalid; never retried."""


class BatchSizeError(BadRequestError):
    """The server's row limit is lower than the batch sent (``limit`` holds the new limit)."""

    def __init__(self, message: str, *, limit: int, **kwargs: object) -> None:
        self.limit = limit
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class InputTooLongError(BadRequestError):
    """One or more inputs exceed the model's token limit; ``input_indices`` names them."""


class ContentModerationError(BadRequestError):
    """Content moderation (``DataInspectionFailed``) rejected an input or output."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the key was rejected (keys are region-specific)."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403 or ``Arrearage``: no access to the model/workspace, or the account is in arrears."""


class NotFoundError(APIStatusError):
    """HTTP 404: unknown model, workspace or resource."""


class RateLimitError(APIStatusError):
    """HTTP 429: throttled. ``retry_after`` holds the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ServerError(APIStatusError):
    """HTTP 408 or 5xx: the service failed; retried before it is raised."""
