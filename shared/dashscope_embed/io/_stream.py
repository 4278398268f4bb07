"""Real-time embedding of any number of texts with bounded memory, straight to disk.

The texts are read from an iterable one chunk at a time; each chunk goes through
``client.embed_texts`` (so batching to the model's row limit, concurrency and per-batch retries
stay in the core) and is written before the next chunk is read. Memory is bounded by the chunk
size, not by the corpus: about ``chunk_size × dimension × 4`` bytes of vectors plus the JSON of
the requests in flight.

A text the service rejects on its own (too long, moderation) fails only its row
(:mod:`._isolate`); every row that was billed is written, even when the run stops.
:func:`iter_embeddings` / :func:`aiter_embeddings` (re-exported from :mod:`._iter`) yield the
chunks instead and raise on the first error.

For a job you can wait on (hours) and pay half for, use the Batch API instead
(:mod:`dashscope_embed.batch`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dashscope_embed._client import DashScopeClient
from dashscope_embed._errors import DashScopeError
from dashscope_embed._models import DEFAULT_TEXT_MODEL, get_model
from dashscope_embed._types import EmbeddingResult, OutputType, TextType, Usage
from dashscope_embed.batch._files import BatchFailure

from ._isolate import Chunk, embed_chunk
from ._iter import DEFAULT_CHUNK_SIZE, aiter_embeddings, chunks, iter_embeddings, shift_error
from ._sinks import Sink, open_sink, require

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "OnError",
    "StreamSummary",
    "aiter_embeddings",
    "embed_to_file",
    "embed_to_npy",
    "iter_embeddings",
    "progress_bar",
]


#: What :func:`embed_to_file` does with a text the service rejects on its own.
OnError = Literal["isolate", "raise"]
_END = object()


@dataclass(frozen=True)
class StreamSummary:
    """What a streaming run wrote.

    Attributes:
        path: The output file.
        rows: Rows written (with or without a vector).
        dimension: Dense dimension (``None`` for sparse-only output).
        usage: Usage of every request that succeeded.
        model: The model.
        failures: Rows without a vector (``on_error="isolate"``), with the service's reason.
    """

    path: Path
    rows: int
    dimension: int | None
    usage: Usage
    model: str
    failures: tuple[BatchFailure, ...] = ()

    @property
    def failed_count(self) -> int:
        return sum(f.stop - f.start for f in self.failures)


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
    on_error: OnError = "isolate",
) -> StreamSummary:
    """Embed ``texts`` into ``path`` (``.npy``, ``.jsonl`` or ``.parquet``, by suffix).

    Args:
        texts: Iterable of texts, read chunk by chunk.
        path: Output file. ``.npy`` holds float32 dense rows (with ``<stem>.ids.jsonl`` beside it
            when ``ids`` are given); ``.jsonl`` one object per row; ``.parquet`` needs pyarrow.
        ids: Optional row ids, one per text (checked before each chunk is sent).
        n: Row count if known (sizes the progress bar and the ``.npy``; more texts than ``n``
            stop the run before the extra chunk is sent; ``len(texts)`` is used when available).
        progress: ``True`` for a tqdm bar on stderr, or a callback taking rows finished.
        on_error: ``"isolate"`` (default): a text the service rejects on its own (too long,
            empty, moderation) fails only its row — NaN in ``.npy``, an ``error`` in
            ``.jsonl``/``.parquet``, listed in :attr:`StreamSummary.failures` — and the run
            goes on. ``"raise"``: the first such text stops the run.

    The output is written to ``<path>.partial`` and moved onto ``path`` only once every row is
    in. If the run stops on an error, ``path`` is left as it was and ``<path>.partial`` keeps
    every row embedded so far, including those of the chunk that failed (they were billed);
    rows without a vector are NaN (``.npy``) or carry an ``error``.

    Returns:
        A :class:`StreamSummary` (rows written, dimension, usage, failures).

    Raises:
        ValueError: an unsupported suffix, sparse output to ``.npy``, ids that do not match
            the texts one to one, or ``n`` rows expected and another count read.
        ImportError: a missing optional dependency (tqdm, pyarrow), naming the pip command.
    """
    if n is None and isinstance(texts, Sized):
        n = len(texts)
    if ids is not None and isinstance(ids, Sized) and n is not None and len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} texts: give exactly one id per text")
    sparse = output_type != "dense"
    if Path(path).suffix.lower() == ".npy" and sparse:
        raise ValueError(".npy holds dense vectors only; write sparse output to .jsonl/.parquet")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    bar = progress_bar(n) if progress is True else None
    callback = bar.update if bar is not None else (progress or None)
    dense_dim = None if output_type == "sparse" else dimension or get_model(model).default_dimension
    rows_in = _at_most(texts, n) if n is not None else iter(texts)
    pairs = _paired(rows_in, ids)
    sink: Sink | None = None
    usage = Usage()
    failures: list[BatchFailure] = []
    rows, dim = 0, dense_dim

    def embed(chunk: list[str]) -> Callable[[list[int]], EmbeddingResult]:
        def call(positions: list[int]) -> EmbeddingResult:
            return client.embed_texts(
                [chunk[p] for p in positions],
                model=model,
                text_type=text_type,
                dimension=dimension,
                output_type=output_type,
                instruct=instruct,
                on_progress=callback if callable(callback) else None,
            )

        return call

    def write(chunk_ids: list[str] | None, done: Chunk) -> None:
        nonlocal sink, dim
        if done.dense is not None:
            dim = done.dense.shape[1]
        if sink is None:
            sink = open_sink(path, dim=dim, rows=n, sparse=sparse, with_ids=ids is not None)
        dense = done.dense if dim is not None else None
        if dense is None and dim is not None:
            dense = np.full((done.size, dim), np.nan, dtype=np.float32)
        errors = done.errors if any(e is not None for e in done.errors) else None
        sink.write(chunk_ids, dense, done.sparse if sparse else None, errors)

    try:
        for batch in chunks(pairs, chunk_size):
            chunk = [t for t, _ in batch]
            chunk_ids = [str(i) for _, i in batch] if ids is not None else None
            done = Chunk(len(chunk))
            try:
                if on_error == "raise":
                    try:
                        done.store(range(len(chunk)), embed(chunk)(list(range(len(chunk)))))
                    except DashScopeError as exc:
                        if exc.partial is not None:
                            done.store(exc.partial.rows, exc.partial.result)
                        raise
                else:
                    embed_chunk(embed(chunk), done)
            except DashScopeError as exc:
                shift_error(exc, rows)
                for pos in set(range(done.size)) - done.done:
                    if done.errors[pos] is None:
                        done.errors[pos] = f"not_embedded: the run stopped ({type(exc).__name__})"
                write(chunk_ids, done)
                raise
            write(chunk_ids, done)
            failures.extend(done.failures(rows))
            usage = usage + done.usage
            rows += len(chunk)
        if sink is None:  # no texts: still leave a valid, empty file (with its vector column)
            sink = open_sink(path, dim=dim, rows=0, sparse=sparse, with_ids=ids is not None)
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
    return StreamSummary(Path(path), rows, dim, usage, model, tuple(failures))


def _at_most(texts: Iterable[str], n: int) -> Iterator[str]:
    """``texts``, refusing an ``n+1``-th one (before the chunk that holds it is sent)."""
    for row, text in enumerate(texts):
        if row >= n:
            raise ValueError(f"the input has more than the n={n} rows given; nothing past row {n}")
        yield text


def _paired(texts: Iterator[str], ids: Iterable[str] | None) -> Iterator[tuple[str, object]]:
    """``(text, id)`` pairs; ids that run out first (or outlast the texts) are an error, raised
    while the chunk is read, before it is sent."""
    if ids is None:
        yield from ((t, None) for t in texts)
        return
    id_iter = iter(ids)
    count = 0
    for text in texts:
        row_id = next(id_iter, _END)
        if row_id is _END:
            raise ValueError(f"ids ran out at row {count}: give exactly one id per text")
        yield text, row_id
        count += 1
    if next(id_iter, _END) is not _END:
        raise ValueError(f"more ids than the {count} texts: give exactly one id per text")


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
    on_error: OnError = "isolate",
) -> StreamSummary:
    """Embed ``texts`` into a float32 ``.npy`` of shape ``(rows, dim)`` with bounded memory.

    Rows the service rejects on their own are NaN and listed in ``failures`` (see
    :func:`embed_to_file` for ``on_error``).

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
        on_error=on_error,
    )
