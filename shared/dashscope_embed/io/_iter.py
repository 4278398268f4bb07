"""Real-time embedding of an iterable of texts, one ``embed_texts`` call per chunk.

:func:`iter_embeddings` / :func:`aiter_embeddings` yield ``(start, result)`` per chunk and raise
on the first error, with the positions it names moved from the chunk to the whole input
(:func:`shift_error`). :func:`~._stream.embed_to_file` builds on the same chunking, with
per-row failure isolation (:mod:`._isolate`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

from dashscope_embed._async_client import AsyncDashScopeClient
from dashscope_embed._client import DashScopeClient
from dashscope_embed._errors import (
    APIConnectionError,
    APIStatusError,
    DashScopeError,
    InvalidInputError,
)
from dashscope_embed._models import DEFAULT_TEXT_MODEL
from dashscope_embed._types import EmbeddingResult, OutputType, TextType

__all__ = ["DEFAULT_CHUNK_SIZE", "aiter_embeddings", "chunks", "iter_embeddings", "shift_error"]

#: Rows per ``embed_texts`` call: large enough to keep the core's window full (200 requests of
#: 10 rows, the default cap), small enough to keep memory flat (2000 × 1024 × 4 B ≈ 8 MiB), and
#: a multiple of every row limit (10, 20, 25) so no chunk ends in a short request.
DEFAULT_CHUNK_SIZE = 2000

T = TypeVar("T")

_INPUT_REF = re.compile(r"\binput (\d+)\b")


def shift_error(exc: DashScopeError, start: int) -> DashScopeError:
    """Move the positions an error names from its chunk to the whole input, in place.

    ``embed_texts`` numbers inputs within the call; a stream calls it per chunk, so
    ``index`` / ``input_indices`` / ``partial.rows`` (and the "input N" the message quotes) get
    the chunk's first row added. The exception keeps its type, fields and traceback.
    """
    if start == 0:
        return exc
    if isinstance(exc, InvalidInputError) and exc.index is not None:
        named = {exc.index}
        exc.index += start
        exc.args = (_renumber(str(exc), named, start), *exc.args[1:])
    elif isinstance(exc, APIStatusError):
        named = set(exc.input_indices)
        exc.input_indices = tuple(i + start for i in exc.input_indices)
        exc.message = _renumber(exc.message, named, start)
        exc.args = (exc._describe(),)
    elif isinstance(exc, APIConnectionError):
        named = set(exc.input_indices)
        exc.input_indices = tuple(i + start for i in exc.input_indices)
        exc.args = (_renumber(str(exc), named, start), *exc.args[1:])
    if exc.partial is not None:
        rows = tuple(r + start for r in exc.partial.rows)
        exc.partial = dataclasses.replace(exc.partial, rows=rows)
    return exc


def _renumber(message: str, named: set[int], start: int) -> str:
    """``input N`` → ``input N+start`` for the positions the error names (and no other number)."""

    def sub(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"input {n + start}" if n in named else match.group(0)

    return _INPUT_REF.sub(sub, message)


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def iter_embeddings(
    client: DashScopeClient,
    texts: Iterable[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    model: str = DEFAULT_TEXT_MODEL,
    text_type: TextType | None = "document",
    dimension: int | None = None,
    output_type: OutputType = "dense",
    instruct: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, EmbeddingResult]]:
    """Yield ``(start, result)`` per chunk: ``result`` holds rows ``start .. start+len-1``.

    Args:
        client: The sync client (batching, retries and concurrency happen inside it).
        texts: Any iterable, read lazily (a generator over a file of millions of lines is fine).
        chunk_size: Rows per ``embed_texts`` call (the memory bound).
        on_progress: Called with the number of rows finished after each request.

    Raises:
        InvalidInputError: a bad text (its ``index`` is its position in the whole input).
        APIStatusError: as ``embed_texts`` raises it, with ``input_indices`` (and
            ``partial.rows``) positions in the whole input.
    """
    start = 0
    for chunk in chunks(texts, chunk_size):
        try:
            result = client.embed_texts(
                chunk,
                model=model,
                text_type=text_type,
                dimension=dimension,
                output_type=output_type,
                instruct=instruct,
                on_progress=on_progress,
            )
        except DashScopeError as exc:
            shift_error(exc, start)
            raise
        yield start, result
        start += len(chunk)


async def aiter_embeddings(
    client: AsyncDashScopeClient,
    texts: Iterable[str] | AsyncIterable[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    model: str = DEFAULT_TEXT_MODEL,
    text_type: TextType | None = "document",
    dimension: int | None = None,
    output_type: OutputType = "dense",
    instruct: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> AsyncIterator[tuple[int, EmbeddingResult]]:
    """Async twin of :func:`iter_embeddings`; ``texts`` may also be an async iterable."""
    start = 0
    chunk: list[str] = []

    async def flush(rows: list[str]) -> EmbeddingResult:
        try:
            return await client.embed_texts(
                rows,
                model=model,
                text_type=text_type,
                dimension=dimension,
                output_type=output_type,
                instruct=instruct,
                on_progress=on_progress,
            )
        except DashScopeError as exc:
            shift_error(exc, start)
            raise

    if isinstance(texts, AsyncIterable):
        async for text in texts:
            chunk.append(text)
            if len(chunk) >= chunk_size:
                yield start, await flush(chunk)
                start, chunk = start + len(chunk), []
        if chunk:
            yield start, await flush(chunk)
        return
    for rows in chunks(texts, chunk_size):
        yield start, await flush(rows)
        start += len(rows)
