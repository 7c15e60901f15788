"""Columnar conversion between Python data and the C ABI's attribute columns.

Writing: `to_columns(attributes, n)` turns the `attributes=` argument (a dict of
sequences or arrays, a polars DataFrame, a pyarrow Table or RecordBatch) into
one `Column` per attribute, holding numpy buffers in the layout of
`pomai_column_t` (Arrow's layout: a validity bitmap, a value buffer, int64
offsets). `metadata_to_buffers(metadata, n)` does the same for `metadata=`:
n + 1 int64 offsets and one byte buffer. Neither runs Python code per row:
numpy and pyarrow do the per-row work in C (a Python list goes through
`pyarrow.array` once), and Python loops only over columns (and arrow chunks),
or over rows after a conversion has failed, to name the offending row in the
error.

Reading: `batches_to_arrow`, `batches_to_polars` and `batches_to_numpy` turn a
scan's pyarrow RecordBatchReader (or any iterable of RecordBatches) into a
pyarrow Table, a polars DataFrame or a dict of numpy arrays.

pyarrow is imported only when needed: numpy arrays of numbers and bools, and
metadata given as a sequence of bytes, convert without it; Python lists of
attribute values, strings, tags and the reading helpers need it (polars only
for `batches_to_polars` and polars inputs).

Types (docs/FILTERS.md, "Attributes"):
  numpy / arrow signed and unsigned integers -> int64 (a uint64 above
    2**63 - 1 is an error); floats -> float64 (NaN is an error: a missing value
    is a null, given as None, a pyarrow / polars null or a numpy masked value);
  bool -> bool; a Python list mixing ints and floats -> float64;
  str, numpy 'U' and StringDType, arrow string / large_string / string_view, polars String,
    dictionary-encoded strings and polars Categorical / Enum -> string;
    bytes, numpy 'S', arrow binary types -> string when they are valid UTF-8;
  lists of strings (Python lists, arrow list / large_list / fixed_size_list /
    list_view of strings, polars List(String)) -> tags.
  Datetimes, dates, times and durations are refused (the filter language has
  no such literals): convert them to int64 in the unit the filters will use,
  e.g. `arr.astype("datetime64[s]").astype(np.int64)` for epoch seconds.
"""

from __future__ import annotations

import itertools
import operator
import sys
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__all__ = [
    "INT64", "FLOAT64", "BOOL", "STRING", "TAGS", "TYPE_NAMES",
    "Column", "to_columns", "metadata_to_buffers",
    "batches_to_arrow", "batches_to_polars", "batches_to_numpy",
]

# The C ABI's POMAI_ATTR_* type numbers.
INT64 = 1
FLOAT64 = 2
BOOL = 3
STRING = 4
TAGS = 5
TYPE_NAMES = {INT64: "int64", FLOAT64: "float64", BOOL: "bool", STRING: "string", TAGS: "tags"}

_MAX_NAME_BYTES = 255
_INT64_MAX = 2**63 - 1
_U32_MAX = 2**32 - 1  # the most bytes one row's metadata may have

_DATETIME_HINT = ("attributes have no datetime type; convert it to int64 in the unit your filters "
                  "will use, e.g. arr.astype('datetime64[s]').astype(np.int64) for epoch seconds")


class Column:
    """One attribute column of a batch of `rows` rows, in pomai_column_t's layout.

    name: the column name as UTF-8 bytes (no NUL; the C side adds the terminator).
    type: INT64, FLOAT64, BOOL, STRING or TAGS.
    validity: None when every row has a value; else a uint8 array of
      ceil(rows / 8) bytes, Arrow's bitmap (bit i, LSB first, is 1 when row i
      has a value).
    values: INT64 int64 (rows,); FLOAT64 float64 (rows,), no NaN; BOOL uint8
      (rows,) of 0 / 1; STRING and TAGS uint8, the UTF-8 bytes of every string.
    offsets: STRING int64 (rows + 1,), byte offsets into values (row i is
      values[offsets[i]:offsets[i + 1]]); TAGS int64 (rows + 1,), offsets into
      the list of tags (row i holds tags offsets[i] .. offsets[i + 1] - 1);
      None for the other types.
    tag_offsets: TAGS int64 (tags + 1,), byte offsets into values (tag j is
      values[tag_offsets[j]:tag_offsets[j + 1]]); None for the other types.
    Offsets start at 0. A null row's slot holds 0, an empty string or no tags.
    Every array is C-contiguous; it may be a view of the caller's data (a numpy
    array or an arrow buffer), which the view keeps alive.
    """

    __slots__ = ("name", "type", "rows", "validity", "values", "offsets", "tag_offsets")

    def __init__(self, name: bytes, type: int, rows: int, validity: Optional[np.ndarray],
                 values: np.ndarray, offsets: Optional[np.ndarray] = None,
                 tag_offsets: Optional[np.ndarray] = None) -> None:
        self.name = name
        self.type = type
        self.rows = rows
        self.validity = validity
        self.values = values
        self.offsets = offsets
        self.tag_offsets = tag_offsets

    def __repr__(self) -> str:
        nulls = "no nulls" if self.validity is None else "with nulls"
        return f"Column({self.name.decode()!r}, {TYPE_NAMES[self.type]}, {self.rows} rows, {nulls})"


# ---- errors -------------------------------------------------------------


def _invalid(message: str) -> Exception:
    """The package's InvalidArgumentError (a ValueError). Imported here, not at
    the top: _api imports this module."""
    from ._api import InvalidArgumentError
    return InvalidArgumentError(message)


def _pyarrow(what: str) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError(f"{what} needs pyarrow: pip install 'pomai[arrow]'") from None
    return pyarrow


def _loaded(module: str) -> Any:
    """The module if something already imported it (an object of its types
    can only exist then), else None."""
    return sys.modules.get(module)


# ---- attributes ---------------------------------------------------------


def to_columns(attributes: Any, n: int) -> List[Column]:
    """The attribute columns of a batch of n rows.

    attributes: None (no columns); a dict mapping each column name (str) to n
      values (a numpy array, numpy masked array, list, tuple, pyarrow Array or
      ChunkedArray, or polars Series); a polars DataFrame; or a pyarrow Table
      or RecordBatch. In a list or tuple, None is a null. The types: see the
      module docstring.
    Returns one Column per column, in the input's order.
    Raises TypeError for a wrong kind of argument or an unsupported type
    (naming the column and the type), InvalidArgumentError (a ValueError) for
    a bad name (not 1..255 bytes of UTF-8 without NUL, "id", a duplicate), a
    column without n values (naming both lengths), NaN, a uint64 above
    2**63 - 1, invalid UTF-8 or a null tag (naming the column and the row).
    """
    if attributes is None:
        return []
    columns = []
    seen = set()
    for name, value in _named_inputs(attributes):
        encoded = _column_name(name)
        if encoded in seen:
            raise _invalid(f"attributes: column {name!r} is given twice")
        seen.add(encoded)
        columns.append(_column(name, encoded, value, n))
    return columns


def _named_inputs(attributes: Any) -> List[Tuple[Any, Any]]:
    if isinstance(attributes, Mapping):
        return list(attributes.items())
    pl = _loaded("polars")
    if pl is not None and isinstance(attributes, pl.DataFrame):
        return [(s.name, s) for s in attributes.get_columns()]
    pa = _loaded("pyarrow")
    if pa is not None and isinstance(attributes, (pa.Table, pa.RecordBatch)):
        return list(zip(attributes.schema.names, attributes.columns))
    raise TypeError("attributes must be a dict of column name -> values, a polars DataFrame or a "
                    f"pyarrow Table or RecordBatch, got {type(attributes).__name__}")


def _column_name(name: Any) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"attributes: a column name must be a str, got {type(name).__name__} {name!r}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _invalid(f"attributes: column name {name!r} is not valid UTF-8: {e.reason}") from None
    if not encoded:
        raise _invalid("attributes: a column name is empty; names are 1 to 255 bytes")
    if len(encoded) > _MAX_NAME_BYTES:
        raise _invalid(f"attributes: column name {name[:40]!r}... has {len(encoded)} bytes; "
                       f"at most {_MAX_NAME_BYTES}")
    if b"\0" in encoded:
        raise _invalid(f"attributes: column name {name!r} contains a NUL character")
    if name == "id":
        raise _invalid("attributes: 'id' is reserved (it names the row id in filters); "
                       "choose another column name")
    return encoded


def _column(name: str, encoded: bytes, value: Any, n: int) -> Column:
    where = f"attributes[{name!r}]"
    pa = _loaded("pyarrow")
    if pa is not None and isinstance(value, (pa.Array, pa.ChunkedArray)):
        return _from_arrow(where, encoded, value, n)
    pl = _loaded("polars")
    if pl is not None and isinstance(value, pl.Series):
        if value.dtype == pl.Object:
            raise TypeError(f"{where} is a polars Series of Object (Python objects); give it a "
                            "typed dtype such as pl.Int64, pl.String or pl.List(pl.String)")
        return _from_arrow(where, encoded, value.to_arrow(), n)
    if isinstance(value, np.ndarray):
        return _from_numpy(where, encoded, value, n)
    if isinstance(value, (list, tuple)):
        _check_length(where, len(value), n)
        pa = _pyarrow(f"{where} (a {type(value).__name__})")
        try:
            arrow = pa.array(value)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise _sequence_error(where, value, e) from None
        return _from_arrow(where, encoded, arrow, n)
    raise TypeError(f"{where} must be a numpy array, list, tuple, pyarrow Array or ChunkedArray or "
                    f"polars Series of {n} values, got {type(value).__name__}")


def _check_length(where: str, length: int, n: int) -> None:
    if length != n:
        raise _invalid(f"len(ids) = {n} but len({where}) = {length}")


def _from_numpy(where: str, name: bytes, arr: np.ndarray, n: int) -> Column:
    if arr.ndim != 1:
        raise _invalid(f"{where} must be 1-D, got shape {arr.shape}")
    _check_length(where, arr.shape[0], n)
    valid = None
    if isinstance(arr, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(arr)
        valid = ~mask if mask.any() else None
        arr = arr.data
    kind = arr.dtype.kind
    if kind in "biuf":
        return _numeric(where, name, arr, valid)
    if kind in "Mm":
        raise TypeError(f"{where} is a numpy {arr.dtype} array; {_DATETIME_HINT}")
    if kind in "USOT":  # T: numpy 2's StringDType
        pa = _pyarrow(f"{where} (a numpy {arr.dtype} array)")
        try:
            arrow = pa.array(arr, mask=None if valid is None else ~valid)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise _sequence_error(where, arr, e) from None
        return _from_arrow(where, name, arrow, n)
    raise TypeError(f"{where} has the unsupported dtype {arr.dtype}; attributes are int64, float64, "
                    "bool, string or tags (lists of strings)")


def _numeric(where: str, name: bytes, values: np.ndarray, valid: Optional[np.ndarray]) -> Column:
    """values: a 1-D numpy array of bools, integers or floats; valid: None or
    a bool array (True = the row has a value). Slots of null rows may hold
    anything (NaN too)."""
    kind = values.dtype.kind
    if kind == "b":
        out = np.ascontiguousarray(values).view(np.uint8)
        type_code = BOOL
    elif kind in "iu":
        if kind == "u" and values.dtype.itemsize == 8:
            over = values > np.uint64(_INT64_MAX)
            if valid is not None:
                over &= valid
            if over.any():
                row = int(np.argmax(over))
                raise _invalid(f"{where}[{row}] = {int(values[row])} does not fit int64 "
                               f"(at most {_INT64_MAX})")
        out = np.ascontiguousarray(values, dtype=np.int64) if kind == "i" else values.astype(np.int64)
        type_code = INT64
    else:
        out = np.ascontiguousarray(values, dtype=np.float64)
        nan = np.isnan(out)
        if valid is not None:
            nan &= valid
        if nan.any():
            row = int(np.argmax(nan))
            raise _invalid(f"{where}[{row}] is NaN; NaN is refused (give None or a null for a missing value)")
        type_code = FLOAT64
    if valid is not None:
        out = np.where(valid, out, out.dtype.type(0))
    return Column(name, type_code, out.shape[0], _bitmap(valid), out)


def _bitmap(valid: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Arrow's validity bitmap of a bool array, or None when every row is valid."""
    if valid is None or valid.all():
        return None
    return np.packbits(valid, bitorder="little")


# Arrow side. Every arrow input is first cast to one of a few canonical types
# (int64 / float64 by way of numpy, bool, large_string, large_list<large_string>)
# and combined into one chunk; then its buffers are read as numpy arrays.


def _from_arrow(where: str, name: bytes, arr: Any, n: int) -> Column:
    pa = _pyarrow(where)
    import pyarrow.compute as pc

    _check_length(where, len(arr), n)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)  # decodes, chunk by chunk
        t = arr.type
    if pa.types.is_null(t):
        raise TypeError(f"{where}: every value is null, so its type is unknown; give a typed "
                        "array (e.g. pyarrow.nulls(n, pyarrow.int64()))")
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        arr = _one_chunk(arr)
        return _numeric(where, name, _primitive_values(pa, arr), _valid(arr))
    if _is_text(pa, t):
        arr = _one_chunk(_cast(where, pc, arr, pa.large_string()))
        valid = _valid(arr)
        offsets, values = _string_buffers(arr)
        if valid is not None:
            offsets, keep = _empty_nulls(offsets, valid)
            if keep is not None:
                values = values[keep]
        return Column(name, STRING, n, _bitmap(valid), values, offsets)
    if _is_list(pa, t) and (_is_text(pa, t.value_type) or pa.types.is_null(t.value_type)
                            or (pa.types.is_dictionary(t.value_type) and _is_text(pa, t.value_type.value_type))):
        if _has_type(pa, "is_list_view", t) or _has_type(pa, "is_large_list_view", t):
            chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
            arr = pa.chunked_array([_list_view_as_list(pa, c) for c in chunks], type=pa.large_list(t.value_type))
        arr = _one_chunk(_cast(where, pc, arr, pa.large_list(pa.large_string())))
        return _tags(where, name, arr, n)
    if pa.types.is_temporal(t):
        raise TypeError(f"{where} is {t}; {_DATETIME_HINT}")
    if _is_list(pa, t):
        raise TypeError(f"{where} is {t}; tags are lists of strings")
    raise TypeError(f"{where} has the unsupported type {t}; attributes are int64, float64, bool, "
                    "string or tags (lists of strings)")


def _list_view_as_list(pa: Any, arr: Any) -> Any:
    """A list_view Array as a large_list Array of the same rows. Done here, not
    by pyarrow's cast, which gives wrong offsets (pyarrow 26: the last row of
    [['a'], ['']] loses its tag)."""
    valid = _valid(arr)
    starts = np.asarray(arr.offsets, dtype=np.int64)  # .offsets and .sizes account for arr.offset
    sizes = np.asarray(arr.sizes, dtype=np.int64)
    if valid is not None:
        sizes = np.where(valid, sizes, 0)
    offsets = _offsets_of(sizes)
    index = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1], dtype=np.int64)
    return pa.LargeListArray.from_arrays(pa.array(offsets), arr.values.take(pa.array(index)),
                                         mask=None if valid is None else pa.array(~valid))


def _is_text(pa: Any, t: Any) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or _has_type(pa, "is_string_view", t)
            or _has_type(pa, "is_binary_view", t))


def _is_list(pa: Any, t: Any) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or _has_type(pa, "is_list_view", t) or _has_type(pa, "is_large_list_view", t))


def _has_type(pa: Any, predicate: str, t: Any) -> bool:
    """pa.types.<predicate>(t), False on a pyarrow too old to have that type."""
    check = getattr(pa.types, predicate, None)
    return check is not None and check(t)


def _cast(where: str, pc: Any, arr: Any, target: Any) -> Any:
    """arr cast to target; binary data is checked to be UTF-8 on the way."""
    if arr.type == target:
        return arr
    try:
        return pc.cast(arr, target)
    except Exception as e:  # ArrowInvalid (invalid UTF-8), ArrowNotImplementedError (an old pyarrow)
        if "utf8" in str(e).lower():
            raise _invalid(f"{where}{_first_bad_utf8(arr)} is not valid UTF-8") from None
        raise TypeError(f"{where}: cannot convert {arr.type} to {target}: {e}") from None


def _first_bad_utf8(arr: Any) -> str:
    """'[row]' (or '[row] tag i') of the first invalid UTF-8 value; an error path,
    so it may loop over rows."""
    for row, v in enumerate(arr.to_pylist()):
        for i, s in enumerate(v if isinstance(v, list) else [v]):
            try:
                if s is not None:
                    s.decode("utf-8")
            except UnicodeDecodeError:
                return f"[{row}]" + (f" tag {i}" if isinstance(v, list) else "") + f" = {s[:40]!r}"
    return ""


def _one_chunk(arr: Any) -> Any:
    """A ChunkedArray as one Array (copied when it has several chunks)."""
    pa = sys.modules["pyarrow"]
    if not isinstance(arr, pa.ChunkedArray):
        return arr
    if arr.num_chunks == 1:
        return arr.chunk(0)
    if arr.num_chunks == 0:
        return pa.array([], type=arr.type)
    return arr.combine_chunks()


def _valid(arr: Any) -> Optional[np.ndarray]:
    """A bool array, True where arr has a value; None when it has no nulls."""
    if arr.null_count == 0:
        return None
    return _bits(arr.buffers()[0], arr.offset, len(arr)).astype(bool)


def _bits(buf: Any, offset: int, n: int) -> np.ndarray:
    """n bits of an Arrow bitmap from bit `offset`, as uint8 0 / 1."""
    first = offset // 8
    raw = np.frombuffer(buf, dtype=np.uint8)[first:(offset + n + 7) // 8]
    shift = offset - first * 8
    return np.unpackbits(raw, bitorder="little")[shift:shift + n]


def _primitive_values(pa: Any, arr: Any) -> np.ndarray:
    """The value buffer of a bool, integer or float arrow Array as a numpy
    array of its n values (a view; bools unpacked)."""
    n = len(arr)
    t = arr.type
    if pa.types.is_boolean(t):
        return _bits(arr.buffers()[1], arr.offset, n).view(np.bool_)
    return np.frombuffer(arr.buffers()[1], dtype=_primitive_dtype(t))[arr.offset:arr.offset + n]


def _string_buffers(arr: Any) -> Tuple[np.ndarray, np.ndarray]:
    """A large_string / large_binary Array's offsets (n + 1 int64, from 0) and
    its bytes (uint8), as views of its buffers where possible."""
    n = len(arr)
    buffers = arr.buffers()
    if buffers[1] is None:  # no rows
        return np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.uint8)
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.empty(0, dtype=np.uint8)
    start, end = int(offsets[0]), int(offsets[-1])
    return (offsets - start if start else offsets), data[start:end]


def _empty_nulls(offsets: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Offsets in which the null rows are empty, and a bool mask of the
    elements to keep (None when the null rows already were empty)."""
    lengths = np.diff(offsets)
    if not lengths[~valid].any():
        return offsets, None
    keep = np.repeat(valid, lengths)
    lengths = np.where(valid, lengths, 0)
    return _offsets_of(lengths), keep


def _offsets_of(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _tags(where: str, name: bytes, arr: Any, n: int) -> Column:
    """arr: a large_list<large_string> Array of n rows."""
    valid = _valid(arr)
    if n == 0 or arr.buffers()[1] is None:
        return Column(name, TAGS, n, None, np.empty(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64),
                      np.zeros(1, dtype=np.int64))
    list_offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    first, last = int(list_offsets[0]), int(list_offsets[-1])
    strings = arr.values.slice(first, last - first)  # .values ignores arr's own offset
    list_offsets = list_offsets - first if first else list_offsets
    keep_tags = None
    if valid is not None:
        list_offsets, keep_tags = _empty_nulls(list_offsets, valid)
    tag_valid = _valid(strings)
    if tag_valid is not None:
        bad = ~tag_valid if keep_tags is None else ~tag_valid & keep_tags
        if bad.any():
            tag = int(np.argmax(bad))
            # the row holding the tag, by the input's (not yet compacted) offsets
            starts = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n] - first
            row = int(np.searchsorted(starts, tag, side="right")) - 1
            raise _invalid(f"{where}[{row}] holds a null tag (tag {tag - int(starts[row])}); tags are strings")
    tag_offsets, values = _string_buffers(strings)
    if keep_tags is not None:
        lengths = np.diff(tag_offsets)
        values = values[np.repeat(keep_tags, lengths)]
        tag_offsets = _offsets_of(lengths[keep_tags])
    return Column(name, TAGS, n, _bitmap(valid), values, list_offsets, tag_offsets)


def _sequence_error(where: str, seq: Any, error: Exception) -> Exception:
    """The error for a list pyarrow could not convert: names the first two rows
    of different kinds (an error path: loops over rows)."""
    first: Optional[Tuple[int, str]] = None
    for row, v in enumerate(seq):
        kind = _kind(v)
        if kind is None:
            continue
        if kind == "int" and not isinstance(v, (bool, np.bool_)) and not -2**63 <= int(v) <= _INT64_MAX:
            return _invalid(f"{where}[{row}] = {v} does not fit int64 (from {-2**63} to {_INT64_MAX})")
        if first is None:
            first = (row, kind)
        elif kind != first[1] and {kind, first[1]} != {"int", "float"}:
            return TypeError(f"{where} mixes types: row {first[0]} is {first[1]} "
                             f"({type(seq[first[0]]).__name__}), row {row} is {kind} ({type(v).__name__})")
    return TypeError(f"{where}: cannot convert the values: {error}")


def _kind(v: Any) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if isinstance(v, (str, bytes)):
        return "string"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "a list"
    return type(v).__name__


# ---- metadata -----------------------------------------------------------


def metadata_to_buffers(metadata: Any, n: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The metadata of a batch of n rows as (offsets, data): offsets int64 of
    shape (n + 1,) from 0, data uint8 (row i's metadata is
    data[offsets[i]:offsets[i + 1]]); None when metadata is None.

    metadata: n items each bytes-like or None (no metadata, stored as empty),
      as a list, tuple, other iterable or numpy object array; or a pyarrow
      binary / large_binary / binary_view Array or ChunkedArray, or a polars
      Binary Series (a null is no metadata).
    Raises TypeError for an item that is not bytes-like (naming the row and
    its type), InvalidArgumentError when there are not n items or an item has
    more than 2**32 - 1 bytes.
    """
    if metadata is None:
        return None
    pa = _loaded("pyarrow")
    pl = _loaded("polars")
    if pl is not None and isinstance(metadata, pl.Series):
        metadata = metadata.to_arrow()
    if pa is not None and isinstance(metadata, (pa.Array, pa.ChunkedArray)):
        offsets, data = _arrow_metadata(pa, metadata, n)
    else:
        offsets, data = _sequence_metadata(metadata, n)
    lengths = np.diff(offsets)
    if lengths.size and int(lengths.max()) > _U32_MAX:
        row = int(np.argmax(lengths > _U32_MAX))
        raise _invalid(f"metadata[{row}] has {int(lengths[row])} bytes; at most {_U32_MAX}")
    return offsets, data


def _arrow_metadata(pa: Any, arr: Any, n: int) -> Tuple[np.ndarray, np.ndarray]:
    import pyarrow.compute as pc

    _check_length("metadata", len(arr), n)
    t = arr.type
    if not (pa.types.is_binary(t) or pa.types.is_large_binary(t) or _has_type(pa, "is_binary_view", t)):
        raise TypeError(f"metadata is a pyarrow array of {t}; it must be binary (bytes per row)")
    arr = _one_chunk(pc.cast(arr, pa.large_binary()) if t != pa.large_binary() else arr)
    offsets, data = _string_buffers(arr)
    valid = _valid(arr)
    if valid is not None:
        offsets, keep = _empty_nulls(offsets, valid)
        if keep is not None:
            data = data[keep]
    return offsets, data


def _sequence_metadata(metadata: Any, n: int) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(metadata, (bytes, bytearray, memoryview, str)):
        raise TypeError("metadata must be a sequence with one bytes (or None) per row, "
                        f"got one {type(metadata).__name__}")
    if isinstance(metadata, np.ndarray) and (metadata.dtype != object or metadata.ndim != 1):
        raise TypeError(f"metadata as a numpy array must be 1-D of dtype object (bytes or None), "
                        f"got {metadata.dtype} of shape {metadata.shape}")
    try:
        seq = metadata if isinstance(metadata, list) else list(metadata)
    except TypeError:
        raise TypeError(f"metadata must be a sequence with one bytes (or None) per row, "
                        f"got {type(metadata).__name__}") from None
    _check_length("metadata", len(seq), n)
    # map/compress/join run their per-item loops in C.
    is_none = np.fromiter(map(operator.is_, seq, itertools.repeat(None)), dtype=bool, count=n)
    present = list(itertools.compress(seq, ~is_none)) if is_none.any() else seq
    try:
        data = b"".join(present)
        lengths = np.zeros(n, dtype=np.int64)
        lengths[~is_none] = np.fromiter(map(len, present), dtype=np.int64, count=len(present))
    except TypeError:
        raise _bad_metadata_item(seq) from None
    if int(lengths.sum()) != len(data):  # an item whose len() is not its byte count
        raise _bad_metadata_item(seq)
    return _offsets_of(lengths), np.frombuffer(data, dtype=np.uint8)


def _bad_metadata_item(seq: List[Any]) -> TypeError:
    """Names the first item that is not a flat byte buffer (an error path)."""
    for row, m in enumerate(seq):
        if m is None:
            continue
        if isinstance(m, str) or not isinstance(m, (bytes, bytearray, memoryview)):
            return TypeError(f"metadata[{row}] must be bytes or None, got {type(m).__name__}")
        if isinstance(m, memoryview) and (m.ndim > 1 or m.itemsize != 1):
            return TypeError(f"metadata[{row}] is a memoryview of format {m.format!r} and shape "
                             f"{m.shape}; give bytes (e.g. m.tobytes())")
    return TypeError("metadata items must be bytes or None")


# ---- reading: a scan's record batches -----------------------------------


def _batches(batches: Any, schema: Any) -> Tuple[List[Any], Any]:
    pa = _pyarrow("reading a scan")
    if isinstance(batches, pa.RecordBatchReader):
        return list(batches), batches.schema
    if isinstance(batches, pa.RecordBatch):
        return [batches], batches.schema
    listed = list(batches)
    if schema is None:
        if not listed:
            raise ValueError("no record batches and no schema: pass schema= for an empty result")
        schema = listed[0].schema
    return listed, schema


def batches_to_arrow(batches: Any, schema: Any = None) -> Any:
    """A pyarrow Table of every batch of `batches` (a pyarrow RecordBatchReader,
    one RecordBatch or an iterable of RecordBatches, consumed); `schema` gives
    the columns of an empty iterable. The batches' buffers are shared, not copied."""
    pa = _pyarrow("to_arrow()")
    listed, schema = _batches(batches, schema)
    return pa.Table.from_batches(listed, schema=schema)


def batches_to_polars(batches: Any, schema: Any = None) -> Any:
    """A polars DataFrame of every batch (see batches_to_arrow): uint64 ids,
    fixed-size lists (vectors) as polars Array columns, tags as List(String)."""
    try:
        import polars
    except ImportError:
        raise ImportError("to_polars() needs polars: pip install 'pomai[polars]'") from None
    return polars.from_arrow(batches_to_arrow(batches, schema), rechunk=False)


def batches_to_numpy(batches: Any, schema: Any = None) -> Dict[str, Any]:
    """Every batch (see batches_to_arrow) as a dict of column name -> numpy array
    of the rows: integers, floats and bools as their numpy dtype (a uint64
    `id` column as uint64); a fixed-size list of numbers (the vectors) as a
    2-D array (rows, size) of its value dtype, a view of the arrow buffer when
    the result is one batch; a numeric or bool column with nulls as a numpy
    masked array (masked = null); strings and binary as object arrays of str /
    bytes (None for null); tags as an object array of numpy object arrays of
    str (None for null)."""
    table = batches_to_arrow(batches, schema)
    return {name: _column_to_numpy(name, column) for name, column in zip(table.column_names, table.columns)}


def _column_to_numpy(name: str, column: Any) -> Any:
    pa = sys.modules["pyarrow"]
    t = column.type
    if pa.types.is_fixed_size_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        return _matrix(name, column)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        parts = [(_primitive_values(pa, c), _valid(c)) for c in column.chunks]
        if not parts:
            return np.empty(0, dtype=_primitive_dtype(t))
        values = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        if all(p[1] is None for p in parts):
            return values
        valid = np.concatenate([np.ones(len(p[0]), dtype=bool) if p[1] is None else p[1] for p in parts])
        return np.ma.MaskedArray(values, mask=~valid)
    return column.to_numpy()  # a copy: object arrays of str, bytes or lists; None for null


def _matrix(name: str, column: Any) -> np.ndarray:
    """A fixed_size_list<number>[size] ChunkedArray as a (rows, size) array."""
    pa = sys.modules["pyarrow"]
    size = column.type.list_size
    parts = []
    for chunk in column.chunks:
        if chunk.null_count:
            raise ValueError(f"column {name!r} has {chunk.null_count} null rows; a vector column has none")
        child = chunk.values  # all of the child, ignoring chunk.offset
        flat = _primitive_values(pa, child.slice(chunk.offset * size, len(chunk) * size))
        if _valid(child.slice(chunk.offset * size, len(chunk) * size)) is not None:
            raise ValueError(f"column {name!r} has null elements in its vectors")
        parts.append(flat.reshape(len(chunk), size))
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.empty((0, size), dtype=_primitive_dtype(column.type.value_type))
    return np.concatenate(parts)


def _primitive_dtype(t: Any) -> np.dtype:
    pa = sys.modules["pyarrow"]
    if pa.types.is_boolean(t):
        return np.dtype(np.bool_)
    kind = "f" if pa.types.is_floating(t) else ("u" if pa.types.is_unsigned_integer(t) else "i")
    return np.dtype(f"{kind}{t.bit_width // 8}")
