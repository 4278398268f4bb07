"""Vectors to disk with bounded memory: ``.npy`` (float32), ``.jsonl`` and Parquet writers.

Nothing here keeps more than one chunk of rows in memory, and nothing memory-maps the output:
mapped pages of a large ``.npy`` would count towards the process's resident memory. The ``.npy``
writer seeks and writes instead, so it serves both the in-order real-time stream and the Batch
path, whose results arrive file by file and line by line in any order.

Every ``.npy`` written here has a fixed 128-byte header (a valid NPY 1.0 header padded with
spaces), so a stream of unknown length can rewrite its shape in place when it closes. A ``.npy``
of known size starts as all NaN: a row that was never written reads NaN, never a plausible 0.0.

Outputs are written to ``<path>.partial`` in the same directory and moved onto ``path``
(``os.replace``, atomic) only by :meth:`Sink.close` once every row is in; :meth:`Sink.abort` (a
failed run) leaves the ``.partial`` readable beside an untouched ``path``. A file at ``path``
is therefore always complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

from dashscope_embed._types import SparseVector
from dashscope_embed._wire import dumps

__all__ = [
    "FORMATS",
    "JsonlSink",
    "NpyWriter",
    "ParquetSink",
    "Sink",
    "commit",
    "ids_path",
    "open_sink",
    "partial_path",
    "read_npy_rows",
    "require",
]

FORMATS = (".npy", ".jsonl", ".parquet")
_HEADER_BYTES = 128
_MAGIC = b"\x93NUMPY\x01\x00"
_FILL_BYTES = 1 << 18  # NaN written per call when a .npy is created (bounded memory)

Float32Array = npt.NDArray[np.float32]


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


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where ``path`` is written until it is complete: ``<path>.partial``, same directory."""
    p = Path(path)
    return p.with_name(p.name + ".partial")


def commit(partial: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Make a finished ``.partial`` the final file: fsync it, then ``os.replace`` (atomic)."""
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, final)


def _header(rows: int, dim: int) -> bytes:
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    body = text.ljust(_HEADER_BYTES - len(_MAGIC) - 2 - 1) + "\n"
    return _MAGIC + len(body).to_bytes(2, "little") + body.encode("latin-1")


class NpyWriter:
    """A float32 ``(rows, dim)`` ``.npy`` file written chunk by chunk, without memory-mapping.

    With ``rows`` known the file is created at full size, every row NaN, and :meth:`write` may
    fill any rows in any order (rows never written stay NaN); with ``rows=None`` rows are
    appended with :meth:`append` and the header gets the final count on :meth:`close`.

    Args:
        path: The ``.npy`` file to create (replaced if it exists). Callers that must not leave a
            half-written file at the final path pass a :func:`partial_path` and :func:`commit`.
        dim: Vector dimension.
        rows: Total rows, or ``None`` for a stream of unknown length.
    """

    def __init__(self, path: str | os.PathLike[str], dim: int, *, rows: int | None = None) -> None:
        self.path = Path(path)
        self.dim = int(dim)
        self.rows = rows
        self._appended = 0
        self._fh: IO[bytes] = open(self.path, "w+b")  # noqa: SIM115 - closed in close()
        self._fh.write(_header(rows or 0, self.dim))
        if rows:
            self._fill_nan(rows)

    def _fill_nan(self, rows: int) -> None:
        """Write ``rows`` NaN rows after the header, a bounded block at a time."""
        total = rows * self.dim
        block = np.full(min(total, _FILL_BYTES // 4), np.nan, dtype="<f4")
        while total:
            n = min(total, block.size)
            self._fh.write(block[:n].data)
            total -= n

    @classmethod
    def reopen(cls, path: str | os.PathLike[str]) -> NpyWriter:
        """Open a file this class wrote, to fill more rows (e.g. a resumed batch job).

        Raises:
            ValueError: the file is not a float32 2-D ``.npy`` with our fixed header.
        """
        rows, dim = npy_shape(path)
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer.dim = dim
        writer.rows = rows
        writer._appended = 0
        writer._fh = open(writer.path, "r+b")  # noqa: SIM115 - closed in close()
        return writer

    def write(self, start: int, block: npt.ArrayLike) -> None:
        """Write ``block`` (shape ``(k, dim)``) at rows ``start .. start+k-1``."""
        data = np.ascontiguousarray(block, dtype="<f4")
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ValueError(f"expected rows of dimension {self.dim}, got shape {data.shape}")
        if self.rows is None or start < 0 or start + data.shape[0] > self.rows:
            raise ValueError(f"rows {start}..{start + data.shape[0]} outside the file")
        self._fh.seek(_HEADER_BYTES + start * self.dim * 4)
        self._fh.write(data.tobytes())

    def append(self, block: npt.ArrayLike) -> None:
        """Append rows to a stream opened with ``rows=None``."""
        data = np.ascontiguousarray(block, dtype="<f4")
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ValueError(f"expected rows of dimension {self.dim}, got shape {data.shape}")
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(data.tobytes())
        self._appended += data.shape[0]

    def flush(self) -> None:
        """Push written rows to the operating system (and to disk)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Finish the file (a stream's header gets its row count)."""
        if self._fh.closed:
            return
        if self.rows is None:
            self._fh.seek(0)
            self._fh.write(_header(self._appended, self.dim))
        self._fh.close()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def npy_shape(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Rows and dimension of a float32 ``.npy`` written by :class:`NpyWriter`."""
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_BYTES)
    if not head.startswith(_MAGIC) or len(head) < _HEADER_BYTES:
        raise ValueError(f"{path} is not a .npy file written by dashscope-embed")
    import ast

    meta = ast.literal_eval(head[10:].decode("latin-1").strip())
    shape = meta.get("shape", ())
    if meta.get("descr") != "<f4" or len(shape) != 2:
        raise ValueError(f"{path} is not a float32 2-D .npy file")
    return int(shape[0]), int(shape[1])


def read_npy_rows(path: str | os.PathLike[str], start: int, count: int) -> Float32Array:
    """Read rows ``start .. start+count-1`` of a :class:`NpyWriter` file (no memory map)."""
    rows, dim = npy_shape(path)
    count = max(0, min(count, rows - start))
    data = np.fromfile(path, dtype="<f4", count=count * dim, offset=_HEADER_BYTES + start * dim * 4)
    return data.reshape(count, dim).astype(np.float32, copy=False)


def ids_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar that holds the row ids of an ``.npy`` output (one JSON string per line)."""
    p = Path(path)
    return p.with_name(p.stem + ".ids.jsonl")


class Sink(Protocol):
    """Where a stream of embedded rows goes, in input order."""

    def write(
        self,
        ids: Sequence[str] | None,
        dense: Float32Array | None,
        sparse: Sequence[SparseVector] | None,
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
        sparse: Sequence[SparseVector] | None,
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
        sparse: Sequence[SparseVector] | None,
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
                if sparse is not None:
                    row["sparse"] = _sparse_json(sparse[i])
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
        sparse: Sequence[SparseVector] | None,
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
            merged = [v.merged() for v in sparse] if sparse is not None else []
            columns["sparse_indices"] = pa.array([list(m.indices) for m in merged])
            columns["sparse_values"] = pa.array(
                [list(m.values) for m in merged], pa.list_(pa.float32())
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


def iter_npy_chunks(path: str | os.PathLike[str], chunk: int) -> Iterator[tuple[int, Float32Array]]:
    """``(start, rows)`` blocks of a :class:`NpyWriter` file, ``chunk`` rows at a time."""
    total, _ = npy_shape(path)
    for start in range(0, total, chunk):
        yield start, read_npy_rows(path, start, chunk)
