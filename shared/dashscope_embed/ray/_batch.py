"""Ray Data batches in and out: one column read, the result columns written back, per format.

``Dataset.map_batches`` hands a UDF a ``pyarrow.Table`` (``batch_format="pyarrow"``), a
``pandas.DataFrame`` (``"pandas"``) or a ``dict`` of numpy arrays (``"numpy"``, the default);
the embedder answers in the same format:

========  =================================  =====================================  ==============
format    vector column                      sparse column                          failed row
========  =================================  =====================================  ==============
pyarrow   ``fixed_size_list<float32>[dim]``  ``struct<indices, values>``            null
numpy     ``float32`` array (n, dim)         object array of ``{indices, values}``  NaN row / None
pandas    one ``float32`` array a row        ``{indices, values}`` dicts            NaN row / None
========  =================================  =====================================  ==============

The error column is a string column, null (``None``) where the row has its vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from dashscope_embed import SparseVector

__all__ = ["BatchKind", "Columns", "read_column", "write_columns"]

BatchKind = Literal["pyarrow", "pandas", "numpy"]

SPARSE_TYPE = pa.struct([("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float32()))])


@dataclass
class Columns:
    """What the embedder computed for one batch, ready to be attached to it.

    Attributes:
        dense: ``(n, dim)`` float32 with NaN rows where ``failed``; ``None`` for sparse-only.
        failed: One flag per row.
        sparse: One sparse vector per row (``None`` where failed); ``None`` if not requested.
        errors: The error text per row, ``None`` where the row succeeded.
    """

    dense: npt.NDArray[np.float32] | None
    failed: npt.NDArray[np.bool_]
    sparse: list[SparseVector | None] | None
    errors: list[str | None]


def batch_kind(batch: object) -> BatchKind:
    """Which of Ray Data's batch formats ``batch`` is."""
    if isinstance(batch, pa.Table):
        return "pyarrow"
    if isinstance(batch, dict):
        return "numpy"
    if type(batch).__module__.startswith("pandas") and hasattr(batch, "columns"):
        return "pandas"
    raise TypeError(
        f"unsupported batch type {type(batch).__name__}: use map_batches with batch_format "
        "'pyarrow', 'pandas' or 'numpy'"
    )


def read_column(batch: Any, kind: BatchKind, name: str) -> list[object]:
    """The values of column ``name`` as Python objects (missing values as ``None``)."""
    columns = list(batch.column_names if kind == "pyarrow" else batch.keys())
    if name not in columns:
        raise KeyError(f"column {name!r} is not in the batch; its columns are {columns}")
    if kind == "pyarrow":
        values: list[object] = batch.column(name).to_pylist()
    else:
        values = list(np.asarray(batch[name], dtype=object).tolist())
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def _sparse_rows(rows: list[SparseVector | None]) -> list[dict[str, list[Any]] | None]:
    out: list[dict[str, list[Any]] | None] = []
    for vec in rows:
        if vec is None:
            out.append(None)
        else:
            merged = vec.merged()
            out.append({"indices": list(merged.indices), "values": list(merged.values)})
    return out


def _arrow_vectors(dense: npt.NDArray[np.float32], failed: npt.NDArray[np.bool_]) -> pa.Array:
    """``fixed_size_list<float>[dim]``, null where ``failed``: the type the core's Parquet sink
    writes, so vectors from either path read back (and concatenate) alike."""
    dim = dense.shape[1]
    values = pa.array(np.ascontiguousarray(dense).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(failed))


def write_columns(
    batch: Any,
    kind: BatchKind,
    cols: Columns,
    *,
    vector_column: str,
    sparse_column: str,
    error_column: str,
) -> Any:
    """``batch`` with the vector, sparse and error columns set (replaced if present)."""
    sparse = _sparse_rows(cols.sparse) if cols.sparse is not None else None
    if kind == "pyarrow":
        table: pa.Table = batch
        new: dict[str, pa.Array] = {}
        if cols.dense is not None:
            new[vector_column] = _arrow_vectors(cols.dense, cols.failed)
        if sparse is not None:
            new[sparse_column] = pa.array(sparse, type=SPARSE_TYPE)
        new[error_column] = pa.array(cols.errors, type=pa.string())
        for name, array in new.items():
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        return table
    values: dict[str, Any] = {}
    if cols.dense is not None:
        values[vector_column] = cols.dense if kind == "numpy" else list(cols.dense)
    if sparse is not None:
        objects = np.empty(len(sparse), dtype=object)
        objects[:] = sparse
        values[sparse_column] = objects
    values[error_column] = np.array(cols.errors, dtype=object)
    if kind == "numpy":
        return {**batch, **values}
    return batch.assign(**values)
