"""LlamaIndex-side support around the core runtime: usage events, sparse rows, accessors.

The key, the core clients, the shared throttle and the usage totals live in the
framework-neutral :class:`dashscope_embed.adapters.Runtime`; this module adds only what is
LlamaIndex's own: the instrumentation event for each call's usage and the accessors every class
here exposes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]

from dashscope_embed import DashScopeError, EmbeddingResult, SparseVector, TextType, Usage
from dashscope_embed.adapters import Runtime

from .usage import DashScopeUsageEvent

__all__ = ["RuntimeAccessors", "fill_sparse", "record", "sparse_rows"]

dispatcher = get_dispatcher(__name__)


def record(
    rt: Runtime, res: EmbeddingResult, *, text_type: TextType | None, output_type: str
) -> None:
    """Add a call's usage to the totals and announce it on the instrumentation bus."""
    if not res.request_ids and not res.usage.requests:
        return  # an empty input: nothing was sent
    rt.record(res)
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
        self._rt.close()

    async def aclose(self) -> None:
        """Close the async connection pool of the running event loop."""
        await self._rt.aclose()

    def to_payload(self) -> dict[str, Any]:
        """Safe details for instrumentation events: options and endpoint, never the key."""
        exclude = {"callback_manager", "embeddings_cache", "rate_limiter"}
        data: dict[str, Any] = self.model_dump(exclude=exclude)  # type: ignore[attr-defined]
        data["class_name"] = self.class_name()  # type: ignore[attr-defined]
        return data
