"""Vectors to disk with bounded memory: ``.npy`` (float32), ``.jsonl`` and Parquet writers.

Nothing here keeps more than one chunk of rows in memory. The ``.npy`` format itself (fixed
header, NaN-filled, written without a memory map) is :mod:`._npy`.

Outputs are written to ``<path>.partial`` in the same directory and moved onto ``path``
(``os.replace``, atomic) only by :meth:`Sink.close` once every row is in; :meth:`Sink.abort` (a
failed run) leaves the ``.partial`` readable beside an untouched ``path``. A file at ``path``
is therefore always complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from dashscope_embed._types import SparseVector
from dashscope_embed._wire import dumps

from ._npy import (
    Float32Array,
    NpyWriter,
    commit,
    ids_path,
    iter_npy_chunks,
    npy_shape,
    partial_path,
    read_npy_rows,
)

__all__ = [
    "FORMATS",
    "JsonlSink",
    "NpyWriter",
    "ParquetSink",
    "Sink",
    "commit",
    "ids_path",
    "iter_npy_chunks",
    "npy_shape",
    "open_sink",
    "partial_path",
    "read_npy_rows",
    "require",
]

FORMATS = (".npy", ".jsonl", ".parquet")


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or fail with the exact install command.

    Raises:
        ImportError: naming ``pip install 'dashscope-embed[extra]'``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{module} is not installed; install it with: pip install 'dashscope-embed[{extra}]'"
        ) from None


class Sink(Protocol):
    """Where a stream of embedded rows goes, in input order."""

    def write(
        self,
        ids: Sequence[str] | None,
        dense: Float32Array | None,
        sparse: Sequence[SparseVector | None] | None,
        errors: Sequence[str | None] | None = None,
    ) -> None: ...

    def close(self) -> None:
        """Finish the file and move it onto its final path (every row is in)."""

    def abort(self) -> None:
        """Finish the file but leave it as ``<path>.partial`` (the run failed)."""


class _NpySink:
    """``.npy`` dense vectors, plus ``<stem>.ids.jsonl`` when ids are given (both ``.partial``
    until :meth:`close`)."""

    def __init__(self, path: Path, dim: int, rows: int | None, with_ids: bool) -> None:
        self._path = path
        self._writer = NpyWriter(partial_path(path), dim, rows=rows)
        self._at = 0
        self._ids: IO[str] | None = (
            open(partial_path(ids_path(path)), "w", encoding="utf-8")  # noqa: SIM115
            if with_ids
            else None
        )

    def write(
        self,
        ids: Sequence[str] | None,
        dense: Float32Array | None,
        sparse: Sequence[SparseVector | None] | None,
        errors: Sequence[str | None] | None = None,
    ) -> None:
        if dense is None:
            raise ValueError(".npy holds dense vectors only; use .jsonl or .parquet for sparse")
        if self._writer.rows is None:
            self._writer.append(dense)
        else:
            self._writer.write(self._at, dense)
        self._at += dense.shape[0]
        if self._ids is not None and ids is not None:
            self._ids.writelines(json.dumps(i, ensure_ascii=False) + "\n" for i in ids)

    def abort(self) -> None:
        self._writer.close()
        if self._ids is not None:
            self._ids.close()

    def close(self) -> None:
        self.abort()
        if self._ids is not None:
            commit(partial_path(ids_path(self._path)), ids_path(self._path))
        commit(self._writer.path, self._path)


def _sparse_json(vec: SparseVector) -> dict[str, list[int] | list[float]]:
    merged = vec.merged()
    return {"indices": list(merged.indices), "values": list(merged.values)}


class JsonlSink:
    """One JSON object per row: ``{"id"?, "embedding"?, "sparse"?, "error"?}``.

    Sparse vectors are written merged (unique ascending indices, the largest weight of a repeated
    index), the shape vector stores take.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._fh: IO[bytes] = open(partial_path(path), "wb")  # noqa: SIM115 - closed in close()

    def write(
        self,
        ids: Sequence[str] | None,
        dense: Float32Array | None,
        sparse: Sequence[SparseVector | None] | None,
        errors: Sequence[str | None] | None = None,
    ) -> None:
        n = _rows(ids, dense, sparse, errors)
        vectors = dense.astype(np.float64).tolist() if dense is not None else None
        lines = []
        for i in range(n):
            row: dict[str, object] = {}
            if ids is not None:
                row["id"] = ids[i]
            error = errors[i] if errors is not None else None
            if error is not None:
                row["error"] = error
            else:
                if vectors is not None:
                    row["embedding"] = vectors[i]
                vec = sparse[i] if sparse is not None else None
                if vec is not None:
                    row["sparse"] = _sparse_json(vec)
            lines.append(dumps(row) + b"\n")
        self._fh.write(b"".join(lines))

    def abort(self) -> None:
        self._fh.close()

    def close(self) -> None:
        self._fh.close()
        commit(partial_path(self._path), self._path)


class ParquetSink:
    """Parquet with columns ``id`` (if ids), ``embedding`` (fixed-size float32 list),
    ``sparse_indices``/``sparse_values`` (if sparse) and ``error`` (batch exports); one row group
    per chunk. Needs ``pyarrow`` (the ``parquet`` extra)."""

    def __init__(
        self, path: str | os.PathLike[str], *, dim: int | None, sparse: bool, with_ids: bool
    ) -> None:
        self._pa = require("pyarrow", "parquet")
        pq = require("pyarrow.parquet", "parquet")
        pa = self._pa
        fields = []
        if with_ids:
            fields.append(pa.field("id", pa.string()))
        if dim:
            fields.append(pa.field("embedding", pa.list_(pa.float32(), dim)))
        if sparse:
            fields.append(pa.field("sparse_indices", pa.list_(pa.int64())))
            fields.append(pa.field("sparse_values", pa.list_(pa.float32())))
        fields.append(pa.field("error", pa.string()))
        self._schema = pa.schema(fields)
        self._dim = dim
        self._path = Path(path)
        self._writer = pq.ParquetWriter(str(partial_path(path)), self._schema)

    def write(
        self,
        ids: Sequence[str] | None,
        dense: Float32Array | None,
        sparse: Sequence[SparseVector | None] | None,
        errors: Sequence[str | None] | None = None,
    ) -> None:
        pa = self._pa
        n = _rows(ids, dense, sparse, errors)
        errs = list(errors) if errors is not None else [None] * n
        columns: dict[str, Any] = {}
        if "id" in self._schema.names:
            columns["id"] = pa.array(list(ids) if ids is not None else [None] * n, pa.string())
        if self._dim:
            flat = np.ascontiguousarray(dense, dtype=np.float32).reshape(-1)
            mask = pa.array([e is not None for e in errs], pa.bool_())
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(
                pa.array(flat, pa.float32()), self._dim, mask=mask
            )
        if "sparse_indices" in self._schema.names:
            merged = [v.merged() if v is not None else None for v in (sparse or [None] * n)]
            columns["sparse_indices"] = pa.array(
                [list(m.indices) if m is not None else None for m in merged],
                pa.list_(pa.int64()),
            )
            columns["sparse_values"] = pa.array(
                [list(m.values) if m is not None else None for m in merged],
                pa.list_(pa.float32()),
            )
        columns["error"] = pa.array(errs, pa.string())
        self._writer.write_table(pa.table(columns, schema=self._schema))

    def abort(self) -> None:
        self._writer.close()

    def close(self) -> None:
        self._writer.close()
        commit(partial_path(self._path), self._path)


def _rows(*parts: object) -> int:
    for part in parts:
        if part is not None:
            return len(part)  # type: ignore[arg-type]
    return 0


def open_sink(
    path: str | os.PathLike[str],
    *,
    dim: int | None,
    rows: int | None = None,
    sparse: bool = False,
    with_ids: bool = False,
) -> Sink:
    """A writer chosen by the file suffix: ``.npy``, ``.jsonl`` or ``.parquet``; it writes
    ``<path>.partial`` and moves it onto ``path`` on :meth:`Sink.close`.

    Raises:
        ValueError: an unknown suffix, or sparse output to ``.npy``.
        ImportError: Parquet without ``pyarrow`` (names the install command).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        if sparse or not dim:
            raise ValueError(
                ".npy holds dense vectors only; write sparse output to .jsonl/.parquet"
            )
        return _NpySink(p, dim, rows, with_ids)
    if suffix == ".jsonl":
        return JsonlSink(p)
    if suffix == ".parquet":
        return ParquetSink(p, dim=dim, sparse=sparse, with_ids=with_ids)
    raise ValueError(f"unsupported output {p.name!r}: use one of {', '.join(FORMATS)}")
