"""Columns of one profile batch, and exact order-independent sums (profile builder internals).

:func:`batch_columns` turns a pyarrow batch, a pandas DataFrame or a mapping into
:class:`Column` objects; :func:`exact_sum` sums doubles exactly as an integer, so the
builder's sums do not depend on how rows are partitioned or ordered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

# Private on purpose: the builder reads loose values exactly as ``profile`` does.
from ._profile_data import _object_column
from .batch import FloatArray
from .errors import ConfigurationError
from .exact_sums import SCALE, exact_sum

__all__ = ["SCALE", "Column", "batch_columns", "exact_sum", "ratio", "table_columns"]

# --- columns of a batch ------------------------------------------------------------------


class Column:
    """One column of one batch: float64 (NaN missing) or object (``None`` missing).

    ``dtype`` is the source's kind: ``"i"`` integer, ``"f"`` float, ``"b"`` boolean,
    ``"O"`` anything else (strings, dates...). An Arrow string column keeps its Arrow
    array (``arrow``) and builds the object array only when asked: categories are
    counted by Arrow directly.
    """

    __slots__ = ("_values", "arrow", "dtype", "size")

    def __init__(self, values: npt.NDArray[Any] | None, dtype: str, arrow: Any = None) -> None:
        self._values = values
        self.dtype = dtype
        self.arrow = arrow
        self.size = len(arrow) if values is None else int(values.shape[0])

    @property
    def values(self) -> npt.NDArray[Any]:
        if self._values is None:
            self._values = np.asarray(self.arrow.to_numpy(zero_copy_only=False), dtype=object)
        return self._values


def batch_columns(batch: Any) -> dict[str, Column]:
    """Columns of a pyarrow ``RecordBatch``/``Table``, a pandas DataFrame or a mapping.

    A mapping of :class:`Column` objects (this function's own result) is returned as
    is: a caller holding the data in memory converts it once for both passes.
    """
    if isinstance(batch, Mapping) and all(isinstance(v, Column) for v in batch.values()):
        return {str(k): v for k, v in batch.items()}
    module = type(batch).__module__
    if module.startswith("pyarrow"):
        return {str(n): _arrow_column(batch.column(i)) for i, n in enumerate(batch.schema.names)}
    if module.startswith("pandas") and type(batch).__name__ == "DataFrame":
        return {str(c): _pandas_column(batch[c]) for c in batch.columns}
    if isinstance(batch, Mapping):
        return {str(k): _array_column(v) for k, v in batch.items()}
    raise ConfigurationError(
        "a profile batch must be a pyarrow RecordBatch/Table, a pandas DataFrame or a "
        f"mapping of column name to values, got {type(batch).__name__}"
    )


def table_columns(table: Any) -> dict[str, Column]:
    """The columns of a whole pyarrow ``Table``, each one contiguous, for both passes.

    Each column's Arrow chunks are released as soon as it is converted, so the peak
    memory is the table plus one column. A mapping of columns is a batch of its own
    (:func:`batch_columns`): one update per pass, no work per parser block.
    """
    out: dict[str, Column] = {}
    for name in list(table.column_names):
        out[str(name)] = _arrow_column(table.column(name))
        table = table.drop_columns([name])
    return out


def _arrow_column(col: Any) -> Column:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_dictionary(t):
        if pa.types.is_string(t.value_type):  # counted by Arrow as it is
            return Column(None, "O", arrow=col)
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        kind = "f" if pa.types.is_floating(t) or pa.types.is_decimal(t) else "i"
        return Column(_float64(col), kind)
    if pa.types.is_boolean(t):
        return Column(np.asarray(col.to_pylist(), dtype=object), "b")
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        col = pc.cast(col, pa.string())
    return Column(None, "O", arrow=col)


def _float64(col: Any) -> FloatArray:
    """A numeric Arrow array (or chunked array) as float64, nulls as NaN.

    Read from the data buffer (no copy for a float64 array without nulls); Arrow's own
    ``to_numpy`` would import pandas, a third of a second the CLI does not need.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.cast(col, pa.float64())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        arr = pc.fill_null(arr, math.nan)
    data = arr.buffers()[1]
    if data is None:  # an empty array
        return np.zeros(0)
    out = np.frombuffer(data, dtype=np.float64, count=arr.offset + len(arr))
    return out[arr.offset :]


def _pandas_column(series: Any) -> Column:
    kind = series.dtype.kind
    if kind in "fiu":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return Column(np.asarray(values, dtype=np.float64), "f" if kind == "f" else "i")
    present = series.notna().to_numpy(dtype=bool)
    values = np.array(series.astype(object).to_numpy(dtype=object), dtype=object)
    values[~present] = None  # NaN, None, pd.NA, NaT: one missing marker
    return _list_column(values.tolist())


def _array_column(values: Any) -> Column:
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        return _pandas_column(values)
    a = np.asarray(values)
    if a.dtype.kind in "fiu":
        return Column(a.astype(np.float64).reshape(-1), "f" if a.dtype.kind == "f" else "i")
    if a.dtype.kind == "b":
        return Column(a.astype(object).reshape(-1), "b")
    return _list_column(list(a.reshape(-1).tolist()))


def _list_column(values: list[Any]) -> Column:
    obj = _object_column(values)
    if obj.dtype.kind == "f":
        return Column(obj, "f")
    present = [v for v in obj.tolist() if v is not None]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return Column(obj, "b")
    return Column(obj, "O")


def ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator`` correctly rounded (Python's int division is)."""
    return numerator / denominator
