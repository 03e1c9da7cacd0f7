"""Input and output extraction: turn what a predict function saw and said into arrays.

Runs in the fold, over a whole batch of calls at once, never on the hot path. Inputs
understood without configuration: numpy 0-D/1-D (one row) and 2-D arrays, pandas
DataFrame/Series (pandas is never imported: objects are recognised by their module),
a dict (one row), a list of dicts, a list of lists, a pydantic model
(``model_dump()``), plain scalars. Anything else is counted, never raised.

>>> schema = FeatureSchema()
>>> frame = features_frame([{"a": 1.0, "b": None}, {"a": "x", "b": 2}], schema)
>>> schema.names, int(frame.missing.sum()), int(frame.invalid.sum())
(('a', 'b'), 1, 1)
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

# private: the row packer shared with the dict paths (one cache of Struct objects)
from ._extract_dicts import _packer, pack_dicts, read_dicts, split_of

# private: the pandas and scalar checks shared with the outputs (one owner)
from ._extract_types import UnsupportedInput, _is_pandas, _is_scalar
from .batch import BoolArray, FeatureFrame, FloatArray, ObjArray
from .category_vocabulary import CodedColumns, Vocabulary
from .extract_outputs import (
    PROBABILITY_TOLERANCE,
    SCALAR_OUTPUT_TYPES,
    concat_output_frames,
    output_array,
    output_rows,
    outputs_frame,
)

__all__ = [
    "DEFAULT_MAX_FEATURES",
    "MAX_CATEGORY_CHARS",
    "PROBABILITY_TOLERANCE",
    "SCALAR_OUTPUT_TYPES",
    "Block",
    "Chunk",
    "ChunkKind",
    "FeatureSchema",
    "UnsupportedInput",
    "bounded_category",
    "concat_output_frames",
    "features_frame",
    "input_chunk",
    "output_array",
    "output_rows",
    "outputs_frame",
    "stacked_arrays",
]

DEFAULT_MAX_FEATURES = 100
# Category values longer than this are cut and suffixed with a hash of the whole value
# before any array is built, so one hostile string cannot make a fold's fixed-width
# arrays (rows x longest value) huge. Distinct long values stay distinct.
MAX_CATEGORY_CHARS = 128
_CATEGORY_PREFIX_CHARS = MAX_CATEGORY_CHARS - 17  # room for "~" and 16 hex digits

ChunkKind = Literal["matrix", "dicts", "rows", "empty"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """The rows of one call's input, before the batch is vectorised.

    ``matrix``: a 2-D numeric ndarray; ``dicts``: a list of mappings; ``rows``: a list
    of sequences of arbitrary values; ``columns`` names the columns when known.
    """

    kind: ChunkKind
    payload: Any
    columns: tuple[str, ...] | None = None
    plain_dicts: bool = False  # the caller checked: every item is a ``dict``

    @property
    def n_rows(self) -> int:
        if self.kind == "empty":
            return 0
        if self.kind == "matrix":
            return int(self.payload.shape[0])
        assert isinstance(self.payload, list)
        return len(self.payload)


_EMPTY = Chunk("empty", None)


def input_chunk(x: Any) -> Chunk:
    """Normalise one call's input into a :class:`Chunk` (raises UnsupportedInput)."""
    if x is None:
        return _EMPTY
    if isinstance(x, np.ndarray):
        return _array_chunk(x, None)
    if isinstance(x, Mapping):
        return Chunk("dicts", [x])
    if _is_pandas(x, "DataFrame"):
        columns = tuple(str(c) for c in x.columns)
        return _array_chunk(x.to_numpy(), columns)
    if _is_pandas(x, "Series"):
        return Chunk("dicts", [{str(k): v for k, v in x.items()}])
    dump = getattr(x, "model_dump", None)
    if callable(dump):
        return Chunk("dicts", [dump()])
    if _is_scalar(x):
        return Chunk("rows", [(x,)])
    if isinstance(x, (list, tuple)):
        return _sequence_chunk(x)
    raise UnsupportedInput(f"cannot read features from {type(x).__name__}")


def _array_chunk(a: np.ndarray, columns: tuple[str, ...] | None) -> Chunk:
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(1, -1)
    elif a.ndim > 2:
        a = a.reshape(a.shape[0], -1)
    if a.shape[0] == 0:
        return _EMPTY
    if a.dtype.kind in "fiub":
        return Chunk("matrix", a, columns)
    return Chunk("rows", a.tolist(), columns)


def stacked_arrays(inputs: Sequence[Any]) -> Chunk | None:
    """A batch of numeric ndarray inputs of one width as one matrix chunk, else None.

    The common case of a feature pipeline: every call passed a 1-D row (one row each)
    or a 2-D batch (its rows) of the same width. One C-level stack replaces a chunk per
    call; anything else (mixed ranks or widths, object arrays) takes the general path.
    """
    ndim = inputs[0].ndim
    if ndim not in (1, 2):
        return None
    try:
        # One C call either way (``np.stack`` costs about 0.3 µs a row in Python-level
        # checks): 1-D rows are joined end to end, so their lengths must all match.
        matrix = np.concatenate(inputs)  # raises on mixed ranks or 2-D widths
        if ndim == 1:
            widths = set(map(len, inputs))
            if len(widths) != 1:
                return None
            matrix = matrix.reshape(len(inputs), widths.pop())
    except (ValueError, TypeError):
        return None
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiub" or matrix.shape[0] == 0:
        return None
    return Chunk("matrix", matrix)


def _sequence_chunk(x: Sequence[Any]) -> Chunk:
    if len(x) == 0:
        return _EMPTY
    first = x[0]
    if isinstance(first, Mapping):
        return Chunk("dicts", list(x))
    if hasattr(first, "model_dump"):
        return Chunk("dicts", [item.model_dump() for item in x])
    if isinstance(first, (list, tuple, np.ndarray)):
        return Chunk("rows", [_as_row(r) for r in x])
    return Chunk("rows", [tuple(x)])


def _as_row(r: Any) -> Sequence[Any]:
    if isinstance(r, (list, tuple)):
        return r
    if isinstance(r, np.ndarray):
        return r.reshape(-1).tolist()
    return (r,)


class FeatureSchema:
    """Feature names and kinds, fixed once (from config, the reference, or first input).

    Label values come only from here, so user traffic can never add a feature label.
    """

    def __init__(
        self,
        names: Sequence[str] | None = None,
        categorical: Iterable[str] = (),
        max_features: int = DEFAULT_MAX_FEATURES,
    ) -> None:
        self.max_features = max_features
        # Codes of the categorical values, grown by the fold (under its lock) only.
        self.vocabulary = Vocabulary()
        self.categorical: frozenset[str] = frozenset(categorical)
        self._explicit_categorical = bool(self.categorical)
        self.names: tuple[str, ...] | None = None
        self.all_names: tuple[str, ...] | None = None
        if names is not None:
            self._set_names(tuple(str(n) for n in names))

    def _set_names(self, names: tuple[str, ...]) -> None:
        self.all_names = names
        self.names = names[: self.max_features]
        self._getter: Callable[[Any], Any] = operator.itemgetter(*self.names)
        self._index = {name: i for i, name in enumerate(self.names)}

    @property
    def fixed(self) -> bool:
        return self.names is not None

    def fix_names(self, names: Sequence[str]) -> None:
        """Fix the names learned from traffic (see :mod:`modelmon.schema_learning`)."""
        self._set_names(tuple(names))

    def learn(self, chunk: Chunk) -> None:
        """Fix names (and, without a reference, categorical features) from a first chunk."""
        if chunk.kind == "empty":
            return
        if self.names is None:
            if chunk.kind == "dicts":
                names = tuple(str(k) for k in chunk.payload[0])
            elif chunk.columns is not None:
                names = chunk.columns
            else:
                width = chunk.payload.shape[1] if chunk.kind == "matrix" else len(chunk.payload[0])
                names = tuple(f"f{i}" for i in range(width))
            if not names:
                return  # an empty row tells nothing: wait for one with values
            self._set_names(names)
        if not self._explicit_categorical:
            # Kinds are decided by the first input only (a numeric matrix: all numeric),
            # so later traffic can never turn a numeric feature into a categorical one.
            if chunk.kind != "matrix":
                self.categorical = frozenset(self._guess_categorical(chunk))
            self._explicit_categorical = True

    def _guess_categorical(self, chunk: Chunk) -> list[str]:
        rows = self._rows(_head(chunk, 100))  # a first fold may hold thousands of rows
        found = []
        for j, name in enumerate(self.names or ()):
            for row in rows:
                v = row[j] if j < len(row) else None
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    continue
                if isinstance(v, (str, bool, np.bool_, np.str_)):
                    found.append(name)
                break
        return found

    def _rows(self, chunk: Chunk) -> list[Sequence[Any]]:
        """Rows of a non-matrix chunk as sequences aligned with ``names``."""
        if chunk.kind == "dicts":
            getter = self._getter
            try:
                rows = list(map(getter, chunk.payload))
            except (KeyError, TypeError):
                rows = [_dict_row(d, self.names or ()) for d in chunk.payload]
            if len(self.names or ()) == 1:
                rows = [(r,) for r in rows]
            return rows
        if chunk.columns is not None and chunk.columns != self.names:
            order = [chunk.columns.index(n) if n in chunk.columns else -1 for n in self.names or ()]
            return [tuple(r[i] if i >= 0 else None for i in order) for r in chunk.payload]
        return list(chunk.payload)

    def width_excess(self, chunk: Chunk) -> int:
        """Values in the chunk that belong to no exported feature."""
        if chunk.kind == "empty" or self.all_names is None:
            return 0
        if chunk.kind == "dicts":
            # Keys beyond the schema (a dict with missing keys takes the slow path anyway).
            payload = chunk.payload
            if chunk.plain_dicts or set(map(type, payload)) == {dict}:  # no Python loop
                total = sum(map(len, payload))
            else:
                total = sum(len(d) if isinstance(d, Mapping) else 0 for d in payload)
            return max(total - len(self.names or ()) * len(payload), 0)
        if chunk.kind == "matrix":
            rows, width = chunk.payload.shape
            return int(max(width - len(self.names or ()), 0) * rows)
        return sum(max(len(r) - len(self.names or ()), 0) for r in chunk.payload)


def _head(chunk: Chunk, n: int) -> Chunk:
    """The first ``n`` rows of a dicts or rows chunk (its other fields kept)."""
    if chunk.kind in ("dicts", "rows") and len(chunk.payload) > n:
        return Chunk(chunk.kind, chunk.payload[:n], chunk.columns, chunk.plain_dicts)
    return chunk


_ABSENT = object()


def _dict_row(d: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    """One dict row, tolerating missing keys (None) and non-dict items (all missing).

    Keys that are not ``str`` (``{0: 1.5}``) are read by their ``str`` form, the form
    the feature names take.
    """
    if not isinstance(d, Mapping):
        return (None,) * len(names)
    row = tuple(d.get(k, _ABSENT) for k in names)
    if not any(v is _ABSENT for v in row):
        return row
    if any(type(k) is not str for k in d):
        by_name = {str(k): v for k, v in d.items()}
        return tuple(by_name.get(k) for k in names)
    return tuple(None if v is _ABSENT else v for v in row)


def features_frame(
    inputs: Sequence[Any], schema: FeatureSchema, *, coded: bool = False
) -> FeatureFrame:
    """Vectorise the inputs of a batch of calls (one :class:`Chunk`-able input per call).

    ``coded``: categorical values of dict rows are coded with the schema's
    :class:`~modelmon.category_vocabulary.Vocabulary`, which grows: only one thread at a
    time may ask for it (the fold does, under its lock).
    """
    vocabulary = schema.vocabulary if coded else None
    chunks = [c if isinstance(c, Chunk) else input_chunk(c) for c in inputs]
    for chunk in chunks:
        if not schema.fixed or not schema._explicit_categorical:
            schema.learn(chunk)
        else:
            break
    names = schema.names or ()
    blocks = [_block(group, schema, vocabulary) for group in _group(chunks)]
    blocks = [b for b in blocks if b[0].shape[0]]
    excess = sum(schema.width_excess(c) for c in chunks)
    if not blocks:
        width = len(names)
        empty = np.zeros((0, width), dtype=np.float64)
        mask = np.zeros((0, width), dtype=bool)
        return FeatureFrame(names, empty, mask, mask, {}, excess)
    numeric = np.concatenate([b[0] for b in blocks]) if len(blocks) > 1 else blocks[0][0]
    missing = np.concatenate([b[1] for b in blocks]) if len(blocks) > 1 else blocks[0][1]
    invalid = np.concatenate([b[2] for b in blocks]) if len(blocks) > 1 else blocks[0][2]
    if len(blocks) == 1:  # its categorical columns as they are (coded ones stay coded)
        return FeatureFrame(names, numeric, missing, invalid, blocks[0][3], excess)
    categorical: dict[int, ObjArray] = {}
    for j in _categorical_columns(schema):
        parts = [b[3][j] for b in blocks]
        categorical[j] = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return FeatureFrame(names, numeric, missing, invalid, categorical, excess)


def _categorical_columns(schema: FeatureSchema) -> list[int]:
    return [j for j, n in enumerate(schema.names or ()) if n in schema.categorical]


def _group(chunks: list[Chunk]) -> Iterable[Chunk]:
    """Merge consecutive dict chunks so a run of single-row calls is one conversion."""
    if len(chunks) == 1:  # the monitor's fast path hands one chunk for the whole batch
        if chunks[0].kind != "empty":
            yield chunks[0]
        return
    pending: list[Any] = []
    for chunk in chunks:
        if chunk.kind == "dicts":
            pending.extend(chunk.payload)
            continue
        if pending:
            yield Chunk("dicts", pending)
            pending = []
        if chunk.kind != "empty":
            yield chunk
    if pending:
        yield Chunk("dicts", pending)


Block = tuple[FloatArray, BoolArray, BoolArray, Mapping[int, ObjArray]]


def _block(chunk: Chunk, schema: FeatureSchema, vocabulary: Vocabulary | None = None) -> Block:
    width = len(schema.names or ())
    if width == 0:
        empty = np.zeros((chunk.n_rows, 0), dtype=bool)
        return np.zeros((chunk.n_rows, 0)), empty, empty, {}
    cat_cols = _categorical_columns(schema)
    if chunk.kind == "matrix" and not cat_cols:
        return _numeric_block(_fit_width(chunk, schema))
    if chunk.kind == "dicts" and not cat_cols:
        packed = pack_dicts(chunk.payload, schema._getter, width)
        if packed is not None:
            return _numeric_block(packed)
    if chunk.kind == "dicts" and cat_cols:
        mixed = _mixed_dicts(chunk.payload, schema.names or (), cat_cols, vocabulary)
        if mixed is not None:
            return mixed
    rows = schema._rows(chunk) if chunk.kind != "matrix" else chunk.payload.tolist()
    if not cat_cols and rows:
        arr = _try_numeric(rows, width)
        if arr is not None and arr.ndim == 2 and arr.shape[1] == width:
            return _numeric_block(arr)
    if chunk.kind == "dicts" and rows:
        try:
            columns = list(zip(*rows, strict=True))
        except (TypeError, ValueError):  # ragged rows: the exact per-value path
            columns = []
        if len(columns) == width:
            return _columnar_block(columns, len(rows), cat_cols)
    return _object_block(rows, width, cat_cols)


def _mixed_dicts(
    dicts: Sequence[Any],
    names: tuple[str, ...],
    cat_cols: list[int],
    vocabulary: Vocabulary | None = None,
) -> Block | None:
    """Dicts with categorical features in C-level passes (see :mod:`._extract_dicts`),
    or None for the exact per-value path."""
    split = split_of(names, tuple(cat_cols))
    read = read_dicts(dicts, split, MAX_CATEGORY_CHARS, vocabulary)
    if read is None:
        return None
    packed, block, cat_missing = read
    n, width = len(dicts), len(names)
    values = np.full((n, width), np.nan)
    missing = np.zeros((n, width), dtype=bool)
    invalid = np.zeros((n, width), dtype=bool)
    if packed is not None:
        num = list(split.numeric)
        values[:, num], missing[:, num], invalid[:, num], _ = _numeric_block(packed)
    if cat_missing is not None:
        missing[:, cat_cols] = cat_missing
    if block.dtype != object and vocabulary is not None:
        return values, missing, invalid, CodedColumns(block, cat_cols, vocabulary)
    return values, missing, invalid, {j: block[:, c] for c, j in enumerate(cat_cols)}


_PLAIN_NUMBERS = frozenset({float, int, bool, np.float64})


def _columnar_block(columns: Sequence[Sequence[Any]], n: int, cat_cols: list[int]) -> Block:
    """Full columns, one by one: each in one C-level pass when its values are all plain
    numbers (numeric) or all ``str`` (categorical), else by the exact per-value rules
    of :func:`_object_block`."""
    width = len(columns)
    values = np.full((n, width), np.nan)
    missing = np.zeros((n, width), dtype=bool)
    invalid = np.zeros((n, width), dtype=bool)
    cats: dict[int, ObjArray] = {}
    wanted = set(cat_cols)
    for j, col in enumerate(columns):
        types = set(map(type, col))
        if j in wanted:
            out = np.empty(n, dtype=object)
            if types == {str} and max(map(len, col)) <= MAX_CATEGORY_CHARS:
                out[:] = col
            else:
                for i, v in enumerate(col):
                    _put_category(v, out, missing, i, j)
            cats[j] = out
        elif types <= _PLAIN_NUMBERS:
            _number_column(col, values, missing, invalid, j)
        else:
            for i, v in enumerate(col):
                _put_number(v, values, missing, invalid, i, j)
    return values, missing, invalid, cats


def _number_column(
    col: Sequence[Any], values: FloatArray, missing: BoolArray, invalid: BoolArray, j: int
) -> None:
    try:
        arr = np.array(col, dtype=np.float64)
    except OverflowError:  # an int beyond float range: the per-value rules mark it invalid
        for i, v in enumerate(col):
            _put_number(v, values, missing, invalid, i, j)
        return
    nan = np.isnan(arr)
    inf = np.isinf(arr)
    missing[:, j] = nan
    invalid[:, j] = inf
    arr[inf] = np.nan
    values[:, j] = arr


def _try_numeric(rows: Sequence[Sequence[Any]], width: int) -> np.ndarray | None:
    """Rows as one numeric matrix when every value is a plain number, else None.

    ``struct`` packing is both the fastest conversion of Python floats and a strict
    one: a str (even "1.5"), None, bytes or a row of the wrong length raises, and the
    batch goes to the exact slow path instead.
    """
    try:
        packed = b"".join(itertools.starmap(_packer(width).pack, rows))
    except (struct.error, TypeError, OverflowError):
        return _discover(rows)
    return np.frombuffer(bytearray(packed), dtype=np.float64).reshape(len(rows), width)


def _discover(rows: Sequence[Sequence[Any]]) -> np.ndarray | None:
    try:
        arr = np.array(rows)
    except (ValueError, TypeError):  # ragged rows
        return None
    return arr if arr.dtype.kind in "fiub" else None


def _fit_width(chunk: Chunk, schema: FeatureSchema) -> np.ndarray:
    a: np.ndarray = chunk.payload
    names = schema.names or ()
    if chunk.columns is not None and chunk.columns != names:
        index = {c: i for i, c in enumerate(chunk.columns)}
        out = np.full((a.shape[0], len(names)), np.nan)
        for j, n in enumerate(names):
            if n in index:
                out[:, j] = a[:, index[n]]
        return out
    if a.shape[1] >= len(names):
        return a[:, : len(names)]
    pad = np.full((a.shape[0], len(names) - a.shape[1]), np.nan)
    return np.hstack([a.astype(np.float64, copy=False), pad])


def _numeric_block(arr: np.ndarray) -> Block:
    values = arr.astype(np.float64, copy=False)
    missing = np.isnan(values)
    invalid = np.isinf(values)
    if invalid.any():
        values = values.copy()
        values[invalid] = np.nan
    return values, missing, invalid, {}


def _object_block(rows: Sequence[Sequence[Any]], width: int, cat_cols: list[int]) -> Block:
    """The slow path: mixed types, ragged rows, categorical features. Never raises."""
    n = len(rows)
    values = np.full((n, width), np.nan)
    missing = np.zeros((n, width), dtype=bool)
    invalid = np.zeros((n, width), dtype=bool)
    cats = {j: np.empty(n, dtype=object) for j in cat_cols}
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, np.ndarray)):
            row = (row,)
        for j in range(width):
            v = row[j] if j < len(row) else None
            if j in cats:
                _put_category(v, cats[j], missing, i, j)
            else:
                _put_number(v, values, missing, invalid, i, j)
    return values, missing, invalid, cats


def _put_category(v: Any, col: ObjArray, missing: BoolArray, i: int, j: int) -> None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        missing[i, j] = True
        col[i] = None
        return
    try:
        col[i] = bounded_category(v)
    except Exception:  # a value whose str() fails: this value is lost, not the fold
        missing[i, j] = True
        col[i] = None


def bounded_category(v: Any) -> str:
    """``str(v)``, cut to :data:`MAX_CATEGORY_CHARS` with a hash suffix when longer.

    >>> bounded_category("red")
    'red'
    >>> len(bounded_category("x" * 1_000_000)) == MAX_CATEGORY_CHARS
    True
    """
    text = v if type(v) is str else str(v)
    if len(text) <= MAX_CATEGORY_CHARS:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{text[:_CATEGORY_PREFIX_CHARS]}~{digest}"


def _put_number(
    v: Any, values: FloatArray, missing: BoolArray, invalid: BoolArray, i: int, j: int
) -> None:
    if v is None:
        missing[i, j] = True
        return
    if isinstance(v, (numbers.Real, np.number)):
        try:
            f = float(v)
        except Exception:  # any failure of a value's __float__ costs that value only
            invalid[i, j] = True
            return
        if math.isnan(f):
            missing[i, j] = True
        elif math.isinf(f):
            invalid[i, j] = True
        else:
            values[i, j] = f
        return
    invalid[i, j] = True
