"""The private half of every adapter: the key, the core clients, the usage totals.

The key lives only here, never in a pydantic field, so ``to_dict()``, ``to_payload()`` and every
event stay clean. The sync client is built once per endpoint; async clients live in a
:class:`~dashscope_embed._engine._loops.LoopClients`, one per running event loop (an
``httpx.AsyncClient`` binds its pooled connections to the loop that first used them), each closed
while its loop shuts down.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import httpx
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]

from dashscope_embed import (
    AsyncDashScopeClient,
    DashScopeClient,
    DashScopeError,
    EmbeddingResult,
    SparseVector,
    TextType,
    Usage,
)
from dashscope_embed._engine._loops import LoopClients

from .usage import DashScopeUsageEvent

dispatcher = get_dispatcher(__name__)


class Runtime:
    """Core clients and token usage of one adapter instance (pickles as key + options)."""

    def __init__(
        self,
        api_key: str | None,
        options: dict[str, Any],
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.sync = DashScopeClient(api_key, http_client=http_client, **options)
        self._key = self.sync.config.api_key  # resolved: argument > DASHSCOPE_API_KEY
        self._options = options
        self._http, self._async_http = http_client, async_http_client
        self._async = LoopClients(
            lambda: AsyncDashScopeClient(self._key, http_client=async_http_client, **options)
        )
        self._lock = threading.Lock()
        self.usage = Usage()
        self.last_usage: Usage | None = None

    def __repr__(self) -> str:
        return f"Runtime({self.sync!r})"

    def __getstate__(self) -> dict[str, Any]:
        # IngestionPipeline(num_workers>1) pickles transformations: keep key and options only.
        return {"key": self._key, "options": self._options, "usage": self.usage}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["key"], state["options"])  # type: ignore[misc]
        self.usage = state["usage"]

    def rebuild(self, options: dict[str, Any]) -> Runtime:
        """A runtime for new endpoint options: same key, injected clients and usage totals."""
        new = Runtime(self._key, options, self._http, self._async_http)
        new.usage, new.last_usage = self.usage, self.last_usage
        return new

    async def aclient(self) -> AsyncDashScopeClient:
        """The async client of the running event loop, created on first use in that loop."""
        return await self._async.get()

    async def aclose(self) -> None:
        """Close the running loop's async client now (it also closes as the loop shuts down)."""
        await self._async.aclose()

    def record(self, res: EmbeddingResult, *, text_type: TextType | None, output_type: str) -> None:
        """Add a call's usage to the totals and announce it on the instrumentation bus."""
        if not res.request_ids and not res.usage.requests:
            return  # an empty input: nothing was sent
        with self._lock:
            self.usage = self.usage + res.usage
            self.last_usage = res.usage
        dispatcher.event(
            DashScopeUsageEvent(
                model_name=res.model,
                text_type=text_type,
                output_type=output_type,
                rows=len(res),
                requests=res.usage.requests,
                total_tokens=res.usage.total_tokens,
                request_ids=list(res.request_ids),
            )
        )


def sparse_rows(res: EmbeddingResult) -> list[SparseVector]:
    """The merged sparse vectors of a result (unique ascending indices, max weight kept)."""
    if res.sparse is None:  # the core always returns them when output_type includes sparse
        raise DashScopeError(f"{res.model} returned no sparse vectors")
    return [v.merged() for v in res.sparse]


def fill_sparse(
    found: Sequence[SparseVector | None], res: EmbeddingResult | None
) -> list[SparseVector]:
    """Stashed vectors in place, freshly fetched ones (``res``, in order) in the gaps."""
    fetched = iter(() if res is None else sparse_rows(res))
    return [v if v is not None else next(fetched) for v in found]


class RuntimeAccessors:
    """Usage totals, closing and the event payload, shared by every LlamaIndex class here.

    A plain mixin (no fields): the class using it holds the :class:`Runtime` as ``_rt``.
    """

    _rt: Runtime

    @property
    def usage(self) -> Usage:
        """Token usage summed over every call this object made (the server's own counts)."""
        return self._rt.usage

    @property
    def last_usage(self) -> Usage | None:
        """Token usage of the most recent call, or ``None`` before the first call."""
        return self._rt.last_usage

    def close(self) -> None:
        """Close the sync connection pool (an injected ``http_client`` is left open)."""
        self._rt.sync.close()

    async def aclose(self) -> None:
        """Close the async connection pool of the running event loop."""
        await self._rt.aclose()

    def to_payload(self) -> dict[str, Any]:
        """Safe details for instrumentation events: options and endpoint, never the key."""
        exclude = {"callback_manager", "embeddings_cache", "rate_limiter"}
        data: dict[str, Any] = self.model_dump(exclude=exclude)  # type: ignore[attr-defined]
        data["class_name"] = self.class_name()  # type: ignore[attr-defined]
        return data
