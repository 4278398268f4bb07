"""The OpenAI-compatible Files and Batches endpoints over the client's own ``httpx.Client``.

``../shared/docs/dashscope-api.md`` §5a: ``POST /files`` (multipart, ``purpose=batch``),
``GET /files/{id}/content``, ``POST /batches``, ``GET /batches/{id}``,
``POST /batches/{id}/cancel``, ``GET /batches``. Every call goes through the core's one retry
policy (:class:`~._retry.RetryPolicy`: connection errors, timeouts, 408, 429, 5xx; ``Retry-After``
honoured) and error mapping (:func:`~dashscope_embed._status.make_status_error`), so a 401
here raises the same :class:`~._errors.AuthenticationError` as an embedding call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dashscope_embed._client import DashScopeClient
from dashscope_embed._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
)
from dashscope_embed._status import make_status_error, parse_error_body, parse_retry_after
from dashscope_embed._wire import loads

__all__ = ["BatchInfo", "CompatApi", "list_batches"]

logger = logging.getLogger("dashscope_embed")


@dataclass(frozen=True)
class BatchInfo:
    """A batch object as the server returns it (§5a.4), typed.

    Attributes:
        id: ``batch_…``.
        status: ``validating``, ``in_progress``, ``finalizing``, ``completed``, ``failed``,
            ``expired``, ``cancelling`` or ``cancelled``.
        endpoint: ``/v1/embeddings`` for embedding batches.
        input_file_id: The uploaded JSONL file.
        output_file_id: Successful lines (once the batch has ended).
        error_file_id: Failed lines (once the batch has ended).
        created_at: Unix seconds.
        total: ``request_counts.total``.
        completed: ``request_counts.completed``.
        failed: ``request_counts.failed``.
        errors: Validation errors of a ``failed`` batch: ``(code, message, line)``.
        metadata: Echo of the create call's metadata.
    """

    id: str
    status: str
    endpoint: str = ""
    input_file_id: str = ""
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int = 0
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: tuple[tuple[str, str, int | None], ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BatchInfo:
        counts = doc.get("request_counts") or {}
        errors_doc = doc.get("errors") or {}
        data = errors_doc.get("data") if isinstance(errors_doc, dict) else None
        errors = tuple(
            (str(e.get("code") or ""), str(e.get("message") or ""), e.get("line"))
            for e in (data or [])
            if isinstance(e, dict)
        )
        meta = doc.get("metadata") or {}
        return cls(
            id=str(doc.get("id") or ""),
            status=str(doc.get("status") or ""),
            endpoint=str(doc.get("endpoint") or ""),
            input_file_id=str(doc.get("input_file_id") or ""),
            output_file_id=doc.get("output_file_id") or None,
            error_file_id=doc.get("error_file_id") or None,
            created_at=int(doc.get("created_at") or 0),
            total=int(counts.get("total") or 0),
            completed=int(counts.get("completed") or 0),
            failed=int(counts.get("failed") or 0),
            errors=errors,
            metadata={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
        )


class CompatApi:
    """Files/Batches calls with the client's host, headers, connection pool and retry policy.

    Args:
        client: The sync client whose configuration and ``httpx.Client`` are used.
        sleep: How to wait between retries (defaults to the client's).
    """

    def __init__(
        self, client: DashScopeClient, *, sleep: Callable[[float], None] | None = None
    ) -> None:
        self._http = client._http
        self._base = client.config.compatible_url
        self._headers = client.config.headers()
        # multipart sets its own Content-Type (with the boundary)
        self._bare = {k: v for k, v in self._headers.items() if k.lower() != "content-type"}
        self._policy = client._policy
        self._sleep = sleep or client._sleep

    # -- one retry loop for every call -------------------------------------------------------

    def _send(self, what: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        attempt = 0
        while True:
            outcome = self._attempt(what, send, attempt)
            if isinstance(outcome, httpx.Response):
                return outcome
            self._sleep(outcome)
            attempt += 1

    def _attempt(
        self, what: str, send: Callable[[], httpx.Response], attempt: int
    ) -> httpx.Response | float:
        """One try: the answer, or the delay before the next try (the policy decides).

        Raises:
            APIConnectionError, APIStatusError: not retryable, or no retry left.
        """
        try:
            resp = send()
        except httpx.TransportError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            if attempt >= self._policy.max_retries:
                kind = APITimeoutError if timeout else APIConnectionError
                raise kind(f"{what}: {type(exc).__name__}: {exc}") from exc
            delay = self._policy.delay(attempt)
            logger.debug("%s: %s, retry %d in %.2fs", what, type(exc).__name__, attempt + 1, delay)
            return delay
        if resp.status_code < 400:
            return resp
        resp.read()
        error = make_status_error(
            resp.status_code,
            parse_error_body(resp.content, resp.headers),
            retry_after=parse_retry_after(resp.headers),
        )
        if attempt >= self._policy.max_retries or not self._policy.should_retry_status(error):
            raise error
        throttled = isinstance(error, RateLimitError)
        hint = error.retry_after if isinstance(error, RateLimitError) else None
        delay = self._policy.delay(attempt, retry_after=hint, throttled=throttled)
        logger.debug("%s: HTTP %d, retry %d in %.2fs", what, error.status, attempt + 1, delay)
        return delay

    def _json(self, what: str, send: Callable[[], httpx.Response]) -> Any:
        return self._decode(what, self._send(what, send))

    def _decode(self, what: str, resp: httpx.Response) -> Any:
        try:
            return loads(resp.content)
        except ValueError as exc:
            raise APIStatusError(
                f"{what}: the answer is not JSON: {resp.content[:200]!r}", status=resp.status_code
            ) from exc

    # -- files --------------------------------------------------------------------------------

    def upload(self, path: Path, filename: str) -> dict[str, Any]:
        """``POST /files`` with ``purpose=batch``; the file is streamed from disk."""

        def send() -> httpx.Response:
            with open(path, "rb") as fh:
                return self._http.post(
                    f"{self._base}/files",
                    headers=self._bare,
                    data={"purpose": "batch"},
                    files={"file": (filename, fh, "application/jsonl")},
                )

        doc: dict[str, Any] = self._json(f"upload {filename}", send)
        return doc

    def delete_file(self, file_id: str) -> None:
        """``DELETE /files/{id}``."""
        self._send(
            f"delete {file_id}",
            lambda: self._http.delete(f"{self._base}/files/{file_id}", headers=self._bare),
        )

    def iter_lines(self, file_id: str) -> Iterator[bytes]:
        """``GET /files/{id}/content`` as JSONL lines, streamed (memory: one chunk).

        Retries cover getting the answer; a connection lost in the middle of the body raises
        :class:`APIConnectionError` (the caller restarts the whole file, which is idempotent).
        """
        url = f"{self._base}/files/{file_id}/content"
        request = self._http.build_request("GET", url, headers=self._bare)
        resp = self._send(f"download {file_id}", lambda: self._http.send(request, stream=True))
        try:
            rest = b""
            for chunk in resp.iter_bytes(1 << 20):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                yield from (line for line in lines if line.strip())
            if rest.strip():
                yield rest
        except httpx.TransportError as exc:
            raise APIConnectionError(f"download {file_id} interrupted: {exc}") from exc
        finally:
            resp.close()

    # -- batches ------------------------------------------------------------------------------

    def create_batch(
        self,
        input_file_id: str,
        *,
        endpoint: str,
        window: str,
        metadata: Mapping[str, str],
        adopt: bool = False,
    ) -> BatchInfo:
        """``POST /batches``, at most one batch per input file.

        A create that timed out or failed with a 5xx may still have been carried out, so before
        every retry (and first of all with ``adopt``, for a file whose create may have been sent
        by a process that died) the file's batch is looked up and used if it exists: a lost
        answer never bills the same input twice.
        """
        body = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": window,
            "metadata": dict(metadata),
        }
        what = f"create batch for {input_file_id}"
        attempt = 0
        while True:
            if adopt or attempt:
                found = self.find_batch(input_file_id)
                if found is not None:
                    logger.debug("%s: adopting %s, created before", what, found.id)
                    return found
            outcome = self._attempt(
                what,
                lambda: self._http.post(f"{self._base}/batches", headers=self._headers, json=body),
                attempt,
            )
            if isinstance(outcome, httpx.Response):
                return BatchInfo.from_json(self._decode(what, outcome))
            self._sleep(outcome)
            attempt += 1

    def find_batch(self, input_file_id: str) -> BatchInfo | None:
        """The batch created for ``input_file_id``, if any (``GET /batches?input_file_ids=``)."""
        found, _ = self.list_batches(input_file_ids=input_file_id, limit=1)
        return found[0] if found else None

    def get_batch(self, batch_id: str) -> BatchInfo:
        """``GET /batches/{id}``."""
        doc = self._json(
            f"get {batch_id}",
            lambda: self._http.get(f"{self._base}/batches/{batch_id}", headers=self._headers),
        )
        return BatchInfo.from_json(doc)

    def cancel_batch(self, batch_id: str) -> BatchInfo:
        """``POST /batches/{id}/cancel``."""
        doc = self._json(
            f"cancel {batch_id}",
            lambda: self._http.post(
                f"{self._base}/batches/{batch_id}/cancel", headers=self._headers
            ),
        )
        return BatchInfo.from_json(doc)

    def list_batches(
        self,
        *,
        limit: int = 20,
        after: str | None = None,
        input_file_ids: str | None = None,
        status: str | None = None,
    ) -> tuple[list[BatchInfo], bool]:
        """``GET /batches`` → (batches, has_more). An empty page has ``"data": null``."""
        params: dict[str, str | int] = {"limit": limit}
        if after:
            params["after"] = after
        if input_file_ids:
            params["input_file_ids"] = input_file_ids
        if status:
            params["status"] = status
        doc = self._json(
            "list batches",
            lambda: self._http.get(f"{self._base}/batches", headers=self._headers, params=params),
        )
        data = doc.get("data") or []
        return [BatchInfo.from_json(d) for d in data], bool(doc.get("has_more"))


def list_batches(
    client: DashScopeClient,
    *,
    limit: int = 20,
    after: str | None = None,
    status: str | None = None,
) -> list[BatchInfo]:
    """The account's recent batches, newest first (the server keeps 30 days).

    Args:
        client: A configured sync client.
        limit: Page size (1–100).
        after: A batch id to list after (pagination).
        status: Comma-separated statuses to keep, e.g. ``"in_progress,validating"``.
    """
    batches, _ = CompatApi(client).list_batches(limit=limit, after=after, status=status)
    return batches
