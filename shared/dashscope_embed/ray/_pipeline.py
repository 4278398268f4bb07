"""The common pipeline in one call: read files → embed → write Parquet, resumable by id.

Layout of ``output`` (Hive partitions, so ``ray.data.read_parquet(output)`` reads both and adds
an ``embed_status`` column)::

    output/embed_status=ok/*.parquet       rows with vectors (every run appends here)
    output/embed_status=failed/*.parquet   rows of the last run that failed, with the reason

A run skips the ids already under ``embed_status=ok`` and first deletes ``embed_status=failed``
(those rows are tried again), so re-running the same call after a crash, a quota problem or a
fix finishes the job without paying twice for a row, and without duplicate ids.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from dashscope_embed import DEFAULT_TEXT_MODEL, OutputType, TextType, get_model
from dashscope_embed.ray._embedder import DashScopeEmbedder, OnError
from dashscope_embed.ray._shared import SharedQuota
from dashscope_embed.text._options import TextOptions, validate_text_options

if TYPE_CHECKING:
    import ray

__all__ = ["STATUS_COLUMN", "EmbedFilesReport", "SourceFormat", "embed_files"]

SourceFormat = Literal["parquet", "json", "csv"]

#: The partition column of ``output``: ``ok`` or ``failed``.
STATUS_COLUMN = "embed_status"

_EXTENSIONS: dict[str, SourceFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".json": "json",
    ".ndjson": "json",
    ".csv": "csv",
}


@dataclass(frozen=True)
class EmbedFilesReport:
    """What one :func:`embed_files` run did.

    Attributes:
        vectors_path: Where the rows with vectors are (``output/embed_status=ok``).
        failed_path: Where this run's failed rows are (``output/embed_status=failed``).
        already_done: Rows that had vectors before this run (their ids were skipped).
        embedded: Rows that got vectors in this run.
        failed: Rows that failed in this run (with ``on_error="column"``).
        total: Rows with vectors in ``output`` after this run.
    """

    vectors_path: str
    failed_path: str
    already_done: int
    embedded: int
    failed: int
    total: int


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def _expand(paths: Sequence[str]) -> list[str]:
    """Local globs (``dir/*.jsonl``, the README's form) expanded to the files they match, in
    sorted order; Ray Data's readers take files and directories, not patterns. Remote URIs
    (``s3://``…) pass through for Ray to resolve.

    Raises:
        FileNotFoundError: a local pattern that matches nothing (named).
    """
    out: list[str] = []
    for path in paths:
        if "://" in path or not glob.has_magic(path):
            out.append(path)
            continue
        found = sorted(glob.glob(path, recursive=True))
        if not found:
            raise FileNotFoundError(f"no file matches {path!r}")
        out.extend(found)
    return out


def _guess_format(paths: Sequence[str]) -> SourceFormat:
    for suffix, fmt in _EXTENSIONS.items():
        if all(p.lower().removesuffix(".gz").endswith(suffix) for p in paths):
            return fmt
    raise ValueError(
        f"cannot tell the format of {list(paths)[:3]} from the extension: pass "
        "source_format='parquet', 'json' or 'csv'"
    )


def _read(paths: list[str], fmt: SourceFormat) -> ray.data.Dataset:
    import ray.data

    if fmt == "parquet":
        return ray.data.read_parquet(paths)
    if fmt == "json":  # JSON Lines as well (one object per line)
        return ray.data.read_json(paths)
    return ray.data.read_csv(paths)


def _count_and_ids(path: str, id_column: str | None) -> tuple[int, pa.Array | None]:
    """Rows under ``path`` (0 if absent) and, if asked, their ids."""
    fs, root = pafs.FileSystem.from_uri(path)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return 0, None
    import pyarrow.dataset as pads

    dataset = pads.dataset(root, filesystem=fs, format="parquet")
    if id_column is None:
        return int(dataset.count_rows()), None
    ids = dataset.to_table(columns=[id_column]).column(id_column).combine_chunks()
    return len(ids), ids


def _delete(path: str) -> None:
    fs, root = pafs.FileSystem.from_uri(path)
    if fs.get_file_info(root).type != pafs.FileType.NotFound:
        fs.delete_dir(root)


def _drop_done(batch: pa.Table, *, done: Any, id_column: str) -> pa.Table:
    """Keep the rows whose id has no vector yet (``done`` is an ObjectRef of the ids)."""
    import ray

    ids: pa.Array = ray.get(done)
    column = batch.column(id_column)
    try:
        ids = ids.cast(column.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TypeError(
            f"ids in the output are {ids.type} but {id_column!r} in the input is {column.type}"
        ) from exc
    return batch.filter(pc.invert(pc.is_in(column, value_set=ids)))


def _add_status(batch: pa.Table, *, error_column: str) -> pa.Table:
    failed = pc.is_valid(batch.column(error_column))
    status = pc.if_else(failed, pa.scalar("failed"), pa.scalar("ok"))
    return batch.append_column(STATUS_COLUMN, status)


def embed_files(
    source: str | Sequence[str],
    output: str,
    *,
    id_column: str = "id",
    text_column: str = "text",
    source_format: SourceFormat | None = None,
    quota: SharedQuota | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    workers: int = 4,
    batch_size: int = 256,
    num_cpus: float = 0.25,
    on_error: OnError = "column",
    vector_column: str = "embedding",
    sparse_column: str = "sparse_embedding",
    error_column: str = "embedding_error",
    model: str = DEFAULT_TEXT_MODEL,
    dimension: int | None = None,
    text_type: TextType | None = "document",
    instruct: str | None = None,
    output_type: OutputType = "dense",
    max_batch_size: int | None = None,
    api_key: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    workspace: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_concurrency: int | None = None,
) -> EmbedFilesReport:
    """Read Parquet/JSONL/CSV with Ray Data, embed a text column, write Parquet; resumable.

    Call it after ``ray.init()``. Rows whose ``id_column`` value already has vectors in
    ``output`` are skipped, so running the same call again finishes an interrupted job.

    Args:
        source: File(s), directory or glob readable by Ray Data (local, ``s3://``, ``gs://``...).
        output: Output directory (see the module docstring for its layout).
        id_column: A unique, stable row id (the resume key).
        text_column: The column to embed.
        source_format: ``"parquet"``, ``"json"`` (JSON Lines too) or ``"csv"``; guessed from
            the extension if omitted.
        quota: The account's :class:`SharedQuota`; by default one is created from ``rpm``/``tpm``.
        rpm: Account requests-per-minute limit for the model (when ``quota`` is not given).
        tpm: Account tokens-per-minute limit for the model (when ``quota`` is not given).
        workers: Embedding workers (actors), each with one client.
        batch_size: Rows per Ray Data batch (each batch is one call of the embedder).
        num_cpus: CPUs reserved per worker (embedding waits on the network: keep it small).
        on_error: ``"column"`` (default) writes failed rows under ``embed_status=failed``;
            ``"raise"`` stops the job at the first failed row.
        vector_column: Dense vector column (``fixed_size_list<float32>[dim]``).
        sparse_column: Sparse vector column (``output_type`` with sparse).
        error_column: Why a row failed (null for rows with vectors).
        model: Model id.
        dimension: Output dimension.
        text_type: ``"document"`` (default), ``"query"`` or ``None``.
        instruct: Task instruction (queries only).
        output_type: ``"dense"``, ``"sparse"`` or ``"dense&sparse"``.
        max_batch_size: Rows per request (default: the model's limit).
        api_key: API key; better set ``DASHSCOPE_API_KEY`` on the workers.
        region: Region preset.
        base_url: Explicit host (an emulator URL, say).
        workspace: Workspace id.
        timeout: Seconds per request.
        max_retries: Retries per request.
        max_concurrency: Requests in flight per worker.

    Returns:
        Counts and paths of this run.

    Raises:
        InvalidInputError: an option the model cannot take (before anything is read).
        ValueError: an unknown source format, or ``quota`` together with ``rpm``/``tpm``.
    """
    import ray.data

    options = TextOptions(model, text_type, dimension, output_type, instruct)
    validate_text_options(options, get_model(model), region=None)
    if quota is not None and (rpm is not None or tpm is not None):
        raise ValueError("pass rpm/tpm to the SharedQuota you give, not to embed_files")
    paths = _expand([_absolute(p) for p in ([source] if isinstance(source, str) else source)])
    fmt = source_format or _guess_format(paths)
    root = _absolute(output).rstrip("/")
    vectors_path, failed_path = f"{root}/{STATUS_COLUMN}=ok", f"{root}/{STATUS_COLUMN}=failed"
    already_done, done = _count_and_ids(vectors_path, id_column)
    _delete(failed_path)  # its rows are tried again below

    ds = _read(paths, fmt)
    if done is not None and len(done):
        skip = functools.partial(_drop_done, done=ray.put(done), id_column=id_column)
        ds = ds.map_batches(skip, batch_format="pyarrow")
    embedder_options: dict[str, object] = {
        "text_column": text_column,
        "vector_column": vector_column,
        "sparse_column": sparse_column,
        "error_column": error_column,
        "id_column": id_column,
        "on_error": on_error,
        "model": model,
        "dimension": dimension,
        "text_type": text_type,
        "instruct": instruct,
        "output_type": output_type,
        "max_batch_size": max_batch_size,
        "quota": quota or SharedQuota(rpm=rpm, tpm=tpm),
        "api_key": api_key,
        "region": region,
        "base_url": base_url,
        "workspace": workspace,
        "timeout": timeout,
        "max_retries": max_retries,
        "max_concurrency": max_concurrency,
    }
    ds = ds.map_batches(
        DashScopeEmbedder,
        fn_constructor_kwargs=embedder_options,
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=num_cpus,
    )
    status = functools.partial(_add_status, error_column=error_column)
    ds = ds.map_batches(status, batch_format="pyarrow")
    ds.write_parquet(root, partition_cols=[STATUS_COLUMN])

    total, _ = _count_and_ids(vectors_path, None)
    failed, _ = _count_and_ids(failed_path, None)
    return EmbedFilesReport(
        vectors_path=vectors_path,
        failed_path=failed_path,
        already_done=already_done,
        embedded=total - already_done,
        failed=failed,
        total=total,
    )
