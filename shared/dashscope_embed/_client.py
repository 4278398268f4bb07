"""The sync and async clients: thin I/O shells over :mod:`._plan`.

They differ only where they must: how a request is sent (``httpx.Client`` vs
``httpx.AsyncClient``), how they wait (``time.sleep`` vs ``asyncio.sleep``) and how batches run
side by side (a thread pool vs tasks). Keep :meth:`DashScopeClient._send_batch` and
:meth:`AsyncDashScopeClient._send_batch` line-for-line alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from ._base_client import BaseClient
from ._engine._job import Batch, Job, Outcome
from ._engine._throttle import ExternalLimiter, Throttle
from ._errors import DashScopeError
from ._models import DEFAULT_TEXT_MODEL
from ._types import EmbeddingResult, OutputType, TextType
from .multimodal._job import multimodal_job
from .multimodal._media import MultimodalInput, reads_local_data

__all__ = ["AsyncDashScopeClient", "DashScopeClient"]


class DashScopeClient(BaseClient):
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
        max_concurrency: Requests in flight at once, per model (default 16; the adaptive
            window starts at 4 and grows while requests succeed).
        rpm: Your requests-per-minute quota, if you know it: requests are paced to it.
        tpm: Your tokens-per-minute quota (tokens estimated from the texts), likewise.
        throttle: A :class:`Throttle` to share with other clients of the same key (it then
            owns ``max_concurrency``, ``rpm`` and ``tpm``).
        rate_limiter: An :class:`ExternalLimiter` (the adapters wrap LangChain's and
            LlamaIndex's rate limiters into one), asked once per HTTP attempt before the
            throttle; retries stay in the core.
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
        try:
            self._run(job)
        except DashScopeError as exc:
            exc.partial = job.partial()
            raise
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

    def _release(self, job: Job, outcome: Outcome | None) -> None:
        self._finish(job, outcome)
        with self._slot_freed:
            self._slot_freed.notify_all()

    def _send_batch(self, job: Job, batch: Batch) -> list[Batch]:
        attempt = 0
        while not job.aborted:
            self._admit(job, batch)
            if job.aborted:  # the call failed while this batch waited for its slot
                self._release(job, None)
                break
            outcome: Outcome | None = None  # None: abandoned (cancelled, or a bug) — still freed
            try:
                body = job.body(batch)
                try:
                    resp = self._http.post(
                        self._config.api_url + job.path, content=body, headers=self._headers
                    )
                except httpx.TimeoutException as exc:
                    outcome = job.on_transport_error(batch, attempt, exc, timeout=True)
                except httpx.HTTPError as exc:  # transport, decoding: no usable answer
                    outcome = job.on_transport_error(batch, attempt, exc, timeout=False)
                else:
                    outcome = job.on_response(
                        batch, attempt, resp.status_code, resp.headers, resp.content
                    )
            finally:
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


class AsyncDashScopeClient(BaseClient):
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
        # One event per loop that waits for a slot. An Event holds its loop once waited on, so
        # entries of closed loops are dropped by hand (a weak-keyed dict would never let go).
        self._slot_events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

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
        try:
            await self._run(job)
        except DashScopeError as exc:
            exc.partial = job.partial()
            raise
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
            for stale in [lp for lp in self._slot_events if lp.is_closed()]:
                del self._slot_events[stale]
            event = self._slot_events[loop] = asyncio.Event()
        return event

    def _release(self, job: Job, outcome: Outcome | None) -> None:
        self._finish(job, outcome)
        event = self._slot_events.get(asyncio.get_running_loop())
        if event is not None:
            event.set()
            event.clear()

    async def _send_batch(self, job: Job, batch: Batch) -> list[Batch]:
        attempt = 0
        while not job.aborted:
            await self._admit(job, batch)
            if job.aborted:  # the call failed while this batch waited for its slot
                self._release(job, None)
                break
            outcome: Outcome | None = None  # None: abandoned (cancelled, or a bug) — still freed
            try:
                body = job.body(batch)
                try:
                    resp = await self._http.post(
                        self._config.api_url + job.path, content=body, headers=self._headers
                    )
                except httpx.TimeoutException as exc:
                    outcome = job.on_transport_error(batch, attempt, exc, timeout=True)
                except httpx.HTTPError as exc:  # transport, decoding: no usable answer
                    outcome = job.on_transport_error(batch, attempt, exc, timeout=False)
                else:
                    outcome = job.on_response(
                        batch, attempt, resp.status_code, resp.headers, resp.content
                    )
            finally:
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
        on a file; texts, URLs and ``data:`` URIs are prepared on the loop (no thread).
        """
        prepare = functools.partial(
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
        job = await asyncio.to_thread(prepare) if reads_local_data(inputs) else prepare()
        return await self._execute(job)
