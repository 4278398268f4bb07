"""Typed results: numpy arrays for dense vectors, small frozen records for the rest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "EmbeddingResult",
    "OutputType",
    "PartialResult",
    "SparseVector",
    "TextType",
    "Usage",
]

TextType = Literal["query", "document"]
OutputType = Literal["dense", "sparse", "dense&sparse"]


@dataclass(frozen=True)
class SparseVector:
    """One sparse vector as DashScope returns it: parallel indices, values and tokens.

    DashScope may return the same vocabulary index more than once (once per occurrence of the
    token). Vector stores need unique indices: use :meth:`merged` (or :meth:`as_dict`).
    """

    indices: tuple[int, ...]
    values: tuple[float, ...]
    tokens: tuple[str, ...] = ()

    def merged(self) -> SparseVector:
        """Unique indices in ascending order; a repeated index keeps its largest weight.

        The max (not the sum) follows how lexical weights of repeated tokens are pooled in
        BGE-M3-style sparse retrieval, so a word repeated in a text is not over-weighted.
        """
        best: dict[int, float] = {}
        token_of: dict[int, str] = {}
        for pos, (idx, val) in enumerate(zip(self.indices, self.values, strict=True)):
            if idx not in best or val > best[idx]:
                best[idx] = val
                if self.tokens:
                    token_of[idx] = self.tokens[pos]
        order = sorted(best)
        return SparseVector(
            indices=tuple(order),
            values=tuple(best[i] for i in order),
            tokens=tuple(token_of[i] for i in order) if self.tokens else (),
        )

    def as_dict(self) -> dict[int, float]:
        """``{index: weight}`` with unique indices (the Milvus / LlamaIndex sparse shape)."""
        merged = self.merged()
        return dict(zip(merged.indices, merged.values, strict=True))


@dataclass(frozen=True)
class Usage:
    """Token usage summed over every successful request of one call.

    Multimodal fields stay ``0`` for text models.
    """

    total_tokens: int = 0
    requests: int = 0
    input_tokens: int = 0
    image_tokens: int = 0
    image_count: int = 0
    duration: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            total_tokens=self.total_tokens + other.total_tokens,
            requests=self.requests + other.requests,
            input_tokens=self.input_tokens + other.input_tokens,
            image_tokens=self.image_tokens + other.image_tokens,
            image_count=self.image_count + other.image_count,
            duration=self.duration + other.duration,
        )


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors for one call, exactly one row per input, in input order.

    Attributes:
        embeddings: ``float32`` array of shape ``(n, dimension)``; shape ``(n, 0)`` when only
            sparse output was requested.
        sparse: One :class:`SparseVector` per input when ``output_type`` includes sparse.
        usage: Token usage summed over the requests that succeeded.
        request_ids: Server request ids, in batch order.
        model: The model that produced the vectors.
        dimension: The dense dimension (``None`` for sparse-only output).
        types: Per-input modality (multimodal results only: ``"text"``, ``"image"``...).
    """

    embeddings: npt.NDArray[np.float32]
    sparse: tuple[SparseVector, ...] | None
    usage: Usage
    request_ids: tuple[str, ...]
    model: str
    dimension: int | None
    types: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def tolist(self) -> list[list[float]]:
        """Dense vectors as plain Python floats (what LangChain and LlamaIndex expect)."""
        rows: list[list[float]] = self.embeddings.astype(np.float64).tolist()
        return rows

    @classmethod
    def empty(cls, model: str, dimension: int | None, *, sparse: bool = False) -> EmbeddingResult:
        """The result of embedding an empty list (no request is sent)."""
        return cls(
            embeddings=np.zeros((0, dimension or 0), dtype=np.float32),
            sparse=() if sparse else None,
            usage=Usage(),
            request_ids=(),
            model=model,
            dimension=dimension,
        )


def stack_rows(rows: Sequence[npt.NDArray[np.float32]], dim: int) -> npt.NDArray[np.float32]:
    """Stack per-row vectors into one ``(n, dim)`` float32 array."""
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.vstack(rows), dtype=np.float32)


@dataclass(frozen=True)
class PartialResult:
    """What a failed call had already embedded (and paid for) when it stopped.

    Attached to the error as ``exc.partial`` by :class:`~dashscope_embed.DashScopeClient` and
    :class:`~dashscope_embed.AsyncDashScopeClient`, so a caller can keep those rows and re-send
    only the rest instead of paying twice.

    Attributes:
        rows: Positions, in the call's input, of the rows embedded before the failure
            (ascending).
        result: Their vectors, one row per entry of ``rows`` in that order, and the usage of
            every request that succeeded.
    """

    rows: tuple[int, ...]
    result: EmbeddingResult
