"""The sync and async clients: configuration, lifecycle, and two thin drivers of one loop.

Every decision about a batch (admit, send, classify the answer, retry or give up, how long to
sleep, re-split, bisect, abort) is made once, in :func:`~dashscope_embed._engine._attempt.attempts`.
The drivers here only perform its actions: :class:`DashScopeClient` with ``httpx.Client``, a
thread pool and an abort event that wakes sleeping batches; :class:`AsyncDashScopeClient` with
``httpx.AsyncClient`` and tasks that are cancelled on abort. Both schedule up to twice the
throttle's current cap of batches at once, so batches that a re-split or a bisection adds run
side by side like planned ones.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, cast

import httpx

from dashscope_embed._engine._job import Batch, Job
from dashscope_embed.multimodal._job import multimodal_job

from ._base_client import SHARD, BaseClient
from ._engine._attempt import Admit, Attempts, NoReply, Reply, Send, attempts
from ._engine._throttle import ExternalLimiter, Throttle
from ._errors import DashScopeError
from ._models import DEFAULT_TEXT_MODEL
from ._types import EmbeddingResult, OutputType, TextType
from .multimodal._inputs import MultimodalInput
from .multimodal._options import DEFAULT_MULTIMODAL_MODEL
from .text._job import text_job

__all__ = ["DashScopeClient"]


_GATE_POLL = 1.0  # seconds a batch queued at admission waits before checking for an abort


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
        max_concurrency: Hard cap on requests in flight, per model (default 200: a safety
            bound; the throttle keeps about rate × latency in flight and paces at a learned
            request rate).
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
        self._http = http_client or self._new_pool()
        # Our own pool is split into one per SHARD worker threads, made as threads first post:
        # httpcore's sync pool does work per request that grows with its connections, so one
        # pool of 200 spent ~16 ms of CPU per request (55 requests/s at 1 s latency), eight of
        # them ~2.4 ms (138/s). An injected http_client is used as it is.
        self._shards = [self._http]
        self._shard_of = threading.local()
        self._threads_seen = itertools.count()
        # Tests swap in a recorder; the default waits on the call's abort event instead.
        self._sleep: Callable[[float], None] = time.sleep
        self._slot_freed = threading.Condition()
        # One thread per model asks the throttle at a time; the others queue on its gate, so a
        # release or a pacing tick wakes one thread, not every waiting batch (hundreds at a
        # large quota: a wake-up herd that starved the GIL).
        self._gates: dict[str, threading.Lock] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _new_pool(self) -> httpx.Client:
        return httpx.Client(**self._pool_options())

    def _thread_http(self) -> httpx.Client:
        """This worker thread's connection pool (every SHARD threads share one)."""
        pool: httpx.Client | None = getattr(self._shard_of, "pool", None)
        if pool is None:
            most = -(-2 * self._config.max_concurrency // SHARD)  # workers <= 2 x cap
            index = (next(self._threads_seen) // SHARD) % most if self._owns_http else 0
            with self._limits_lock:
                while len(self._shards) <= index:
                    self._shards.append(self._new_pool())
                pool = self._shard_of.pool = self._shards[index]
        return pool

    def close(self) -> None:
        """Stop the worker threads and close the HTTP pools (only those this client created)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._owns_http:
            with self._limits_lock:
                shards, self._shards = self._shards, [self._http]
            for pool in shards:
                pool.close()

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
        job = text_job(
            texts,
            model=model,
            text_type=text_type,
            dimension=dimension,
            output_type=output_type,
            instruct=instruct,
            max_batch_size=max_batch_size,
            on_progress=on_progress,
            ctx=self._job_context(),
        )
        return self._execute(job)

    def embed_multimodal(
        self,
        inputs: Sequence[MultimodalInput],
        *,
        model: str = DEFAULT_MULTIMODAL_MODEL,
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
            inputs,
            model=model,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            enable_fusion=enable_fusion,
            max_batch_size=max_batch_size,
            on_progress=on_progress,
            ctx=self._job_context(),
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
        stop = threading.Event()
        running: set[Future[list[Batch]]] = set()
        try:
            while queue or running:
                if len(queue) == 1 and not running:  # one batch: no thread hop
                    queue.extend(self._drive(job, queue.popleft(), stop))
                    continue
                pool = self._thread_pool()
                while queue and len(running) < self._workers(job.model):
                    running.add(pool.submit(self._drive, job, queue.popleft(), stop))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    queue.extend(fut.result())
        except BaseException:
            job.aborted = True  # no batch starts another attempt
            stop.set()  # batches sleeping before a retry wake now
            with self._slot_freed:
                self._slot_freed.notify_all()  # batches waiting for a slot give up now
            for fut in running:
                fut.cancel()
            wait(running)
            raise

    def _drive(self, job: Job, batch: Batch, stop: threading.Event) -> list[Batch]:
        """Perform the actions of :func:`attempts` for one batch."""
        sent = [0.0]  # when this batch's current attempt was sent (for the throttle's latency)

        def finish(job: Job, outcome: Any) -> None:
            self._release(job, outcome, time.monotonic() - sent[0] if sent[0] else None)

        steps: Attempts = attempts(job, batch, finish)
        answer: bool | Reply | NoReply | None = None
        while True:
            try:
                action = steps.send(answer)
            except StopIteration as done:
                return cast("list[Batch]", done.value)
            try:
                if isinstance(action, Admit):
                    answer = self._admit(job, action.tokens)
                elif isinstance(action, Send):
                    sent[0] = time.monotonic()
                    answer = self._post(action)
                else:
                    answer = None
                    if self._sleep is time.sleep:
                        stop.wait(action.seconds)
                    else:
                        self._sleep(action.seconds)
            except BaseException as exc:  # interrupted: the loop frees the slot and re-raises
                steps.throw(exc)
                raise

    def _post(self, send: Send) -> Reply | NoReply:
        try:
            resp = self._thread_http().post(
                self._config.api_url + send.path, content=send.body, headers=self._headers
            )
        except httpx.TimeoutException as exc:
            return NoReply(exc, timeout=True)
        except httpx.HTTPError as exc:  # transport, decoding: no usable answer
            return NoReply(exc, timeout=False)
        return Reply(resp.status_code, resp.headers, resp.content)

    def _admit(self, job: Job, tokens: int) -> bool:
        if self._rate_limiter is not None:
            self._rate_limiter.acquire(tokens)
        with self._limits_lock:
            gate = self._gates.setdefault(job.model, threading.Lock())
        while not gate.acquire(timeout=_GATE_POLL):
            if job.aborted:  # another job's batch holds the gate (a long Retry-After)
                return False
        try:
            while not job.aborted:
                pause = self._throttle.acquire(job.model, tokens)
                if pause <= 0:
                    return True
                with self._slot_freed:
                    self._slot_freed.wait(pause)
            return False
        finally:
            gate.release()

    def _release(self, job: Job, outcome: Any, latency: float | None = None) -> None:
        self._finish(job, outcome, latency=latency)
        with self._slot_freed:
            self._slot_freed.notify_all()

    def _thread_pool(self) -> ThreadPoolExecutor:
        """One pool for the client's lifetime (threads are not re-created per call)."""
        with self._limits_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._workers(), thread_name_prefix="dashscope"
                )
            return self._pool
