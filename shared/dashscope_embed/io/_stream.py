"""Real-time embedding of any number of texts with bounded memory, straight to disk.

The texts are read from an iterable one chunk at a time; each chunk goes through
``client.embed_texts`` (so batching to the model's row limit, concurrency and per-batch retries
stay in the core) and is written before the next chunk is read. Memory is bounded by the chunk
size, not by the corpus: about ``chunk_size × dimension × 4`` bytes of vectors plus the JSON of
the requests in flight.

For a job you can wait on (hours) and pay half for, use the Batch API instead (:mod:`._batch`).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from dashscope_embed._async_client import AsyncDashScopeClient
from dashscope_embed._client import DashScopeClient
from dashscope_embed._errors import (
    APIConnectionError,
    APIStatusError,
    DashScopeError,
    InvalidInputError,
)
from dashscope_embed._models import DEFAULT_TEXT_MODEL
from dashscope_embed._types import EmbeddingResult, OutputType, TextType, Usage

from ._sinks import Sink, open_sink, require

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "StreamSummary",
    "aiter_embeddings",
    "embed_to_file",
    "embed_to_npy",
    "iter_embeddings",
    "progress_bar",
]

#: Rows per ``embed_texts`` call: large enough to keep every concurrent slot busy (16 × 10-row
#: requests, many times over), small enough to keep memory flat (2048 × 1024 × 4 B = 8 MiB).
DEFAULT_CHUNK_SIZE = 2048

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


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
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
    for chunk in _chunks(texts, chunk_size):
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
    for rows in _chunks(texts, chunk_size):
        yield start, await flush(rows)
        start += len(rows)


@dataclass(frozen=True)
class StreamSummary:
    """What a streaming run wrote."""

    path: Path
    rows: int
    dimension: int | None
    usage: Usage
    model: str


def progress_bar(total: int | None, *, desc: str = "embedding", unit: str = "text") -> Any:
    """A tqdm bar on stderr with rate and ETA.

    Raises:
        ImportError: tqdm is missing (names ``pip install 'dashscope-embed[progress]'``).
    """
    tqdm = require("tqdm", "progress").tqdm
    big = total is not None and total >= 100_000  # "1.2M/3.0M" reads better there
    return tqdm(
        total=total, desc=desc, unit=unit, unit_scale=big, file=sys.stderr, dynamic_ncols=True
    )


def embed_to_file(
    client: DashScopeClient,
    texts: Iterable[str],
    path: str | Path,
    *,
    ids: Iterable[str] | None = None,
    n: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | Callable[[int], None] = False,
    model: str = DEFAULT_TEXT_MODEL,
    text_type: TextType | None = "document",
    dimension: int | None = None,
    output_type: OutputType = "dense",
    instruct: str | None = None,
) -> StreamSummary:
    """Embed ``texts`` into ``path`` (``.npy``, ``.jsonl`` or ``.parquet``, by suffix).

    Args:
        texts: Iterable of texts, read chunk by chunk.
        path: Output file. ``.npy`` holds float32 dense rows (with ``<stem>.ids.jsonl`` beside it
            when ``ids`` are given); ``.jsonl`` one object per row; ``.parquet`` needs pyarrow.
        ids: Optional row ids, consumed in step with ``texts``.
        n: Row count if known (sizes the progress bar; ``len(texts)`` is used when available).
        progress: ``True`` for a tqdm bar on stderr, or a callback taking rows finished.

    The output is written to ``<path>.partial`` and moved onto ``path`` only once every row is
    in. If the run fails, ``path`` is left as it was and ``<path>.partial`` keeps the rows
    written so far (in a ``.npy`` every row not written is NaN).

    Returns:
        A :class:`StreamSummary` (rows written, dimension, usage).

    Raises:
        ValueError: an unsupported suffix, sparse output to ``.npy``, or ``n`` rows expected
            and another count read.
        ImportError: a missing optional dependency (tqdm, pyarrow), naming the pip command.
    """
    if n is None and isinstance(texts, Sized):
        n = len(texts)
    bar = progress_bar(n) if progress is True else None
    callback = bar.update if bar is not None else (progress or None)
    sparse = output_type != "dense"
    if Path(path).suffix.lower() == ".npy" and sparse:
        raise ValueError(".npy holds dense vectors only; write sparse output to .jsonl/.parquet")
    id_iter = iter(ids) if ids is not None else None
    sink: Sink | None = None
    usage = Usage()
    rows, dim = 0, None
    try:
        for _, result in iter_embeddings(
            client,
            texts,
            chunk_size=chunk_size,
            model=model,
            text_type=text_type,
            dimension=dimension,
            output_type=output_type,
            instruct=instruct,
            on_progress=callback if callable(callback) else None,
        ):
            chunk_ids = [str(next(id_iter)) for _ in range(len(result))] if id_iter else None
            if sink is None:
                dim = result.dimension if output_type != "sparse" else None
                sink = open_sink(path, dim=dim, rows=n, sparse=sparse, with_ids=id_iter is not None)
            dense = result.embeddings if output_type != "sparse" else None
            sink.write(chunk_ids, dense, result.sparse)
            usage = usage + result.usage
            rows += len(result)
        if sink is None:  # no texts: still leave a valid, empty file
            dim = dimension if output_type != "sparse" else None
            if Path(path).suffix.lower() == ".npy" and not dim:
                from dashscope_embed._models import get_model

                dim = get_model(model).default_dimension
            sink = open_sink(path, dim=dim, rows=0, sparse=sparse, with_ids=id_iter is not None)
        if n is not None and rows != n:
            raise ValueError(f"expected {n} rows (n=...), the input had {rows}")
    except BaseException:
        if sink is not None:  # keep what was paid for, as <path>.partial (missing rows NaN)
            sink.abort()
        raise
    else:
        sink.close()  # complete: only now does ``path`` appear
    finally:
        if bar is not None:
            bar.close()
    return StreamSummary(Path(path), rows, dim, usage, model)


def embed_to_npy(
    client: DashScopeClient,
    texts: Iterable[str],
    path: str | Path,
    *,
    n: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool | Callable[[int], None] = False,
    model: str = DEFAULT_TEXT_MODEL,
    text_type: TextType | None = "document",
    dimension: int | None = None,
    instruct: str | None = None,
) -> StreamSummary:
    """Embed ``texts`` into a float32 ``.npy`` of shape ``(rows, dim)`` with bounded memory.

    ``np.load(path, mmap_mode="r")`` reads it back without loading it whole.

    Example::

        lines = (line.rstrip("\\n") for line in open("corpus.txt", encoding="utf-8"))
        embed_to_npy(client, lines, "corpus.npy", dimension=512, progress=True)
    """
    if Path(path).suffix.lower() != ".npy":
        raise ValueError(f"embed_to_npy writes .npy files, got {Path(path).name!r}")
    return embed_to_file(
        client,
        texts,
        path,
        n=n,
        chunk_size=chunk_size,
        progress=progress,
        model=model,
        text_type=text_type,
        dimension=dimension,
        instruct=instruct,
    )
