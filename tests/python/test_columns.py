"""pomaidb._columns: attributes and metadata to pomai_column_t buffers, and a
scan's record batches to pyarrow / polars / numpy.

Every conversion is checked by decoding the buffers back into Python values
(`decode`, which also checks the layout the C ABI relies on) and comparing
them with what went in.
"""

from __future__ import annotations

import datetime
import math
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")

from pomaidb import InvalidArgumentError  # noqa: E402
from pomaidb._columns import (  # noqa: E402
    BOOL, FLOAT64, INT64, STRING, TAGS, Column, batches_to_arrow, batches_to_numpy,
    batches_to_polars, metadata_to_buffers, to_columns,
)

# ---- decoding the buffers back ---------------------------------------------


def decode(col: Column) -> List[Any]:
    """The rows of a Column as Python values (None = null), after checking the
    layout: dtypes, contiguity, bitmap size, offsets from 0 and ending at their
    buffer's end, null slots holding 0 / "" / no tags."""
    n = col.rows
    arrays = [a for a in (col.validity, col.values, col.offsets, col.tag_offsets) if a is not None]
    assert all(a.flags.c_contiguous and a.ndim == 1 for a in arrays)
    if col.validity is None:
        valid = np.ones(n, dtype=bool)
    else:
        assert col.validity.dtype == np.uint8 and col.validity.shape == ((n + 7) // 8,)
        valid = np.unpackbits(col.validity, bitorder="little")[:n].astype(bool)
        assert not valid.all(), "a validity bitmap without a null should be None"
    if col.type in (INT64, FLOAT64, BOOL):
        assert col.offsets is None and col.tag_offsets is None
        assert col.values.dtype == {INT64: np.int64, FLOAT64: np.float64, BOOL: np.uint8}[col.type]
        assert col.values.shape == (n,)
        assert (col.values[~valid] == 0).all()
        if col.type == BOOL:
            assert set(np.unique(col.values)) <= {0, 1}
            values: List[Any] = [bool(v) for v in col.values]
        else:
            values = col.values.tolist()
            if col.type == FLOAT64:
                assert not np.isnan(col.values).any()
    else:
        assert col.values.dtype == np.uint8
        offsets = col.offsets
        assert offsets is not None and offsets.dtype == np.int64 and offsets.shape == (n + 1,)
        assert offsets[0] == 0 and (np.diff(offsets) >= 0).all()
        assert (np.diff(offsets)[~valid] == 0).all()
        data = col.values.tobytes()
        if col.type == STRING:
            assert col.tag_offsets is None and offsets[-1] == len(data)
            values = [data[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
        else:
            tag_offsets = col.tag_offsets
            assert tag_offsets is not None and tag_offsets.dtype == np.int64
            assert tag_offsets.shape == (offsets[-1] + 1,)
            assert tag_offsets[0] == 0 and (np.diff(tag_offsets) >= 0).all() and tag_offsets[-1] == len(data)
            tags = [data[tag_offsets[j]:tag_offsets[j + 1]].decode("utf-8") for j in range(len(tag_offsets) - 1)]
            values = [tags[offsets[i]:offsets[i + 1]] for i in range(n)]
    return [v if ok else None for v, ok in zip(values, valid)]


def only(attributes: Any, n: int) -> Column:
    cols = to_columns(attributes, n)
    assert len(cols) == 1
    return cols[0]


# ---- the input forms --------------------------------------------------------

ARROW_TYPE = {INT64: pa.int64(), FLOAT64: pa.float64(), BOOL: pa.bool_(), STRING: pa.string(),
              TAGS: pa.list_(pa.string())}
POLARS_TYPE = {INT64: pl.Int64, FLOAT64: pl.Float64, BOOL: pl.Boolean, STRING: pl.String,
               TAGS: pl.List(pl.String)}
NUMPY_TYPE = {INT64: np.int64, FLOAT64: np.float64, BOOL: np.bool_}


def object_array(vals: List[Any]) -> np.ndarray:
    out = np.empty(len(vals), dtype=object)
    for i, v in enumerate(vals):  # item by item: numpy would make equal-length lists 2-D
        out[i] = v
    return out


def list_of_dictionary(vals: List[Any]) -> Any:
    """vals as list<dictionary<int32, string>> (built, not cast: pyarrow < 13
    cannot cast strings to a dictionary)."""
    lists = pa.array(vals, type=pa.list_(pa.string()))
    tags = pa.array([s for x in vals if x is not None for s in x], type=pa.string())
    return pa.ListArray.from_arrays(lists.offsets, tags.dictionary_encode(), mask=lists.is_null())


def padded(vals: List[Any], t: int, arrow_type: Any = None) -> Any:
    """vals as an arrow array sliced out of a longer one (offset 3: not a byte boundary)."""
    pad = {INT64: [7, None, 9], FLOAT64: [1.5, None, 2.5], BOOL: [True, None, True],
           STRING: ["pad", None, "ding"], TAGS: [["p"], None, ["a", "d"]]}[t]
    return pa.array(pad + vals + pad[::-1], type=arrow_type or ARROW_TYPE[t]).slice(3, len(vals))


def chunked(vals: List[Any], t: int, arrow_type: Any = None) -> Any:
    k = len(vals) // 3
    parts = [vals[:k], vals[k:2 * k], vals[2 * k:]]
    return pa.chunked_array([padded(p, t, arrow_type) for p in parts], type=arrow_type or ARROW_TYPE[t])


def numpy_form(vals: List[Any], t: int) -> np.ndarray:
    """A plain array, or a masked array when there are nulls."""
    mask = np.array([v is None for v in vals], dtype=bool)
    data = np.array([0 if v is None else v for v in vals], dtype=NUMPY_TYPE[t])
    return np.ma.MaskedArray(data, mask=mask) if mask.any() else data


# (name, types it applies to, builder, whether the input must hold a non-null
# value for its type to be known)
FORMS: List[Any] = [
    ("list", (INT64, FLOAT64, BOOL, STRING, TAGS), lambda v, t: list(v), True),
    ("tuple", (INT64, FLOAT64, BOOL, STRING, TAGS), lambda v, t: tuple(v), True),
    ("numpy", (INT64, FLOAT64, BOOL), numpy_form, False),
    ("numpy object", (INT64, FLOAT64, BOOL, STRING, TAGS), lambda v, t: object_array(v), True),
    ("arrow", (INT64, FLOAT64, BOOL, STRING, TAGS), lambda v, t: pa.array(v, type=ARROW_TYPE[t]), False),
    ("arrow sliced", (INT64, FLOAT64, BOOL, STRING, TAGS), padded, False),
    ("arrow chunked", (INT64, FLOAT64, BOOL, STRING, TAGS), chunked, False),
    ("polars", (INT64, FLOAT64, BOOL, STRING, TAGS), lambda v, t: pl.Series(v, dtype=POLARS_TYPE[t]), False),
    ("arrow int32", (INT64,), lambda v, t: padded([None if x is None else x % 2**31 for x in v], t, pa.int32()), False),
    ("arrow uint64", (INT64,), lambda v, t: chunked([None if x is None else x % 2**63 for x in v], t, pa.uint64()), False),
    ("numpy uint16", (INT64,), lambda v, t: np.array([x % 2**16 for x in v if x is not None], np.uint16), False),
    ("numpy int8", (INT64,), lambda v, t: np.array([x % 128 for x in v if x is not None], np.int8), False),
    ("numpy float32", (FLOAT64,), lambda v, t: np.array([x for x in v if x is not None], np.float32), False),
    ("arrow float32", (FLOAT64,), lambda v, t: padded(v, t, pa.float32()), False),
    ("arrow large_string", (STRING,), lambda v, t: padded(v, t, pa.large_string()), False),
    ("arrow string_view", (STRING,), lambda v, t: pa.array(v, type=pa.string_view()), False),
    ("arrow dictionary", (STRING,), lambda v, t: chunked(v, t).dictionary_encode(), False),
    ("polars categorical", (STRING,), lambda v, t: pl.Series(v, dtype=pl.Categorical), False),
    ("numpy str", (STRING,), lambda v, t: np.array([x for x in v if x is not None], dtype=str), False),
    ("numpy StringDType", (STRING,), lambda v, t: np.array(v, dtype=np.dtypes.StringDType(na_object=None)), False),
    ("bytes list", (STRING,), lambda v, t: [None if x is None else x.encode() for x in v], True),
    ("arrow binary", (STRING,), lambda v, t: padded([None if x is None else x.encode() for x in v], t,
                                                    pa.binary()), False),
    ("arrow large_list", (TAGS,), lambda v, t: padded(v, t, pa.large_list(pa.large_string())), False),
    ("arrow list_view", (TAGS,), lambda v, t: pa.array([["x"]] + v, type=pa.list_view(pa.string())).slice(1), False),
    ("arrow list_view chunked", (TAGS,), lambda v, t: pa.chunked_array(
        [pa.array(v[:2], type=pa.list_view(pa.string())), pa.array(v[2:], type=pa.list_view(pa.string()))]), False),
    ("arrow list<dictionary>", (TAGS,), lambda v, t: list_of_dictionary(v), False),
    ("arrow list<binary>", (TAGS,), lambda v, t: padded(
        [None if x is None else [s.encode() for s in x] for x in v], t, pa.list_(pa.binary())), False),
]

# Forms that drop nulls or narrow the values: what the conversion must give back.
EXPECTED: Dict[str, Callable[[List[Any]], List[Any]]] = {
    "arrow int32": lambda v: [None if x is None else x % 2**31 for x in v],
    "arrow uint64": lambda v: [None if x is None else x % 2**63 for x in v],
    "numpy uint16": lambda v: [x % 2**16 for x in v if x is not None],
    "numpy int8": lambda v: [x % 128 for x in v if x is not None],
    "numpy float32": lambda v: [float(np.float32(x)) for x in v if x is not None],
    "arrow float32": lambda v: [None if x is None else float(np.float32(x)) for x in v],
    "numpy str": lambda v: [x for x in v if x is not None],
}

# Text without surrogates (not encodable as UTF-8) and, for numpy's 'U'
# dtype, which drops trailing NULs, without NUL.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
VALUES = {
    INT64: st.integers(-2**63, 2**63 - 1),
    FLOAT64: st.floats(allow_nan=False, width=64),
    BOOL: st.booleans(),
    STRING: TEXT,
    TAGS: st.lists(TEXT, max_size=4),
}
if not hasattr(np, "dtypes") or not hasattr(np.dtypes, "StringDType"):  # numpy < 2
    FORMS = [f for f in FORMS if f[0] != "numpy StringDType"]
if not hasattr(pa, "list_view"):  # pyarrow < 16: no view types
    FORMS = [f for f in FORMS if "view" not in f[0]]
CASES = [(name, t, build, needs_value) for name, types, build, needs_value in FORMS for t in types]


@pytest.mark.parametrize("form,type_code,build,needs_value", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_form_of_every_type_round_trips(form: str, type_code: int, build: Any, needs_value: bool,
                                              data: st.DataObject) -> None:
    values = data.draw(st.lists(st.none() | VALUES[type_code], max_size=20), label="values")
    if type_code == FLOAT64 and "float32" in form:
        assume(all(x is None or math.isinf(x) or abs(x) < 3e38 for x in values))
    if form == "numpy str":
        assume(all(x is None or "\0" not in x for x in values))
    if needs_value:
        assume(any(x is not None for x in values))
    value = build(values, type_code)
    expected = EXPECTED.get(form, lambda v: v)(values)
    col = only({"c": value}, len(expected))
    assert col.name == b"c" and col.type == type_code and col.rows == len(expected)
    assert decode(col) == expected


@pytest.mark.parametrize("kind", ["polars DataFrame", "arrow Table", "arrow RecordBatch"])
def test_frames_give_one_column_per_column_in_order(kind: str) -> None:
    cols = {
        "n": [1, None, -3],
        "x": [0.5, float("inf"), None],
        "ok": [None, True, False],
        "lang": ["en", "", None],
        "tags": [["a", "b"], [], None],
    }
    if kind == "polars DataFrame":
        frame: Any = pl.DataFrame(cols)
    else:
        table = pa.table(cols)
        frame = table if kind == "arrow Table" else table.to_batches()[0]
    out = to_columns(frame, 3)
    assert [c.name for c in out] == [b"n", b"x", b"ok", b"lang", b"tags"]
    assert [c.type for c in out] == [INT64, FLOAT64, BOOL, STRING, TAGS]
    assert [decode(c) for c in out] == list(cols.values())


def test_none_and_empty_dict_give_no_columns() -> None:
    assert to_columns(None, 5) == []
    assert to_columns({}, 5) == []


def test_zero_rows_of_a_typed_array() -> None:
    for t, arrow_type in ARROW_TYPE.items():
        col = only({"c": pa.array([], type=arrow_type)}, 0)
        assert col.type == t and decode(col) == []


def test_empty_strings_and_empty_tag_lists_are_values_not_nulls() -> None:
    s = only({"s": ["", "", None]}, 3)
    assert s.validity is not None and decode(s) == ["", "", None]
    assert s.values.size == 0
    t = only({"t": [[], [""], None, []]}, 4)
    assert decode(t) == [[], [""], None, []]
    assert t.offsets.tolist() == [0, 0, 1, 1, 1] and t.tag_offsets.tolist() == [0, 0]


def test_unicode_is_stored_as_utf8() -> None:
    words = ["naïve", "日本語", "🙂", "a\0b", "Ω"]
    col = only({"w": words}, 5)
    assert col.values.tobytes() == "".join(words).encode("utf-8")
    assert decode(col) == words
    assert decode(only({"t": [words, words[::-1]]}, 2)) == [words, words[::-1]]


def test_names_are_utf8_bytes() -> None:
    assert only({"größe": [1]}, 1).name == "größe".encode("utf-8")
    assert only({"x" * 255: [1]}, 1).name == b"x" * 255
    assert only({"é" * 127: [1]}, 1).name == "é".encode() * 127  # 254 bytes


def test_nan_under_a_null_is_a_null() -> None:
    data = pa.py_buffer(np.array([1.0, np.nan, 3.0]).tobytes())
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    arrow = pa.Array.from_buffers(pa.float64(), 3, [validity, data], null_count=1)
    masked = np.ma.MaskedArray([1.0, np.nan, 3.0], mask=[False, True, False])
    polars = pl.Series([1.0, None, 3.0])
    for value in (arrow, masked, polars, [1.0, None, 3.0]):
        assert decode(only({"x": value}, 3)) == [1.0, None, 3.0]


def test_values_under_nulls_are_zeroed() -> None:
    """Arrow does not define what a null slot holds; the C ABI wants 0 / "" / no tags."""
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    ints = pa.Array.from_buffers(pa.int64(), 3, [validity, pa.py_buffer(np.array([5, 99, 7]).tobytes())])
    assert decode(only({"i": ints}, 3)) == [5, None, 7]
    assert only({"i": ints}, 3).values.tolist() == [5, 0, 7]
    strings = pa.Array.from_buffers(pa.string(), 3, [validity, pa.py_buffer(np.array([0, 2, 5, 6], np.int32).tobytes()),
                                                     pa.py_buffer(b"abHIDc")])
    col = only({"s": strings}, 3)
    assert decode(col) == ["ab", None, "c"] and col.values.tobytes() == b"abc"
    child = pa.array(["x", "hidden", "also", "y"])
    tags = pa.ListArray.from_arrays(pa.array([0, 1, 3, 4], pa.int32()), child,
                                    mask=pa.array([False, True, False]))
    col = only({"t": tags}, 3)
    assert decode(col) == [["x"], None, ["y"]] and col.values.tobytes() == b"xy"
    assert col.tag_offsets.tolist() == [0, 1, 2]


def test_a_null_tag_under_a_null_row_is_dropped() -> None:
    child = pa.array(["x", None, "y"])
    tags = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), child,
                                    mask=pa.array([False, True, False]))
    assert decode(only({"t": tags}, 3)) == [["x"], None, ["y"]]


def test_numeric_numpy_arrays_are_not_copied() -> None:
    ints = np.arange(10, dtype=np.int64)
    floats = np.linspace(0, 1, 10)
    bools = np.arange(10) % 2 == 0
    cols = to_columns({"i": ints, "f": floats, "b": bools}, 10)
    assert all(np.shares_memory(c.values, a) for c, a in zip(cols, (ints, floats, bools)))


def test_arrow_string_buffers_are_not_copied() -> None:
    arrow = pa.array(["ab", "cde", "f"], type=pa.large_string()).slice(1, 2)
    col = only({"s": arrow}, 2)
    data = arrow.buffers()[2]
    assert col.values.__array_interface__["data"][0] == data.address + 2
    assert decode(col) == ["cde", "f"]


def test_mixed_ints_and_floats_in_a_list_are_float64() -> None:
    col = only({"x": [1, 2.5, None]}, 3)
    assert col.type == FLOAT64 and decode(col) == [1.0, 2.5, None]


def test_bytes_and_str_in_one_list_are_both_strings() -> None:
    assert decode(only({"x": ["é", "é".encode()]}, 2)) == ["é", "é"]


def test_a_uint64_at_int64_max_is_kept() -> None:
    assert decode(only({"u": np.array([2**63 - 1, 0], np.uint64)}, 2)) == [2**63 - 1, 0]
    # above int64 max, but under a null: a null
    masked = np.ma.MaskedArray(np.array([2**64 - 1, 1], np.uint64), mask=[True, False])
    assert decode(only({"u": masked}, 2)) == [None, 1]


# ---- errors -----------------------------------------------------------------


def _struct() -> Any:
    return pa.array([{"a": 1}])


ERRORS = [
    # (id, attributes, n, exception, text in the message)
    ("not a dict", [1, 2], 2, TypeError, "must be a dict of column name -> values"),
    ("name not str", {1: [1]}, 1, TypeError, "column name must be a str, got int 1"),
    ("name bytes", {b"x": [1]}, 1, TypeError, "column name must be a str, got bytes b'x'"),
    ("name empty", {"": [1]}, 1, InvalidArgumentError, "column name is empty"),
    ("name id", {"id": [1]}, 1, InvalidArgumentError, "'id' is reserved"),
    ("name too long", {"x" * 256: [1]}, 1, InvalidArgumentError, "has 256 bytes; at most 255"),
    ("name too long in UTF-8", {"é" * 128: [1]}, 1, InvalidArgumentError, "has 256 bytes; at most 255"),
    ("name NUL", {"a\0b": [1]}, 1, InvalidArgumentError, "contains a NUL"),
    ("name surrogate", {"a\ud800": [1]}, 1, InvalidArgumentError, "is not valid UTF-8"),
    ("name duplicate", pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"]), 1,
     InvalidArgumentError, "column 'x' is given twice"),
    ("short list", {"x": [1, 2]}, 3, InvalidArgumentError, "len(ids) = 3 but len(attributes['x']) = 2"),
    ("long numpy", {"x": np.zeros(4)}, 3, InvalidArgumentError, "len(ids) = 3 but len(attributes['x']) = 4"),
    ("short arrow", {"x": pa.array([1])}, 3, InvalidArgumentError, "len(ids) = 3 but len(attributes['x']) = 1"),
    ("short polars", {"x": pl.Series([1])}, 3, InvalidArgumentError, "len(ids) = 3 but len(attributes['x']) = 1"),
    ("short frame", pl.DataFrame({"x": [1, 2]}), 3, InvalidArgumentError, "len(ids) = 3 but len(attributes['x']) = 2"),
    ("2-D numpy", {"x": np.zeros((2, 2))}, 2, InvalidArgumentError, "must be 1-D, got shape (2, 2)"),
    ("scalar", {"x": 5}, 1, TypeError, "attributes['x'] must be a numpy array, list"),
    ("str value", {"x": "abc"}, 3, TypeError, "got str"),
    ("complex numpy", {"x": np.zeros(2, np.complex128)}, 2, TypeError, "unsupported dtype complex128"),
    ("struct arrow", {"x": _struct()}, 1, TypeError, "unsupported type struct<a: int64>"),
    ("decimal arrow", {"x": pa.array([1], pa.decimal128(5, 2))}, 1, TypeError, "unsupported type decimal128(5, 2)"),
    ("list of ints", {"x": [[1, 2]]}, 1, TypeError, "is list<item: int64>; tags are lists of strings"),
    ("polars object", {"x": pl.Series([object()], dtype=pl.Object)}, 1, TypeError, "polars Series of Object (Python objects)"),
    ("all None", {"x": [None, None]}, 2, TypeError, "every value is null, so its type is unknown"),
    ("NaN list", {"x": [1.0, 2.0, float("nan")]}, 3, InvalidArgumentError, "attributes['x'][2] is NaN"),
    ("NaN numpy", {"x": np.array([np.nan, 1.0])}, 2, InvalidArgumentError, "attributes['x'][0] is NaN"),
    ("NaN float32", {"x": np.array([1, np.nan], np.float32)}, 2, InvalidArgumentError, "attributes['x'][1] is NaN"),
    ("NaN arrow", {"x": pa.array([None, np.nan])}, 2, InvalidArgumentError, "attributes['x'][1] is NaN"),
    ("NaN polars", {"x": pl.Series([None, 1.0, float("nan")])}, 3, InvalidArgumentError, "attributes['x'][2] is NaN"),
    ("NaN sliced", {"x": pa.array([np.nan, 1.0, np.nan]).slice(1)}, 2, InvalidArgumentError, "attributes['x'][1] is NaN"),
    ("mixed int str", {"x": [1, None, "a"]}, 3, TypeError, "mixes types: row 0 is int (int), row 2 is string (str)"),
    ("mixed bool int", {"x": [True, 1]}, 2, TypeError, "row 0 is bool (bool), row 1 is int (int)"),
    ("mixed int bool", {"x": [1, True]}, 2, TypeError, "row 0 is int (int), row 1 is bool (bool)"),
    ("mixed str list", {"x": ["a", ["b"]]}, 2, TypeError, "row 0 is string (str), row 1 is a list (list)"),
    ("mixed float str", {"x": [1.5, "x"]}, 2, TypeError, "row 0 is float (float), row 1 is string (str)"),
    ("mixed object array", {"x": np.array([1, "a"], dtype=object)}, 2, TypeError, "row 0 is int"),
    ("bad UTF-8 list", {"x": [b"ok", b"\xff\xfe"]}, 2, InvalidArgumentError,
     "attributes['x'][1] = b'\\xff\\xfe' is not valid UTF-8"),
    ("bad UTF-8 numpy", {"x": np.array([b"\xc3"])}, 1, InvalidArgumentError, "attributes['x'][0] = b'\\xc3'"),
    ("bad UTF-8 arrow", {"x": pa.array([b"a", b"b", b"\x80"], pa.binary())}, 3, InvalidArgumentError,
     "attributes['x'][2] = b'\\x80' is not valid UTF-8"),
    ("bad UTF-8 tag", {"x": [[b"a"], [b"b", b"\xff"]]}, 2, InvalidArgumentError,
     "attributes['x'][1] tag 1 = b'\\xff' is not valid UTF-8"),
    ("null tag", {"x": [["a"], ["b", None]]}, 2, InvalidArgumentError, "attributes['x'][1] holds a null tag (tag 1)"),
    ("null tag sliced", {"x": pa.array([["z"], ["a", None], ["b"]]).slice(1)}, 2, InvalidArgumentError,
     "attributes['x'][0] holds a null tag (tag 1)"),
    ("uint64 numpy", {"x": np.array([1, 2**63], np.uint64)}, 2, InvalidArgumentError,
     "attributes['x'][1] = 9223372036854775808 does not fit int64"),
    ("uint64 arrow", {"x": pa.array([2**64 - 1], pa.uint64())}, 1, InvalidArgumentError,
     "attributes['x'][0] = 18446744073709551615 does not fit int64"),
    ("uint64 polars", {"x": pl.Series([0, 2**63], dtype=pl.UInt64)}, 2, InvalidArgumentError, "[1] = 9223372036854775808"),
    ("int too big in list", {"x": [0, 2**63]}, 2, InvalidArgumentError, "attributes['x'][1] = 9223372036854775808"),
    ("int too small in list", {"x": [-2**63 - 1]}, 1, InvalidArgumentError, "does not fit int64"),
    ("datetime64", {"x": np.array(["2020-01-01"], "datetime64[D]")}, 1, TypeError, "numpy datetime64[D] array; attributes have no datetime type"),
    ("timedelta64", {"x": np.array([1], "timedelta64[s]")}, 1, TypeError, "no datetime type"),
    ("Python datetimes", {"x": [datetime.datetime(2020, 1, 1)]}, 1, TypeError, "is timestamp[us]; attributes have no datetime type"),
    ("arrow timestamp", {"x": pa.array([1], pa.timestamp("us"))}, 1, TypeError, "is timestamp[us]; attributes have no datetime type"),
    ("arrow date32", {"x": pa.array([1], pa.date32())}, 1, TypeError, "is date32[day]; attributes have no datetime type"),
    ("arrow duration", {"x": pa.array([1], pa.duration("s"))}, 1, TypeError, "no datetime type"),
    ("polars datetime", {"x": pl.Series([None], dtype=pl.Datetime)}, 1, TypeError, "no datetime type"),
    ("polars date", pl.DataFrame({"d": pl.Series([0], dtype=pl.Date)}), 1, TypeError, "attributes['d'] is date32"),
]


@pytest.mark.parametrize("attributes,n,exception,text", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_attributes_raise_naming_the_column_and_value(attributes: Any, n: int, exception: type, text: str) -> None:
    with pytest.raises(exception) as info:
        to_columns(attributes, n)
    assert text in str(info.value)


def test_value_errors_are_the_packages_invalid_argument_error() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        to_columns({"x": [float("nan")]}, 1)
    assert isinstance(info.value, ValueError) and info.value.code == 1


# ---- metadata ---------------------------------------------------------------


def decode_metadata(buffers: Any, n: int) -> List[bytes]:
    offsets, data = buffers
    assert offsets.dtype == np.int64 and offsets.shape == (n + 1,) and offsets[0] == 0
    assert (np.diff(offsets) >= 0).all() and offsets[-1] == data.size and data.dtype == np.uint8
    raw = data.tobytes()
    return [raw[offsets[i]:offsets[i + 1]] for i in range(n)]


METADATA_FORMS = [
    ("list", lambda v: list(v)),
    ("tuple", lambda v: tuple(v)),
    ("generator", lambda v: (x for x in v)),
    ("bytearray and memoryview", lambda v: [None if x is None else (bytearray(x) if i % 2 else memoryview(x))
                                            for i, x in enumerate(v)]),
    ("numpy object", lambda v: object_array(v)),
    ("arrow binary", lambda v: pa.array(v, pa.binary())),
    ("arrow large_binary sliced", lambda v: pa.array([b"pad"] + v + [b"end"], pa.large_binary()).slice(1, len(v))),
    ("arrow chunked", lambda v: pa.chunked_array([pa.array(v[:len(v) // 2], pa.binary()),
                                                  pa.array([b"x"] + v[len(v) // 2:], pa.binary()).slice(1)],
                                                 type=pa.binary())),
    ("arrow binary_view", lambda v: pa.array(v, pa.binary_view())),
    ("polars", lambda v: pl.Series(v, dtype=pl.Binary)),
]
if not hasattr(pa, "binary_view"):  # pyarrow < 16
    METADATA_FORMS = [f for f in METADATA_FORMS if "view" not in f[0]]


@pytest.mark.parametrize("form,build", METADATA_FORMS, ids=[f[0] for f in METADATA_FORMS])
@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.none() | st.binary(max_size=10), max_size=20))
def test_metadata_round_trips(form: str, build: Any, values: List[Optional[bytes]]) -> None:
    out = metadata_to_buffers(build(values), len(values))
    assert decode_metadata(out, len(values)) == [b"" if v is None else v for v in values]


def test_no_metadata_is_none() -> None:
    assert metadata_to_buffers(None, 3) is None


def test_metadata_under_an_arrow_null_is_dropped() -> None:
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    arr = pa.Array.from_buffers(pa.binary(), 3, [validity, pa.py_buffer(np.array([0, 1, 4, 5], np.int32).tobytes()),
                                                 pa.py_buffer(b"aXYZb")])
    offsets, data = metadata_to_buffers(arr, 3)
    assert offsets.tolist() == [0, 1, 1, 2] and data.tobytes() == b"ab"


METADATA_ERRORS = [
    ("one bytes", b"abc", 3, TypeError, "one bytes (or None) per row, got one bytes"),
    ("one str", "abc", 3, TypeError, "got one str"),
    ("not iterable", 5, 1, TypeError, "got int"),
    ("str item", [b"a", "b"], 2, TypeError, "metadata[1] must be bytes or None, got str"),
    ("int item", [None, b"a", 3], 3, TypeError, "metadata[2] must be bytes or None, got int"),
    ("2-D memoryview", [memoryview(np.zeros((2, 2), np.uint8))], 1, TypeError, "metadata[0] is a memoryview"),
    ("int32 memoryview", [memoryview(np.zeros(2, np.int32))], 1, TypeError, "format 'i'"),
    ("short", [b"a"], 2, InvalidArgumentError, "len(ids) = 2 but len(metadata) = 1"),
    ("long arrow", pa.array([b"a", b"b"]), 1, InvalidArgumentError, "len(ids) = 1 but len(metadata) = 2"),
    ("numpy bytes dtype", np.array([b"a"]), 1, TypeError, "1-D of dtype object"),
    ("arrow strings", pa.array(["a"]), 1, TypeError, "metadata is a pyarrow array of string; it must be binary"),
]


@pytest.mark.parametrize("metadata,n,exception,text", [e[1:] for e in METADATA_ERRORS],
                         ids=[e[0] for e in METADATA_ERRORS])
def test_bad_metadata_raises_naming_the_row(metadata: Any, n: int, exception: type, text: str) -> None:
    with pytest.raises(exception) as info:
        metadata_to_buffers(metadata, n)
    assert text in str(info.value)


# ---- without pyarrow ----------------------------------------------------------

NO_PYARROW = r'''
import sys
sys.modules["pyarrow"] = None  # `import pyarrow` now raises ImportError
sys.modules["polars"] = None
import numpy as np
from pomaidb._columns import metadata_to_buffers, to_columns

cols = to_columns({"n": np.arange(3), "x": np.ma.MaskedArray([1.0, 2.0, 3.0], mask=[0, 1, 0]),
                   "b": np.ones(3, bool)}, 3)
assert [(c.type, c.values.tolist()) for c in cols] == [(1, [0, 1, 2]), (2, [1.0, 0.0, 3.0]), (3, [1, 1, 1])]
offsets, data = metadata_to_buffers([b"a", None, b"bc"], 3)
assert offsets.tolist() == [0, 1, 1, 3] and data.tobytes() == b"abc"
for attributes in ({"s": ["a", "b", "c"]}, {"n": [1, 2, 3]}, {"s": np.array(["a", "b", "c"])}):
    try:
        to_columns(attributes, 3)
    except ImportError as e:
        assert "attributes['" in str(e) and "needs pyarrow: pip install 'pomai[arrow]'" in str(e), str(e)
    else:
        raise SystemExit(f"{attributes} converted without pyarrow")
print("ok")
'''


def test_numpy_numbers_and_metadata_lists_need_no_pyarrow() -> None:
    out = subprocess.run([sys.executable, "-c", NO_PYARROW], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok\n"


# ---- no Python work per row -------------------------------------------------


def python_calls(fn: Callable[[], Any]) -> int:
    """Python function calls, and calls of built-ins from Python code, that
    fn() makes (sys.setprofile events): work done per row in Python shows here,
    work done in C (numpy, pyarrow, join) does not."""
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def _convert_all(n: int) -> Callable[[], Any]:
    words = ["w%d" % (i % 1000) for i in range(n)]
    tags = [["a", "b"] if i % 3 else [] for i in range(n)]
    words[1] = None
    ints = [i if i % 5 else None for i in range(n)]
    meta = [b"m" if i % 2 else None for i in range(n)]
    arrow = pa.array(["first"] + words).slice(1)

    def run() -> Any:
        to_columns({"s": words, "t": tags, "i": ints, "a": arrow, "x": np.arange(n, dtype=np.float64)}, n)
        metadata_to_buffers(meta, n)
    return run


def test_conversion_makes_no_python_call_per_row() -> None:
    _convert_all(10)()  # first imports (pyarrow.compute) and caches out of the count
    small = python_calls(_convert_all(1_000))
    large = python_calls(_convert_all(1_000_000))
    assert large == small  # the same calls for 1,000 and 1,000,000 rows
    assert small < 10_000  # some hundreds per column


def test_a_per_row_python_loop_would_be_counted() -> None:
    """The counter above sees a loop over rows (the test could fail)."""
    n = 10_000
    values = [str(i) for i in range(n)]
    assert python_calls(lambda: [v.encode() for v in values]) >= n


# ---- reading: record batches to arrow, polars, numpy ------------------------


DIM = 4


def scan_batch(first_id: int, rows: int) -> Any:
    ids = np.arange(first_id, first_id + rows, dtype=np.uint64) + np.uint64(2**63)  # above int64
    vectors = np.arange(first_id * DIM, (first_id + rows) * DIM, dtype=np.float32)
    columns = {
        "id": pa.array(ids),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors), DIM),
        "metadata": pa.array([b"m%d" % i if i % 2 else None for i in range(first_id, first_id + rows)],
                             pa.large_binary()),
        "year": pa.array([i if i % 3 else None for i in range(first_id, first_id + rows)], pa.int64()),
        "score": pa.array([i / 2 for i in range(first_id, first_id + rows)], pa.float64()),
        "ok": pa.array([i % 2 == 0 for i in range(first_id, first_id + rows)]),
        "lang": pa.array(["l%d" % i if i % 4 else None for i in range(first_id, first_id + rows)]),
        "tags": pa.array([["t%d" % i] * (i % 3) for i in range(first_id, first_id + rows)],
                         pa.list_(pa.string())),
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def reader(*batches: Any) -> Any:
    return pa.RecordBatchReader.from_batches(batches[0].schema, batches)


def test_to_arrow_is_every_batch_in_order() -> None:
    a, b = scan_batch(0, 5), scan_batch(5, 3)
    table = batches_to_arrow(reader(a, b))
    assert table.equals(pa.Table.from_batches([a, b]))
    assert batches_to_arrow([a, b]).equals(table)
    assert batches_to_arrow(a).equals(pa.Table.from_batches([a]))


def test_an_empty_scan_needs_its_schema() -> None:
    schema = scan_batch(0, 1).schema
    assert batches_to_arrow(pa.RecordBatchReader.from_batches(schema, [])).num_rows == 0
    assert batches_to_arrow([], schema=schema).schema == schema
    with pytest.raises(ValueError, match="pass schema="):
        batches_to_arrow([])
    arrays = batches_to_numpy([], schema=schema)
    assert arrays["vector"].shape == (0, DIM) and arrays["vector"].dtype == np.float32
    assert arrays["id"].dtype == np.uint64 and arrays["id"].shape == (0,)


def test_to_numpy_one_batch_shares_the_vector_buffer() -> None:
    batch = scan_batch(0, 6)
    arrays = batches_to_numpy(reader(batch))
    vectors = arrays["vector"]
    assert vectors.dtype == np.float32 and vectors.shape == (6, DIM)
    assert np.array_equal(vectors, np.arange(6 * DIM, dtype=np.float32).reshape(6, DIM))
    child = batch.column(1).values.buffers()[1]
    assert vectors.__array_interface__["data"][0] == child.address


def test_to_numpy_of_sliced_and_several_batches() -> None:
    a = scan_batch(0, 10).slice(3, 4)  # rows 3..6: a nonzero offset in every column
    b = scan_batch(10, 2)
    arrays = batches_to_numpy([a, b])
    rows = [3, 4, 5, 6, 10, 11]
    assert arrays["id"].dtype == np.uint64
    assert arrays["id"].tolist() == [2**63 + i for i in rows]
    assert np.array_equal(arrays["vector"], np.array([np.arange(i * DIM, (i + 1) * DIM) for i in rows], np.float32))
    year = arrays["year"]
    assert isinstance(year, np.ma.MaskedArray) and year.dtype == np.int64
    assert year.tolist() == [None if i % 3 == 0 else i for i in rows]
    assert arrays["score"].dtype == np.float64 and not isinstance(arrays["score"], np.ma.MaskedArray)
    assert arrays["score"].tolist() == [i / 2 for i in rows]
    assert arrays["ok"].dtype == np.bool_ and arrays["ok"].tolist() == [i % 2 == 0 for i in rows]
    assert arrays["lang"].tolist() == [None if i % 4 == 0 else "l%d" % i for i in rows]
    assert arrays["metadata"].tolist() == [b"m%d" % i if i % 2 else None for i in rows]
    assert [list(t) for t in arrays["tags"]] == [["t%d" % i] * (i % 3) for i in rows]


def test_to_numpy_refuses_null_vectors() -> None:
    vectors = pa.array([[0.0] * DIM, None], type=pa.list_(pa.float32(), DIM))
    with pytest.raises(ValueError, match="'vector' has 1 null rows"):
        batches_to_numpy([pa.RecordBatch.from_arrays([vectors], names=["vector"])])


def test_to_polars_keeps_types_and_values() -> None:
    a, b = scan_batch(0, 5), scan_batch(5, 3)
    df = batches_to_polars(reader(a, b))
    assert df.height == 8
    assert df.schema["id"] == pl.UInt64 and df.schema["vector"] == pl.Array(pl.Float32, DIM)
    assert df.schema["tags"] == pl.List(pl.String)
    assert df["id"].to_list() == [2**63 + i for i in range(8)]
    assert df["year"].to_list() == [None if i % 3 == 0 else i for i in range(8)]
    assert np.array_equal(df["vector"].to_numpy(), np.arange(8 * DIM, dtype=np.float32).reshape(8, DIM))
