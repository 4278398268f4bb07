"""The async client: the asyncio driver of the one attempt loop.

The twin of :class:`~dashscope_embed._client.DashScopeClient` (same arguments, results and
errors): every decision is made in :func:`~dashscope_embed._engine._attempt.attempts`; this
driver sends with ``httpx.AsyncClient`` (one connection pool per event loop), waits with
``asyncio.sleep`` and runs batches as tasks, which are cancelled when the call aborts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import httpx

from dashscope_embed._engine._job import Batch, Job
from dashscope_embed.multimodal._job import multimodal_job

from ._base_client import SHARD, BaseClient
from ._engine._attempt import Admit, Attempts, NoReply, Reply, Send, attempts
from ._engine._loops import PerLoop
from ._engine._throttle import ExternalLimiter, Throttle
from ._errors import ConfigurationError, DashScopeError
from ._models import DEFAULT_TEXT_MODEL
from ._types import EmbeddingResult, OutputType, TextType
from .multimodal._encode import reads_local_data
from .multimodal._inputs import MultimodalInput
from .multimodal._options import DEFAULT_MULTIMODAL_MODEL
from .text._job import text_job

__all__ = ["AsyncDashScopeClient"]


class _Shards:
    """One event loop's connection pools, a pool per :data:`SHARD` requests in flight.

    httpcore's pool does work per event that grows with its connections times its waiting
    requests: one pool of 200 connections spent most of the CPU of a 6,000 RPM job in that
    scan. A request takes the least busy pool; a new pool opens when all are busy (made on
    demand, so a short job opens one).
    """

    def __init__(self, make: Callable[[], httpx.AsyncClient], max_concurrency: int) -> None:
        self._make = make
        self._most = max(1, -(-max_concurrency // SHARD))
        self.pools = [make()]
        self._busy = [0]

    def take(self) -> httpx.AsyncClient:
        i = min(range(len(self.pools)), key=self._busy.__getitem__)
        if self._busy[i] >= SHARD and len(self.pools) < self._most:
            self.pools.append(self._make())
            self._busy.append(0)
            i = len(self.pools) - 1
        self._busy[i] += 1
        return self.pools[i]

    def give_back(self, pool: httpx.AsyncClient) -> None:
        i = next(k for k, p in enumerate(self.pools) if p is pool)
        self._busy[i] -= 1

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


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
        self._injected = http_client
        # One connection pool per event loop: pooled connections belong to the loop that
        # opened them, and each asyncio.run() is a new loop. Closed at that loop's shutdown.
        self._pools: PerLoop[_Shards] = PerLoop(self._new_pool, self._close_pool)
        self._sleep: Callable[[float], Any] = asyncio.sleep
        # One event per loop that waits for a slot. An Event holds its loop once waited on, so
        # entries of closed loops are dropped by hand (a weak-keyed dict would never let go).
        self._slot_events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
        self._gates: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Lock] = {}

    def _new_pool(self) -> _Shards:
        options = self._pool_options()
        return _Shards(lambda: httpx.AsyncClient(**options), self._config.max_concurrency)

    @staticmethod
    async def _close_pool(pool: _Shards) -> None:
        await pool.aclose()

    async def _http(self) -> httpx.AsyncClient:
        """The running loop's (first) HTTP client: the injected one, or this loop's own."""
        return self._injected if self._injected is not None else (await self._pools.get()).pools[0]

    async def aclose(self) -> None:
        """Close this loop's connection pool (never an injected ``http_client``)."""
        await self._pools.aclose()

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
        return await self._execute(job)

    async def embed_multimodal(
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
        """Async twin of :meth:`DashScopeClient.embed_multimodal` (same arguments and errors).

        Local images are read and encoded in a worker thread, so the event loop never blocks
        on a file; texts, URLs and ``data:`` URIs are prepared on the loop (no thread).
        """
        prepare = functools.partial(
            multimodal_job,
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
        job = await asyncio.to_thread(prepare) if reads_local_data(inputs) else prepare()
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
        running: set[asyncio.Future[list[Batch]]] = set()
        try:
            while queue or running:
                while queue and len(running) < self._workers(job.model):
                    running.add(asyncio.ensure_future(self._drive(job, queue.popleft())))
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    queue.extend(task.result())
        except BaseException:
            job.aborted = True
            for task in running:
                task.cancel()  # wakes sleeping and waiting batches at once
            await asyncio.gather(*running, return_exceptions=True)
            raise

    async def _drive(self, job: Job, batch: Batch) -> list[Batch]:
        """Async twin of :meth:`DashScopeClient._drive`."""
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
                    answer = await self._admit(job, action.tokens)
                elif isinstance(action, Send):
                    sent[0] = time.monotonic()
                    answer = await self._post(action)
                else:
                    answer = await self._sleep(action.seconds)
            except BaseException as exc:  # cancelled: the loop frees the slot and re-raises
                steps.throw(exc)
                raise

    async def _post(self, send: Send) -> Reply | NoReply:
        shards = None if self._injected is not None else await self._pools.get()
        http = shards.take() if shards is not None else cast("httpx.AsyncClient", self._injected)
        try:
            resp = await http.post(
                self._config.api_url + send.path, content=send.body, headers=self._headers
            )
        except httpx.TimeoutException as exc:
            return NoReply(exc, timeout=True)
        except httpx.HTTPError as exc:  # transport, decoding: no usable answer
            return NoReply(exc, timeout=False)
        except RuntimeError as exc:
            if self._injected is None or "Event loop is closed" not in str(exc):
                raise
            raise ConfigurationError(
                "the http_client given to this AsyncDashScopeClient holds connections of an "
                "event loop that has closed (each asyncio.run() is a new loop). Create the "
                "client and its http_client inside the asyncio.run() that uses them, or leave "
                "http_client unset: the client then keeps one connection pool per event loop"
            ) from exc
        finally:
            if shards is not None:
                shards.give_back(http)
        return Reply(resp.status_code, resp.headers, resp.content)

    async def _admit(self, job: Job, tokens: int) -> bool:
        if self._rate_limiter is not None:
            await self._rate_limiter.aacquire(tokens)
        freed = self._slot_freed()
        # One task per loop and model asks the throttle at a time (FIFO); the others queue on
        # the gate, so a release wakes one waiter instead of every waiting batch.
        async with self._gates.setdefault((asyncio.get_running_loop(), job.model), asyncio.Lock()):
            while not job.aborted:
                pause = self._throttle.acquire(job.model, tokens)
                if pause <= 0:
                    return True
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(freed.wait(), pause)
        return False

    def _slot_freed(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        event = self._slot_events.get(loop)
        if event is None:
            for stale in [lp for lp in self._slot_events if lp.is_closed()]:
                del self._slot_events[stale]
            for key in [k for k in self._gates if k[0].is_closed()]:
                del self._gates[key]
            event = self._slot_events[loop] = asyncio.Event()
        return event

    def _release(self, job: Job, outcome: Any, latency: float | None = None) -> None:
        self._finish(job, outcome, latency=latency)
        event = self._slot_events.get(asyncio.get_running_loop())
        if event is not None:
            event.set()
            event.clear()
