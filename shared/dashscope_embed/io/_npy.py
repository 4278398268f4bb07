"""The ``.npy`` files dashscope-embed writes: float32 ``(rows, dim)``, fixed 128-byte header.

Nothing here memory-maps: mapped pages of a large ``.npy`` would count towards the process's
resident memory. :class:`NpyWriter` seeks and writes instead, so it serves both the in-order
real-time stream and the Batch path, whose results arrive file by file, line by line, in any
order. The fixed header (a valid NPY 1.0 header padded with spaces) lets a stream of unknown
length rewrite its shape in place when it closes; a file of known size starts as all NaN, so a
row never written reads NaN, never a plausible 0.0.

Also here: :func:`partial_path` / :func:`commit`, the ``.partial``-then-rename rule every output
follows, and :func:`ids_path`, the ids sidecar of an ``.npy``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

__all__ = [
    "Float32Array",
    "NpyWriter",
    "commit",
    "ids_path",
    "iter_npy_chunks",
    "npy_shape",
    "partial_path",
    "read_npy_rows",
]

_HEADER_BYTES = 128
_MAGIC = b"\x93NUMPY\x01\x00"
_FILL_BYTES = 1 << 18  # NaN written per call when a .npy is created (bounded memory)

Float32Array = npt.NDArray[np.float32]


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


def iter_npy_chunks(path: str | os.PathLike[str], chunk: int) -> Iterator[tuple[int, Float32Array]]:
    """``(start, rows)`` blocks of a :class:`NpyWriter` file, ``chunk`` rows at a time."""
    total, _ = npy_shape(path)
    for start in range(0, total, chunk):
        yield start, read_npy_rows(path, start, chunk)
