"""The sync and async clients: thin I/O shells over :mod:`._plan`.

They differ only where they must: how a request is sent (``httpx.Client`` vs
``httpx.AsyncClient``), how they wait (``time.sleep`` vs ``asyncio.sleep``) and how batches run
side by side (a thread pool vs tasks). Keep :meth:`DashScopeClient._send_batch` and
:meth:`AsyncDashScopeClient._send_batch` line-for-line alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from ._config import ClientConfig, resolve_config
from ._media import MultimodalInput
from ._models import DEFAULT_TEXT_MODEL, get_model
from ._multimodal import multimodal_job
from ._plan import Batch, Job, Outcome, TextJob, TextOptions, validate_text_options, validate_texts
from ._retry import RetryPolicy
from ._stats import ClientStats, StatsRecorder
from ._throttle import ExternalLimiter, Throttle
from ._types import EmbeddingResult, OutputType, TextType

__all__ = ["AsyncDashScopeClient", "DashScopeClient"]

logger = logging.getLogger("dashscope_embed")


class _BaseClient:
    """Configuration, validation and job creation shared by both shells (no I/O)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        region: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        throttle: Throttle | None = None,
        rate_limiter: ExternalLimiter | None = None,
    ) -> None:
        self._config: ClientConfig = resolve_config(
            api_key=api_key,
            region=region,
            base_url=base_url,
            workspace=workspace,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
        )
        self._policy = RetryPolicy(max_retries=self._config.max_retries)
        self._learned_limits: dict[str, int] = {}
        self._limits_lock = threading.Lock()
        self._headers = self._config.headers()
        self._throttle = throttle or Throttle(
            max_concurrency=self._config.max_concurrency, rpm=rpm, tpm=tpm
        )
        self._rate_limiter = rate_limiter
        self._stats = StatsRecorder()

    @property
    def stats(self) -> ClientStats:
        """Counters since creation: requests, retries by reason, 429s, tokens, adaptive state."""
        snaps = {m: self._throttle.snapshot(m) for m in self._throttle.models()}
        return self._stats.snapshot(
            {m: s.concurrency_limit for m, s in snaps.items()},
            {m: s.rate_per_second for m, s in snaps.items()},
        )

    @property
    def throttle(self) -> Throttle:
        """The admission control of this client (pass it to another client to share it)."""
        return self._throttle

    def _workers(self, batches: int) -> int:
        """Batches run side by side: twice the throttle's cap, because a batch sleeping before
        its retry holds a worker but no slot (the throttle bounds requests in flight)."""
        cap = self._throttle.max_concurrency
        return min(batches, 1 if cap == 1 else 2 * cap)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        kind = {"done": "ok"}.get(outcome.kind, "other")
        if outcome.status == 429:
            kind = "throttled"
        self._throttle.release(job.model, kind, retry_after=outcome.retry_after)
        self._stats.record(
            outcome.kind,
            reason=outcome.reason,
            status=outcome.status,
            tokens=outcome.tokens,
            rows=outcome.rows,
        )

    def _log_done(self, job: Job, result: EmbeddingResult) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            st = self.stats
            logger.debug(
                "embedded %d rows with %s: %d requests, %d tokens; client totals: %d requests, "
                "retries %s, %d throttled, window %s",
                len(result),
                job.model,
                result.usage.requests,
                result.usage.total_tokens,
                st.requests,
                st.retries,
                st.throttled,
                st.concurrency_limit,
            )

    def __repr__(self) -> str:
        c = self._config
        return (
            f"{type(self).__name__}(base_url={c.base_url!r}, region={c.region!r}, "
            f"workspace={c.workspace!r}, max_concurrency={c.max_concurrency})"
        )

    @property
    def config(self) -> ClientConfig:
        """The resolved configuration (its repr hides the key)."""
        return self._config

    @property
    def learned_limits(self) -> dict[str, int]:
        """Row limits learned from the server's "batch size is invalid" answers, per model."""
        return dict(self._learned_limits)

    def _remember_limit(self, model: str, limit: int) -> None:
        with self._limits_lock:
            current = self._learned_limits.get(model)
            if current is None or limit < current:
                self._learned_limits[model] = limit

    def _text_job(
        self,
        texts: Sequence[str],
        *,
        model: str,
        text_type: TextType | None,
        dimension: int | None,
        output_type: OutputType,
        instruct: str | None,
        max_batch_size: int | None,
        on_progress: Callable[[int], None] | None,
    ) -> TextJob | EmbeddingResult:
        spec = get_model(model, kind="text")
        opts = TextOptions(model, text_type, dimension, output_type, instruct)
        explicit_url = self._config.region is None
        validate_text_options(opts, spec, region=None if explicit_url else self._config.region)
        if spec.known and not spec.supports_dimension:
            # v1/v2 have one fixed dimension and reject the parameter: never send it.
            opts = TextOptions(model, text_type, None, output_type, instruct)
        items = validate_texts(texts)
        if max_batch_size is not None and (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < 1
        ):
            from ._errors import InvalidInputError

            raise InvalidInputError(
                f"max_batch_size must be an int >= 1, got {max_batch_size!r}",
                rule="max_batch_size",
            )
        if not items:
            dim = dimension or (spec.default_dimension if spec.known else None)
            return EmbeddingResult.empty(
                model, dim if opts.want_dense else None, sparse=opts.want_sparse
            )
        size = max_batch_size or spec.max_batch_size
        learned = self._learned_limits.get(model)
        if learned is not None:
            size = min(size, learned)
        return TextJob(
            items,
            opts,
            spec,
            size,
            self._policy,
            on_limit=self._remember_limit,
            on_progress=on_progress,
        )


class DashScopeClient(_BaseClient):
    """Synchronous DashScope embedding client.

    Args:
        api_key: API key; defaults to ``DASHSCOPE_API_KEY``. Never printed or logged.
        region: ``cn-beijing`` (default), ``ap-southeast-1``/``intl``, ``us-east-1``,
            ``cn-hongkong``, ``finance``, ``eu-central-1``/``ap-northeast-1`` (workspace only);
            defaults to ``DASHSCOPE_REGION``.
        base_url: Explicit host (wins over region), e.g. the emulator's URL; defaults to
            ``DASHSCOPE_BASE_URL``.
        workspace: Workspace id sent as ``X-DashScope-WorkSpace``; defaults to
            ``DASHSCOPE_WORKSPACE``.
        timeout: Seconds per request (default 60).
        max_retries: Retries per batch on 408/429/5xx/connection errors (default 5).
        max_concurrency: Batches in flight at once (default 8).
        http_client: An ``httpx.Client`` to use (you keep ownership; it is not closed).

    Example:
        >>> client = DashScopeClient()  # doctest: +SKIP
        >>> result = client.embed_texts(["hello", "world"], dimension=512)  # doctest: +SKIP
        >>> result.embeddings.shape  # doctest: +SKIP
        (2, 512)
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        region: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        throttle: Throttle | None = None,
        rate_limiter: ExternalLimiter | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key,
            region=region,
            base_url=base_url,
            workspace=workspace,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            rpm=rpm,
            tpm=tpm,
            throttle=throttle,
            rate_limiter=rate_limiter,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self._config.timeout,
            limits=httpx.Limits(max_connections=max(10, self._config.max_concurrency)),
        )
        self._sleep: Callable[[float], None] = time.sleep
        self._slot_freed = threading.Condition()
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Stop the worker threads and close the HTTP pool (only if this client created it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> DashScopeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        model: str = DEFAULT_TEXT_MODEL,
        text_type: TextType | None = "document",
        dimension: int | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        max_batch_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> EmbeddingResult:
        """Embed texts with the native API, batching and retrying per batch.

        Args:
            texts: The texts (a list; a bare string is rejected). Empty list → empty result.
            model: Model id (default ``text-embedding-v4``); unknown ids use safe limits.
            text_type: ``"document"`` (default) for corpus texts, ``"query"`` for searches.
            dimension: Output dimension (validated against the model's allowed values).
            output_type: ``"dense"``, ``"sparse"`` or ``"dense&sparse"``.
            instruct: Task instruction for queries (text-embedding-v4 / qwen3.7).
            max_batch_size: Rows per request; defaults to the model's limit.
            on_progress: Called with the number of rows finished after each batch.

        Returns:
            An :class:`EmbeddingResult` with one row per input, in input order.

        Raises:
            InvalidInputError: a bad text or option, before any request.
            APIStatusError: a subclass per meaning, after retries where they apply.
            APIConnectionError: no answer after retries.
        """
        job = self._text_job(
            texts,
            model=model,
            text_type=text_type,
            dimension=dimension,
            output_type=output_type,
            instruct=instruct,
            max_batch_size=max_batch_size,
            on_progress=on_progress,
        )
        return self._execute(job)

    def _execute(self, job: Job | EmbeddingResult) -> EmbeddingResult:
        """Run a prepared job (an already-final result passes through untouched)."""
        if isinstance(job, EmbeddingResult):
            return job
        self._run(job)
        result = job.result()
        self._log_done(job, result)
        return result

    def _run(self, job: Job) -> None:
        queue = deque(job.initial_batches())
        workers = self._workers(len(queue))
        if workers <= 1:
            while queue:
                queue.extendleft(reversed(self._send_batch(job, queue.popleft())))
            return
        pool = self._thread_pool()
        running: set[Future[list[Batch]]] = set()
        try:
            while queue or running:
                while queue and len(running) < workers:
                    running.add(pool.submit(self._send_batch, job, queue.popleft()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    queue.extend(fut.result())
        except BaseException:
            job.aborted = True  # in-flight batches stop after their current attempt
            for fut in running:
                fut.cancel()
            wait(running)
            raise

    def _thread_pool(self) -> ThreadPoolExecutor:
        """One pool for the client's lifetime (threads are not re-created per call)."""
        with self._limits_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._workers(2**31), thread_name_prefix="dashscope"
                )
            return self._pool

    def _admit(self, job: Job, batch: Batch) -> None:
        tokens = job.estimated_tokens(batch)
        if self._rate_limiter is not None:
            self._rate_limiter.acquire(tokens)
        while (wait := self._throttle.acquire(job.model, tokens)) > 0:
            with self._slot_freed:
                self._slot_freed.wait(wait)

    def _release(self, job: Job, outcome: Outcome) -> None:
        self._finish(job, outcome)
        with self._slot_freed:
            self._slot_freed.notify_all()

    def _send_batch(self, job: Job, batch: Batch) -> list[Batch]:
        attempt = 0
        while not job.aborted:
            self._admit(job, batch)
            body = job.body(batch)
            try:
                resp = self._http.post(
                    self._config.api_url + job.path, content=body, headers=self._headers
                )
            except httpx.TimeoutException as exc:
                outcome = job.on_transport_error(batch, attempt, exc, timeout=True)
            except httpx.TransportError as exc:
                outcome = job.on_transport_error(batch, attempt, exc, timeout=False)
            else:
                outcome = job.on_response(
                    batch, attempt, resp.status_code, resp.headers, resp.content
                )
            self._release(job, outcome)
            if outcome.kind == "retry":
                self._sleep(outcome.delay)
                attempt += 1
                continue
            if outcome.kind == "raise":
                assert outcome.error is not None
                raise outcome.error
            return list(outcome.batches)
        return []

    def embed_multimodal(
        self,
        inputs: Sequence[MultimodalInput],
        *,
        model: str = "tongyi-embedding-vision-plus",
        dimension: int | None = None,
        fps: float | None = None,
        instruct: str | None = None,
        enable_fusion: bool | None = None,
        max_batch_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> EmbeddingResult:
        """Embed texts, images and videos into one vector space (the multimodal endpoint).

        Args:
            inputs: A list of ``str`` (always a text, never read as a file),
                :class:`~dashscope_embed.Image` (URL, local path, bytes, file object, PIL image
                or ``data:`` URI; local images are sent inline, never uploaded),
                :class:`~dashscope_embed.Video` (URL), :class:`~dashscope_embed.MultiImages`
                and :class:`~dashscope_embed.Fused`. Empty list → empty result, no request.
            model: ``tongyi-embedding-vision-plus`` (default), ``-flash``, their ``-2026-03-06``
                snapshots, ``qwen3-vl-embedding`` or ``multimodal-embedding-v1`` (Beijing only).
            dimension: Output dimension (validated against the model's allowed values).
            fps: Share of video frames sampled, in [0, 1].
            instruct: Task instruction (qwen3-vl-embedding).
            enable_fusion: qwen3-vl-embedding only: the whole call becomes one fused vector.
            max_batch_size: Elements per request; defaults to the model's limit.
            on_progress: Called with the number of inputs finished after each request.

        Returns:
            An :class:`EmbeddingResult` with one row per input in input order (one row with
            ``enable_fusion=True``), ``types`` per row and the usage the server reported.

        Raises:
            InvalidInputError: a bad input or option (format, size, count, model capability),
                naming the input's index, before any request.
            APIStatusError: a subclass per meaning, after retries where they apply.
            APIConnectionError: no answer after retries.
        """
        job = multimodal_job(
            self,
            inputs,
            model=model,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            enable_fusion=enable_fusion,
            max_batch_size=max_batch_size,
            on_progress=on_progress,
        )
        return self._execute(job)


class AsyncDashScopeClient(_BaseClient):
    """Asynchronous DashScope embedding client (native asyncio; no threads).

    Takes the same arguments as :class:`DashScopeClient`, with ``http_client`` an
    ``httpx.AsyncClient``. Batches run as concurrent tasks, at most ``max_concurrency`` at once.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        region: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        throttle: Throttle | None = None,
        rate_limiter: ExternalLimiter | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key,
            region=region,
            base_url=base_url,
            workspace=workspace,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            rpm=rpm,
            tpm=tpm,
            throttle=throttle,
            rate_limiter=rate_limiter,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=self._config.timeout,
            limits=httpx.Limits(max_connections=max(10, self._config.max_concurrency)),
        )
        self._sleep: Callable[[float], Any] = asyncio.sleep
        self._slot_events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
            weakref.WeakKeyDictionary()
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool (only if this client created it)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncDashScopeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def embed_texts(
        self,
        texts: Sequence[str],
        *,
        model: str = DEFAULT_TEXT_MODEL,
        text_type: TextType | None = "document",
        dimension: int | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        max_batch_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> EmbeddingResult:
        """Async twin of :meth:`DashScopeClient.embed_texts` (same arguments and errors)."""
        job = self._text_job(
            texts,
            model=model,
            text_type=text_type,
            dimension=dimension,
            output_type=output_type,
            instruct=instruct,
            max_batch_size=max_batch_size,
            on_progress=on_progress,
        )
        return await self._execute(job)

    async def _execute(self, job: Job | EmbeddingResult) -> EmbeddingResult:
        """Async twin of :meth:`DashScopeClient._execute`."""
        if isinstance(job, EmbeddingResult):
            return job
        await self._run(job)
        result = job.result()
        self._log_done(job, result)
        return result

    async def _run(self, job: Job) -> None:
        queue = deque(job.initial_batches())
        workers = self._workers(len(queue))
        running: set[asyncio.Future[list[Batch]]] = set()
        try:
            while queue or running:
                while queue and len(running) < workers:
                    running.add(asyncio.ensure_future(self._send_batch(job, queue.popleft())))
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    queue.extend(task.result())
        except BaseException:
            job.aborted = True
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise

    async def _admit(self, job: Job, batch: Batch) -> None:
        tokens = job.estimated_tokens(batch)
        if self._rate_limiter is not None:
            await self._rate_limiter.aacquire(tokens)
        while (wait := self._throttle.acquire(job.model, tokens)) > 0:
            freed = self._slot_freed()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(freed.wait(), wait)

    def _slot_freed(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        event = self._slot_events.get(loop)
        if event is None:
            event = self._slot_events[loop] = asyncio.Event()
        return event

    def _release(self, job: Job, outcome: Outcome) -> None:
        self._finish(job, outcome)
        event = self._slot_events.get(asyncio.get_running_loop())
        if event is not None:
            event.set()
            event.clear()

    async def _send_batch(self, job: Job, batch: Batch) -> list[Batch]:
        attempt = 0
        while not job.aborted:
            await self._admit(job, batch)
            body = job.body(batch)
            try:
                resp = await self._http.post(
                    self._config.api_url + job.path, content=body, headers=self._headers
                )
            except httpx.TimeoutException as exc:
                outcome = job.on_transport_error(batch, attempt, exc, timeout=True)
            except httpx.TransportError as exc:
                outcome = job.on_transport_error(batch, attempt, exc, timeout=False)
            else:
                outcome = job.on_response(
                    batch, attempt, resp.status_code, resp.headers, resp.content
                )
            self._release(job, outcome)
            if outcome.kind == "retry":
                await self._sleep(outcome.delay)
                attempt += 1
                continue
            if outcome.kind == "raise":
                assert outcome.error is not None
                raise outcome.error
            return list(outcome.batches)
        return []

    async def embed_multimodal(
        self,
        inputs: Sequence[MultimodalInput],
        *,
        model: str = "tongyi-embedding-vision-plus",
        dimension: int | None = None,
        fps: float | None = None,
        instruct: str | None = None,
        enable_fusion: bool | None = None,
        max_batch_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> EmbeddingResult:
        """Async twin of :meth:`DashScopeClient.embed_multimodal` (same arguments and errors).

        Local images are read and encoded in a worker thread, so the event loop never blocks
        on a file.
        """
        job = await asyncio.to_thread(
            multimodal_job,
            self,
            inputs,
            model=model,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            enable_fusion=enable_fusion,
            max_batch_size=max_batch_size,
            on_progress=on_progress,
        )
        return await self._execute(job)
