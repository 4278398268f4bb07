"""One bad row fails only itself: a chunk of the real-time stream, embedded with failures
narrowed down to the inputs that caused them.

``embed_texts`` stops at the first request it cannot recover from, and a request carries up to
the model's row limit. When the cause is one input (too long: the core already bisects to it;
moderation: the whole request is named), the rows already embedded are kept (``exc.partial``:
they were billed), the named row is marked failed — or, if the request named several, each of
them is sent alone so only the guilty ones fail — and the rest of the chunk is sent again.
Any other error (auth, quota after retries, network) stops the stream, still with every billed
row kept. Transient errors were already retried by the core.

The decisions are a generator (:func:`plan`) that yields "embed these positions" and is sent
the result or thrown the error; :func:`embed_chunk` and :func:`aembed_chunk` are its sync and
async drivers, which only perform the calls.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dashscope_embed._errors import (
    APIConnectionError,
    APIStatusError,
    ContentModerationError,
    DashScopeError,
    InputTooLongError,
    InvalidInputError,
)
from dashscope_embed._types import EmbeddingResult, SparseVector, Usage
from dashscope_embed.batch._files import BatchFailure, add_failures

__all__ = ["ROW_ERRORS", "Chunk", "aembed_chunk", "embed_chunk", "plan"]

_INPUT_REF = re.compile(r"\binput \d+\b")
_NUMBERED = re.compile(r"\binput (\d+)\b")

#: Errors one input can cause: narrowed down to it, the rest of the chunk carries on.
ROW_ERRORS = (InputTooLongError, ContentModerationError)


@dataclass
class Chunk:
    """The rows of one chunk: vectors where embedded, a reason where not.

    Attributes:
        size: Rows in the chunk.
        dense: ``(size, dim)`` float32, NaN where a row has no vector (``None`` until the first
            dense answer, or for sparse-only output).
        sparse: Sparse vector per row, ``None`` where none.
        errors: ``"code: message"`` per failed row, else ``None``.
        usage: Usage of every request that succeeded (what was billed).
        done: Rows with a vector.
    """

    size: int
    dense: npt.NDArray[np.float32] | None = None
    sparse: list[SparseVector | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    done: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sparse = [None] * self.size
        self.errors = [None] * self.size

    def store(self, positions: Sequence[int], result: EmbeddingResult) -> None:
        """Keep ``result``'s rows at ``positions`` (one per row, in order)."""
        if result.dimension and len(positions):  # (n, 0) for sparse-only output
            if self.dense is None:
                dim = result.embeddings.shape[1]
                self.dense = np.full((self.size, dim), np.nan, dtype=np.float32)
            self.dense[list(positions)] = result.embeddings
        if result.sparse is not None:
            for pos, vec in zip(positions, result.sparse, strict=True):
                self.sparse[pos] = vec
        self.usage = self.usage + result.usage
        self.done.update(positions)

    def fail(self, position: int, exc: DashScopeError) -> None:
        """Mark ``position`` failed with ``exc``'s code and message (positions the message
        names are of the call that failed, not of the input: they are left out)."""
        code = getattr(exc, "code", "") or getattr(exc, "rule", "") or type(exc).__name__
        text = exc.message if isinstance(exc, APIStatusError) else str(exc)
        self.errors[position] = f"{code}: {_INPUT_REF.sub('this input', text)}"

    def failures(self, start: int) -> list[BatchFailure]:
        """The failed rows as ranges, numbered from ``start``."""
        out: list[BatchFailure] = []
        for pos, error in enumerate(self.errors):
            if error is not None:
                code, _, message = error.partition(": ")
                out = add_failures(out, [BatchFailure(start + pos, start + pos + 1, code, message)])
        return out


def plan(chunk: Chunk) -> Generator[list[int], EmbeddingResult, None]:
    """Decide what to send for ``chunk``, filling it in.

    Yields the positions to embed next (in the chunk); is sent their result, or thrown the
    :class:`DashScopeError` their call raised. An error that no single input caused is
    re-raised (``chunk`` then holds the rows kept so far).
    """
    pending = list(range(chunk.size))
    alone: list[int] = []  # named by a multi-row failure: each is tried on its own
    while pending or alone:
        positions = [alone.pop()] if alone else pending
        try:
            result = yield positions
        except DashScopeError as exc:
            if exc.partial is not None:
                chunk.store([positions[r] for r in exc.partial.rows], exc.partial.result)
            named = _named(exc, positions)
            if named is None:
                _to_chunk(exc, positions)  # the same exception, naming positions of the chunk
                raise
            if len(named) == 1 or len(positions) == 1:
                for pos in named or positions:
                    chunk.fail(pos, exc)
            else:
                alone.extend(p for p in reversed(named) if p not in chunk.done)
            if positions is pending:
                taken = set(named or ()) | set(alone)
                pending = [p for p in pending if p not in chunk.done and p not in taken]
                pending = [p for p in pending if chunk.errors[p] is None]
            continue
        chunk.store(positions, result)
        if positions is pending:
            pending = []


def _to_chunk(exc: DashScopeError, positions: list[int]) -> DashScopeError:
    """Renumber what ``exc`` names from the failed call's inputs to ``positions`` in the chunk,
    in place (a follow-up call carries a subset of the chunk)."""
    if positions == list(range(len(positions))):
        return exc
    to = dict(enumerate(positions))

    def sub(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"input {to[n]}" if n in to else match.group(0)

    if isinstance(exc, InvalidInputError) and exc.index is not None:
        exc.index = to.get(exc.index, exc.index)
        exc.args = (_NUMBERED.sub(sub, str(exc)), *exc.args[1:])
    elif isinstance(exc, APIStatusError):
        exc.input_indices = tuple(to.get(i, i) for i in exc.input_indices)
        exc.message = _NUMBERED.sub(sub, exc.message)
        exc.args = (exc._describe(),)
    elif isinstance(exc, APIConnectionError):
        exc.input_indices = tuple(to.get(i, i) for i in exc.input_indices)
    if exc.partial is not None:
        rows = tuple(to.get(r, r) for r in exc.partial.rows)
        exc.partial = dataclasses.replace(exc.partial, rows=rows)
    return exc


def _named(exc: DashScopeError, positions: list[int]) -> list[int] | None:
    """Chunk positions of the inputs ``exc`` blames, or ``None`` if no input caused it."""
    if isinstance(exc, InvalidInputError):
        return None if exc.index is None else [positions[exc.index]]
    if isinstance(exc, ROW_ERRORS) and exc.input_indices:
        return [positions[i] for i in exc.input_indices if 0 <= i < len(positions)]
    return None


def embed_chunk(embed: Callable[[list[int]], EmbeddingResult], chunk: Chunk) -> Chunk:
    """Fill ``chunk`` by running :func:`plan` with a sync ``embed(positions)``.

    Raises:
        DashScopeError: an error no single input caused; ``chunk`` keeps the rows already
            embedded (billed) in it.
    """
    steps = plan(chunk)
    try:
        positions = next(steps)
        while True:
            try:
                result = embed(positions)
            except DashScopeError as exc:
                positions = steps.throw(exc)
            else:
                positions = steps.send(result)
    except StopIteration:
        return chunk


async def aembed_chunk(
    embed: Callable[[list[int]], Awaitable[EmbeddingResult]], chunk: Chunk
) -> Chunk:
    """Async twin of :func:`embed_chunk` (the same :func:`plan`)."""
    steps = plan(chunk)
    try:
        positions = next(steps)
        while True:
            try:
                result = await embed(positions)
            except DashScopeError as exc:
                positions = steps.throw(exc)
            else:
                positions = steps.send(result)
    except StopIteration:
        return chunk
