"""The bad input matrix of the Python faces (SPEC 2, 3.2, 3.3).

Every bad argument gives the exception the contract names, with a message
that names the argument and the bad value; a rejected call changes nothing
(counts and contents are checked after it); no input crashes the process.
Inputs that are only unusual (other dtypes, layouts, read-only arrays, lists)
are accepted and store exactly what a float32 conversion would.
"""

from __future__ import annotations

import math
import pickle
import threading
import time
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

import alopex
import pomaidb
from alopex import AlopexError, Database, EmbeddedConfig, HnswConfig, Metric, TxnMode
from alopex_helpers import commit_kv, db, db_factory, kind, read  # noqa: F401  (fixtures)
from pomaidb import InvalidArgumentError, PomaiDBError, StatusCode

# float64 values past the float32 range become inf in the conversion (then rejected): numpy warns.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

INVALID_ARGUMENT = 1
CLOSED = 12
RW = TxnMode.READ_WRITE
RO = TxnMode.READ_ONLY

DIM = 4
BASE_IDS = [1, 2, 3]
BASE = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
ROWS = np.array([[0.5, -1.25, 3.0, 2.0], [4.0, 0.25, -2.0, 1.0]], dtype=np.float32)


def readonly(a: np.ndarray) -> np.ndarray:
    a = a.view()  # keeps the layout (Fortran order, strides) of `a`
    a.flags.writeable = False
    return a


def fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def strided(a: np.ndarray) -> np.ndarray:
    wide = np.repeat(a, 2, axis=-1)  # every column twice: [..., ::2] is a strided view of a
    return wide[..., ::2]


def tuples(a: Any) -> Any:
    """a.tolist() with every list made a tuple."""
    return tuple(tuples(x) for x in a) if isinstance(a, list) else a


# Inputs (1-D or 2-D) that are only unusual: each is taken as its float32 conversion.
ACCEPTED = [
    (lambda v: v, "float32-C"),
    (lambda v: v.astype(np.float16), "float16"),
    (lambda v: v.astype(np.float64), "float64"),
    (lambda v: np.round(v).astype(np.int32), "int32"),
    (lambda v: np.round(v).astype(np.int64), "int64"),
    (lambda v: v != 0, "bool"),
    (lambda v: v.astype(object), "object-of-floats"),
    (fortran, "fortran-order"),
    (strided, "strided-columns"),
    (lambda v: np.repeat(v.astype(np.float64), 3, axis=-1)[..., 1::3], "strided-float64"),
    (lambda v: np.repeat(v, 2, axis=0)[::2], "strided-rows"),
    (lambda v: v[::-1][::-1], "reversed-rows"),
    (readonly, "read-only"),
    (lambda v: readonly(fortran(v)), "read-only-fortran"),
    (lambda v: readonly(strided(v)), "read-only-strided"),
    (lambda v: v.tolist(), "lists"),
    (lambda v: tuples(v.tolist()), "tuples"),
]
accepted = pytest.mark.parametrize("make", [m for m, _ in ACCEPTED], ids=[n for _, n in ACCEPTED])


def raises_naming(exc: type, needles: List[str], call: Callable[[], Any]) -> Any:
    """call() raises exc with a message holding every needle; returns the error."""
    with pytest.raises(exc) as e:
        call()
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))
    return e.value


# ===========================================================================
# pomaidb
# ===========================================================================


@pytest.fixture
def pdb(open_db: Callable[..., pomaidb.Database]) -> pomaidb.Database:
    """A dim-4 database holding rows 1, 2, 3 (the unit vectors)."""
    d = open_db(DIM)
    pomaidb.put_batch(d, BASE_IDS, BASE)
    return d


def contents(d: pomaidb.Database) -> Dict[int, List[float]]:
    """Every live row (ids 0..20 and 2**64 - 1) with its vector."""
    out = {}
    for i in list(range(21)) + [2**64 - 1]:
        got = pomaidb.get(d, i)
        if got is not None:
            out[i] = got[0].tolist()
    assert len(out) == pomaidb.count(d)
    return out


def unchanged(d: pomaidb.Database) -> None:
    assert contents(d) == {i: row.tolist() for i, row in zip(BASE_IDS, BASE)}


# ---- put_batch: rejected vectors ------------------------------------------

def _nonfinite(bad: float) -> np.ndarray:
    v = ROWS.copy()
    v[1, 2] = bad
    return v


BAD_VECTORS = [
    # (ids, vectors, exception, substrings of the message)
    ([10, 11], ROWS[:, :3], InvalidArgumentError, ["vectors has shape (2, 3)", "dim is 3", "dim is 4"]),
    ([10, 11], np.ones((2, 5), dtype=np.float32), InvalidArgumentError, ["vectors", "(2, 5)", "dim is 5", "dim is 4"]),
    ([10, 11], _nonfinite(math.nan), InvalidArgumentError, ["non-finite", "nan", "11"]),
    ([10, 11], _nonfinite(math.inf), InvalidArgumentError, ["non-finite", "inf", "11"]),
    ([10, 11], _nonfinite(-math.inf), InvalidArgumentError, ["non-finite", "-inf", "11"]),
    ([10, 11], np.array([[1, 2, 3, 4], [1e39, 0, 0, 0]]), InvalidArgumentError, ["non-finite", "inf"]),
    ([10, 11, 12], ROWS, InvalidArgumentError, ["len(ids) = 3", "2 rows"]),
    ([10], ROWS, InvalidArgumentError, ["len(ids) = 1", "2 rows"]),
    ([], ROWS, InvalidArgumentError, ["len(ids) = 0", "2 rows"]),
    ([10], np.empty((0, DIM), dtype=np.float32), InvalidArgumentError, ["len(ids) = 1", "0 rows"]),
    ([10], [1.0, 2.0, 3.0, 4.0], InvalidArgumentError, ["vectors", "2-D", "(4,)"]),
    ([10], np.float32(1.0), InvalidArgumentError, ["vectors", "2-D", "()"]),
    ([10], np.ones((1, 1, DIM)), InvalidArgumentError, ["vectors", "2-D", "(1, 1, 4)"]),
    ([10, 11], [[1.0, 2.0, 3.0, 4.0], [3.0]], InvalidArgumentError, ["vectors", "2-D array of numbers"]),
    ([10], [["a", "b", "c", "d"]], InvalidArgumentError, ["vectors", "'a'"]),
    ([10], np.array([[1, None, 3, 4]], dtype=object), InvalidArgumentError, ["non-finite", "nan"]),  # None -> NaN
    ([10], None, TypeError, ["vectors", "None"]),
]


@pytest.mark.parametrize("ids, vectors, exc, needles", BAD_VECTORS, ids=[
    "dim-too-small", "dim-too-large", "nan", "+inf", "-inf", "float64-overflows-to-inf",
    "more-ids-than-rows", "fewer-ids-than-rows", "no-ids-two-rows", "one-id-shape-0xdim",
    "1-D-where-2-D", "0-d", "3-D", "ragged", "strings", "object-with-None", "None"])
def test_put_batch_rejects_bad_vectors_and_stores_nothing(pdb, ids, vectors, exc, needles) -> None:
    err = raises_naming(exc, needles, lambda: pomaidb.put_batch(pdb, ids, vectors))
    if isinstance(err, PomaiDBError):
        assert err.code == INVALID_ARGUMENT
        assert isinstance(err, ValueError)
    unchanged(pdb)


def test_put_batch_with_metadata_rejects_bad_vectors_and_stores_nothing(pdb) -> None:
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        pomaidb.put_batch(pdb, [10, 11], _nonfinite(math.nan), metadata=[b"a", b"b"])
    with pytest.raises(InvalidArgumentError, match=r"len\(metadata\) = 1"):
        pomaidb.put_batch(pdb, [10, 11], ROWS, metadata=[b"a"])
    with pytest.raises(TypeError, match=r"metadata\[1\].*str"):
        pomaidb.put_batch(pdb, [10, 11], ROWS, metadata=[b"a", "b"])
    with pytest.raises(TypeError, match="metadata"):
        pomaidb.put_batch(pdb, [10, 11], ROWS, metadata=b"ab")
    unchanged(pdb)


# ---- put_batch: accepted layouts and dtypes --------------------------------

@accepted
def test_put_batch_accepts_any_numeric_layout_and_stores_the_float32_conversion(pdb, make) -> None:
    vectors = make(ROWS)
    want = np.asarray(vectors, dtype=np.float32)
    pomaidb.put_batch(pdb, [10, 11], vectors)
    assert pomaidb.count(pdb) == 5
    np.testing.assert_array_equal(pomaidb.get(pdb, 10)[0], want[0])
    np.testing.assert_array_equal(pomaidb.get(pdb, 11)[0], want[1])


@pytest.mark.parametrize("ids", [
    np.array([10, 11], dtype=np.uint64), readonly(np.array([10, 11], dtype=np.int64)),
    np.array([10, 0, 11, 0], dtype=np.int32)[::2], np.array([10, 11], dtype=np.uint8),
    np.array([10, 11], dtype=np.uint16), np.array([10, 11], dtype=np.int32), [10, 11], (10, 11), range(10, 12),
], ids=["uint64", "read-only-int64", "strided-int32", "uint8", "uint16", "int32", "list", "tuple", "range"])
def test_put_batch_accepts_any_integer_ids(pdb, ids) -> None:
    pomaidb.put_batch(pdb, ids, ROWS)
    assert pomaidb.count(pdb) == 5 and pomaidb.exists(pdb, 10) and pomaidb.exists(pdb, 11)


def test_the_largest_id_is_accepted(pdb) -> None:
    pomaidb.put_batch(pdb, [2**64 - 1], ROWS[:1])
    np.testing.assert_array_equal(pomaidb.get(pdb, 2**64 - 1)[0], ROWS[0])
    pomaidb.put_batch(pdb, np.array([2**64 - 1], dtype=np.uint64), ROWS[1:])
    np.testing.assert_array_equal(pomaidb.get(pdb, 2**64 - 1)[0], ROWS[1])


# ---- put_batch: empty batches ----------------------------------------------

@pytest.mark.parametrize("ids, vectors", [
    ([], []), ([], np.empty((0, DIM), dtype=np.float32)), (np.array([], dtype=np.uint64), np.empty((0, DIM))),
    ([], np.empty((0, 3), dtype=np.float32)),
], ids=["lists", "shape-0xdim", "empty-arrays", "shape-0x3"])
def test_empty_batch_is_a_no_op(pdb, ids, vectors) -> None:
    pomaidb.put_batch(pdb, ids, vectors)
    pomaidb.put_batch(pdb, ids, vectors, metadata=[])
    pomaidb.delete(pdb, ids)
    unchanged(pdb)


# ---- put_batch: duplicate ids ----------------------------------------------

@pytest.mark.parametrize("with_metadata", [False, True], ids=["arrays", "metadata"])
def test_duplicate_ids_in_a_batch_last_one_wins(pdb, with_metadata: bool) -> None:
    ids = [7, 2, 7, 7]
    vectors = np.array([[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3], [4, 4, 4, 4]], dtype=np.float32)
    metadata = [b"first", b"two", b"middle", b"last"] if with_metadata else None
    pomaidb.put_batch(pdb, ids, vectors, metadata=metadata)
    assert pomaidb.count(pdb) == 4  # 1, 2, 3 and 7
    for when in ("memtable", "after freeze"):
        vec, meta = pomaidb.get(pdb, 7)
        assert vec.tolist() == [4, 4, 4, 4], when
        assert meta == (b"last" if with_metadata else b""), when
        assert pomaidb.get(pdb, 2)[0].tolist() == [2, 2, 2, 2], when
        ids_found, scores = pomaidb.search(pdb, [4, 4, 4, 4], topk=10)
        live = [int(i) for i in ids_found[0] if i != 2**64 - 1]
        assert sorted(live) == [1, 2, 3, 7] and live.count(7) == 1, when
        pomaidb.freeze(pdb)


# ---- ids -------------------------------------------------------------------

BAD_IDS = [
    ([-1], InvalidArgumentError, ["ids[0] = -1", "negative"]),
    ([1, -5], InvalidArgumentError, ["ids[1] = -5", "negative"]),  # id 1 exists: neither written nor deleted
    (np.array([3, -4]), InvalidArgumentError, ["ids[1] = -4", "negative"]),
    ([2**64], InvalidArgumentError, ["ids[0]", str(2**64), "out of range"]),
    ([10, 2**70], InvalidArgumentError, ["ids[1]", str(2**70)]),
    ([-1, 2**63], InvalidArgumentError, ["ids[0]", "-1"]),
    ([1.5], TypeError, ["ids[0]", "float", "1.5"]),
    (["10"], TypeError, ["ids[0]", "str", "'10'"]),
    ([2, "3"], TypeError, ["ids[1]", "str", "'3'"]),
    ([None], TypeError, ["ids[0]", "None"]),
    ([True], TypeError, ["ids", "bool"]),
    (np.array([1.0]), TypeError, ["ids", "float64"]),
    (np.array([True]), TypeError, ["ids", "bool"]),
    (np.array([10], dtype=object), TypeError, ["ids", "object"]),
    (np.array([[10]]), InvalidArgumentError, ["ids", "1-D", "(1, 1)"]),
    (None, TypeError, ["ids", "None"]),
    (1.5, TypeError, ["ids", "float"]),
]


@pytest.mark.parametrize("ids, exc, needles", BAD_IDS, ids=[
    "negative", "negative-second", "negative-in-array", "2**64", "2**70", "negative-and-2**63", "float",
    "str", "str-second", "None-item", "bool-item", "float-array", "bool-array", "object-array", "2-D", "None",
    "float-scalar"])
def test_bad_ids_are_rejected_and_nothing_changes(pdb, ids, exc, needles) -> None:
    rows = np.ones((np.size(ids) if ids is not None and not isinstance(ids, float) else 1, DIM), dtype=np.float32)
    for call in (lambda: pomaidb.put_batch(pdb, ids, rows),
                 lambda: pomaidb.put_batch(pdb, ids, rows, metadata=[b"m"] * len(rows)),
                 lambda: pomaidb.delete(pdb, ids)):
        raises_naming(exc, needles, call)
    unchanged(pdb)


@pytest.mark.parametrize("bad, exc, needles", [
    (-1, InvalidArgumentError, ["id = -1", "out of range"]),
    (2**64, InvalidArgumentError, [f"id = {2**64}", "out of range"]),
    (1.0, TypeError, ["id", "float", "1.0"]),
    ("1", TypeError, ["id", "str", "'1'"]),
    (None, TypeError, ["id", "None"]),
    (True, TypeError, ["id", "bool"]),
    (np.array([1]), TypeError, ["id", "ndarray"]),
], ids=["negative", "2**64", "float", "str", "None", "bool", "array"])
def test_get_and_exists_reject_bad_ids(pdb, bad, exc, needles) -> None:
    # get of an array is its many-ids form (test_filters.py); exists takes one id.
    for call in (pomaidb.exists,) if isinstance(bad, np.ndarray) else (pomaidb.get, pomaidb.exists):
        raises_naming(exc, needles, lambda: call(pdb, bad))


def test_missing_id_is_none_and_false(pdb) -> None:
    assert pomaidb.get(pdb, 99) is None
    assert pomaidb.exists(pdb, 99) is False
    assert pomaidb.get(pdb, 2**64 - 1) is None


# ---- search: queries -------------------------------------------------------

BAD_QUERIES = [
    ([[1.0, 0.0, 0.0]], InvalidArgumentError, ["queries has shape (1, 3)", "dim is 3", "dim is 4"]),
    (np.ones((2, 8), dtype=np.float32), InvalidArgumentError, ["queries", "(2, 8)", "dim is 8", "dim is 4"]),
    ([[1.0, 0.0, 0.0, 0.0], [0.0, math.nan, 0.0, 0.0]], InvalidArgumentError, ["query 1", "non-finite", "nan"]),
    ([[1.0, 0.0, math.inf, 0.0]], InvalidArgumentError, ["query 0", "non-finite", "inf"]),
    ([[-math.inf, 0.0, 0.0, 0.0]], InvalidArgumentError, ["query 0", "non-finite", "-inf"]),
    (np.ones((1, 1, DIM)), InvalidArgumentError, ["queries", "2-D", "(1, 1, 4)"]),
    (np.float32(1.0), InvalidArgumentError, ["queries", "2-D", "()"]),
    ([[1.0, 2.0, 3.0, 4.0], [1.0]], InvalidArgumentError, ["queries", "2-D array of numbers"]),
    ([["a", "b", "c", "d"]], InvalidArgumentError, ["queries", "'a'"]),
    (None, TypeError, ["queries", "None"]),
]


@pytest.mark.parametrize("queries, exc, needles", BAD_QUERIES, ids=[
    "dim-too-small", "dim-too-large", "nan", "+inf", "-inf", "3-D", "0-d", "ragged", "strings", "None"])
@pytest.mark.parametrize("fn", [pomaidb.search, pomaidb.search_batch], ids=["search", "search_batch"])
def test_bad_queries_are_rejected(pdb, fn, queries, exc, needles) -> None:
    err = raises_naming(exc, needles, lambda: fn(pdb, queries, topk=2))
    if isinstance(err, PomaiDBError):
        assert err.code == INVALID_ARGUMENT
    unchanged(pdb)


@accepted
@pytest.mark.parametrize("fn", [pomaidb.search, pomaidb.search_batch], ids=["search", "search_batch"])
def test_queries_of_any_numeric_layout_give_the_float32_answer(pdb, fn, make) -> None:
    q = make(np.array([[0, 0, 3, 0], [2, 0, 0, 0]], dtype=np.float32))
    want = fn(pdb, np.asarray(q, dtype=np.float32), topk=2)
    got = fn(pdb, q, topk=2)
    if fn is pomaidb.search:
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    else:
        assert got == want


@pytest.mark.parametrize("queries", [[], np.empty((0, DIM), dtype=np.float32), np.empty((0, DIM)),
                                     np.empty(0, dtype=np.float32)],
                         ids=["empty-list", "shape-0xdim", "float64-0xdim", "shape-0"])
def test_zero_queries_give_zero_results(pdb, queries) -> None:
    assert pomaidb.search_batch(pdb, queries, topk=3) == []
    ids, scores = pomaidb.search(pdb, queries, topk=3)
    assert ids.shape == (0, 3) and scores.shape == (0, 3)


# ---- search: topk ----------------------------------------------------------

@pytest.mark.parametrize("topk, want", [(0, []), (1, [3]), (3, [3, 1, 2]), (4, [3, 1, 2]),
                                        (10**6, [3, 1, 2]), (2**32 - 1, [3, 1, 2])],
                         ids=["0", "1", "rows", "rows+1", "million", "2**32-1"])
def test_topk_zero_and_larger_than_the_rows(pdb, topk: int, want: list) -> None:
    q = [[0.1, 0.0, 1.0, 0.0]]
    [(ids, scores)] = pomaidb.search_batch(pdb, q, topk=topk)
    assert ids == want and len(scores) == len(want)
    np_ids, np_scores = pomaidb.search(pdb, q, topk=topk)
    assert np_ids.shape == (1, topk if topk <= 4096 else len(want))  # a huge topk is capped at the count
    assert np_ids[0, :len(want)].tolist() == want
    assert (np_ids[0, len(want):] == 2**64 - 1).all() and (np_scores[0, len(want):] == -np.inf).all()


def test_huge_topk_with_many_queries_does_not_allocate_n_times_k(pdb) -> None:
    # n * topk cells would be ~2**40 (terabytes): the width is capped at the live count.
    queries = np.tile(BASE, (256, 1))
    ids, scores = pomaidb.search(pdb, queries, topk=2**32 - 1)
    assert ids.shape == (768, 3) and scores.shape == (768, 3)
    batch = pomaidb.search_batch(pdb, queries, topk=2**32 - 1)
    assert len(batch) == 768 and all(len(i) == 3 for i, _ in batch)


@pytest.mark.parametrize("topk, exc, needles", [
    (-1, InvalidArgumentError, ["topk = -1", "out of range"]),
    (-(2**63), InvalidArgumentError, ["topk", str(-(2**63))]),
    (2**32, InvalidArgumentError, ["topk", str(2**32), "out of range"]),
    (2**63, InvalidArgumentError, ["topk", str(2**63), "out of range"]),
    (2**64 + 5, InvalidArgumentError, ["topk", str(2**64 + 5)]),
    (1.5, TypeError, ["topk", "float", "1.5"]),
    (None, TypeError, ["topk", "None"]),
    (True, TypeError, ["topk", "bool"]),
    ("3", TypeError, ["topk", "str"]),
], ids=["-1", "-2**63", "2**32", "2**63", "2**64+5", "float", "None", "bool", "str"])
@pytest.mark.parametrize("fn", [pomaidb.search, pomaidb.search_batch], ids=["search", "search_batch"])
def test_bad_topk_is_rejected(pdb, fn, topk, exc, needles) -> None:
    raises_naming(exc, needles, lambda: fn(pdb, [[1.0, 0.0, 0.0, 0.0]], topk=topk))


@pytest.mark.parametrize("ef, exc, needle", [(0, InvalidArgumentError, "ef_search is 0"),
                                             (-1, InvalidArgumentError, "ef_search = -1"),
                                             (2**63, InvalidArgumentError, f"ef_search = {2**63}"),
                                             (1.5, TypeError, "ef_search")], ids=["0", "-1", "2**63", "float"])
def test_bad_ef_search_is_rejected(pdb, ef, exc, needle) -> None:
    with pytest.raises(exc, match=needle.replace("*", r"\*")):
        pomaidb.search(pdb, [[1.0, 0.0, 0.0, 0.0]], topk=1, ef_search=ef)


@pytest.mark.parametrize("progress", ["yes", 1, [None]], ids=["str", "int", "list"])
@pytest.mark.parametrize("fn", [pomaidb.freeze, pomaidb.compact], ids=["freeze", "compact"])
def test_bad_progress_is_a_type_error(pdb, fn, progress) -> None:
    with pytest.raises(TypeError, match="progress must be None, a bool or a callable"):
        fn(pdb, progress=progress)
    unchanged(pdb)


# ---- open_db ---------------------------------------------------------------

@pytest.mark.parametrize("opts, exc, needles", [
    ({"dim": 0}, ValueError, ["dim = 0"]),
    ({"dim": -1}, ValueError, ["dim = -1"]),
    ({"dim": 2**32}, ValueError, ["dim", str(2**32)]),
    ({"dim": 4.0}, TypeError, ["dim", "float"]),
    ({"dim": None}, TypeError, ["dim", "None"]),
    ({"dim": 4, "metric": None}, ValueError, ["metric", "None"]),
    ({"dim": 4, "metric": "euclid"}, ValueError, ["metric", "'euclid'"]),
    ({"dim": 4, "shards": -2}, ValueError, ["shards = -2"]),
    ({"dim": 4, "shards": 0}, ValueError, ["shards"]),
    ({"dim": 4, "hnsw_m": 2**32}, ValueError, ["hnsw_m", str(2**32)]),
    ({"dim": 4, "fsync": "yes"}, TypeError, ["fsync", "'yes'"]),
    *[({"dim": 4, "hnsw_vectors": value}, ValueError, ["hnsw_vectors"]) for value in ("f16", "SQ8", None, 1)],
    ({"dim": 4, "shard_count": 2}, TypeError, ["shard_count"]),  # an option that does not exist
], ids=["dim-0", "dim-negative", "dim-2**32", "dim-float", "dim-None", "metric-None", "metric-unknown",
        "shards-negative", "shards-0", "hnsw_m-2**32", "fsync-str", "hnsw_vectors-f16", "hnsw_vectors-SQ8",
        "hnsw_vectors-None", "hnsw_vectors-1", "unknown-option"])
def test_bad_open_values_name_the_option_and_value(db_path, opts, exc, needles) -> None:
    raises_naming(exc, needles, lambda: pomaidb.open_db(db_path, **opts))


@pytest.mark.parametrize("path, exc", [(None, TypeError), ("", ValueError), ("a\0b", ValueError), (3, TypeError)],
                         ids=["None", "empty", "NUL", "int"])
def test_bad_paths(path, exc) -> None:
    with pytest.raises(exc, match="path"):
        pomaidb.open_db(path, dim=4)


# ---- errors ----------------------------------------------------------------

def test_error_carries_code_and_message_and_pickles(open_db) -> None:
    d = open_db(4)
    with pytest.raises(PomaiDBError) as e:
        pomaidb.put_batch(d, [1], [[1.0]])
    err = e.value
    assert err.code == StatusCode.INVALID_ARGUMENT
    assert err.message and err.message in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and again.code == err.code and again.message == err.message


@pytest.mark.parametrize("fn", [pomaidb.count, pomaidb.close, pomaidb.freeze, pomaidb.stats,
                                lambda d: pomaidb.get(d, 1), lambda d: pomaidb.search(d, [[1.0]])],
                         ids=["count", "close", "freeze", "stats", "get", "search"])
@pytest.mark.parametrize("not_db", ["not a db", None, 3], ids=["str", "None", "int"])
def test_not_a_database_is_a_type_error(fn, not_db) -> None:
    with pytest.raises(TypeError, match="db must be a pomaidb.Database"):
        fn(not_db)


# ---- closed handles ----------------------------------------------------------

CLOSED_CALLS = {
    "put_batch": lambda d: pomaidb.put_batch(d, [2], [[1, 2]]),
    "put_batch-metadata": lambda d: pomaidb.put_batch(d, [2], [[1, 2]], metadata=[b"x"]),
    "put_batch-empty": lambda d: pomaidb.put_batch(d, [], []),
    "delete": lambda d: pomaidb.delete(d, 1),
    "delete-empty": lambda d: pomaidb.delete(d, []),
    "get": lambda d: pomaidb.get(d, 1),
    "exists": lambda d: pomaidb.exists(d, 1),
    "count": lambda d: pomaidb.count(d),
    "freeze": lambda d: pomaidb.freeze(d),
    "freeze-progress": lambda d: pomaidb.freeze(d, progress=lambda done, total: None),
    "compact": lambda d: pomaidb.compact(d),
    "stats": lambda d: pomaidb.stats(d),
    "search": lambda d: pomaidb.search(d, [[1, 2]]),
    "search-empty": lambda d: pomaidb.search(d, np.empty((0, 2))),
    "search_batch": lambda d: pomaidb.search_batch(d, [[1, 2]]),
    "search_batch-huge-topk": lambda d: pomaidb.search_batch(d, [[1, 2]], topk=2**32 - 1),
    "method-put_batch": lambda d: d.put_batch([2], [[1, 2]]),
    "method-delete": lambda d: d.delete([1]),
    "method-get": lambda d: d.get(1),
    "method-exists": lambda d: d.exists(1),
    "method-count": lambda d: d.count(),
    "method-len": lambda d: len(d),
    "method-freeze": lambda d: d.freeze(),
    "method-compact": lambda d: d.compact(),
    "method-stats": lambda d: d.stats(),
    "method-search": lambda d: d.search([[1, 2]]),
    "method-search_batch": lambda d: d.search_batch([[1, 2]]),
    "with": lambda d: d.__enter__(),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS.values()), ids=list(CLOSED_CALLS))
def test_closed_db_call_raises_closed_naming_the_database(db_path, call) -> None:
    d = pomaidb.open_db(db_path, dim=2)
    pomaidb.put_batch(d, [1], [[1, 2]])
    d.close()
    d.close()  # double close: no-op
    pomaidb.close(d)
    assert d.closed
    with pytest.raises(PomaiDBError) as e:
        call(d)
    assert e.value.code == CLOSED
    assert "closed" in str(e.value) and str(db_path) in str(e.value)
    again = pomaidb.open_db(db_path, dim=2)  # nothing was half-applied
    assert pomaidb.count(again) == 1 and pomaidb.get(again, 1)[0].tolist() == [1, 2]
    again.close()


def test_context_manager_closes_and_a_closed_db_cannot_be_reentered(db_path) -> None:
    with pomaidb.open_db(db_path, dim=2) as d:
        pomaidb.put_batch(d, [1], [[1, 2]])
    assert d.closed
    d.close()
    with pytest.raises(PomaiDBError, match="closed"):
        with d:
            pass


def close_racing_searches(d: Any, search: Callable[[], None], error: type, closed_code: Any) -> List[str]:
    """Four threads call search() until it raises `error` with `closed_code`
    while this thread closes `d`, once they have made 12 calls (so that the
    close lands while they run; or after 5 s). Nothing else is raised, every
    thread stops with that error within 10,000 calls, and the close came after
    at least 12 calls. Returns the errors' messages."""
    done: List[str] = []
    closed: List[str] = []
    errors: List[BaseException] = []
    started = threading.Barrier(5)

    def worker() -> None:
        started.wait()
        try:
            for _ in range(10_000):
                search()
                done.append("ok")
        except error as e:
            if e.code != closed_code:
                errors.append(e)
            closed.append(str(e))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    deadline = time.monotonic() + 5
    while len(done) < 12 and time.monotonic() < deadline:
        time.sleep(0.0002)
    d.close()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(closed) == 4 and len(done) >= 12
    return closed


@pytest.mark.parametrize("fn", ["search", "search_batch", "search_batch_huge_topk"])
def test_close_racing_searches_never_crashes(tmp_path, fn: str) -> None:
    data = np.random.default_rng(3).standard_normal((300, 8)).astype(np.float32)
    for r in range(60):
        d = pomaidb.open_db(tmp_path / f"db{r % 2}", dim=8, shards=2)
        if r < 2:
            pomaidb.put_batch(d, np.arange(300), data)
            pomaidb.freeze(d)

        def search() -> None:
            if fn == "search":
                ids, _ = pomaidb.search(d, data[:4], topk=5)
                assert ids.shape == (4, 5)
            elif fn == "search_batch":
                assert len(pomaidb.search_batch(d, data[:4], topk=5)) == 4
            else:
                assert len(pomaidb.search_batch(d, data[:4], topk=2**32 - 1)[0][0]) in (0, 300)

        close_racing_searches(d, search, PomaiDBError, CLOSED)
    again = pomaidb.open_db(tmp_path / "db0", dim=8, shards=2)
    assert pomaidb.count(again) == 300
    again.close()


# ===========================================================================
# alopex
# ===========================================================================

V3 = np.array([0.5, -1.25, 3.0], dtype=np.float32)


def no_vector(txn: alopex.Transaction, key: bytes, metric: Metric = Metric.L2) -> bool:
    try:
        txn.get_vector(key, metric)
    except KeyError:
        return True
    return False


# ---- vectors: rejected -----------------------------------------------------

ALOPEX_BAD_VECTORS = [
    (np.ones((2, 2), dtype=np.float32), TypeError, ["vector", "1-D", "(2, 2)"]),
    (np.ones((1, 3), dtype=np.float32), TypeError, ["vector", "1-D", "(1, 3)"]),
    (np.ones((1, 1, 3)), TypeError, ["vector", "1-D", "(1, 1, 3)"]),
    (1.0, TypeError, ["vector", "1-D", "()"]),
    (np.float32(1.0), TypeError, ["vector", "1-D", "()"]),
    (["a", "b"], TypeError, ["vector", "'a'"]),
    ([[1.0, 2.0], [3.0]], TypeError, ["vector"]),
    (np.array([1.0, None, 3.0], dtype=object), AlopexError, ["vector[1]", "NaN"]),  # None -> NaN
    (None, TypeError, ["vector", "None"]),
    ([], AlopexError, ["vector", "empty"]),
    (np.array([], dtype=np.float32), AlopexError, ["vector", "empty"]),
    (np.empty((0,), dtype=np.float64), AlopexError, ["vector", "empty"]),
    ([1.0, math.nan, 0.0], AlopexError, ["vector[1]", "NaN"]),
    ([math.inf, 1.0, 0.0], AlopexError, ["vector[0]", "infinite"]),
    ([0.0, 1.0, -math.inf], AlopexError, ["vector[2]", "infinite"]),
    (np.array([1e39, 0.0, 0.0]), AlopexError, ["vector[0]", "infinite"]),
]
ALOPEX_BAD_VECTOR_IDS = [
    "2-D", "2-D-one-row", "3-D", "0-d-float", "0-d-numpy", "strings", "ragged", "object-with-None", "None",
    "empty-list", "empty-float32", "empty-float64", "nan", "+inf", "-inf", "float64-overflows-to-inf"]


@pytest.mark.parametrize("vector, exc, needles", ALOPEX_BAD_VECTORS, ids=ALOPEX_BAD_VECTOR_IDS)
def test_bad_vectors_and_queries_are_rejected_by_every_call_and_store_nothing(db, vector, exc, needles) -> None:
    db.create_hnsw_index("idx", HnswConfig(3, metric=Metric.L2))
    with db.begin(RW) as txn:
        raises_naming(exc, needles, lambda: txn.upsert_vector(b"k", None, vector, Metric.L2))
        raises_naming(exc, needles, lambda: txn.upsert_to_hnsw("idx", b"k", vector))
        assert no_vector(txn, b"k") and txn.get(b"k") is None  # nothing was half-stored
        txn.upsert_vector(b"ok", None, V3, Metric.L2)  # the transaction is still usable
        txn.upsert_to_hnsw("idx", b"ok", V3)
        txn.commit()
    needles = [needle.replace("vector", "query") for needle in needles]
    with db.begin() as txn:
        raises_naming(exc, needles, lambda: txn.search_similar(vector, Metric.L2, 10))
        assert no_vector(txn, b"k")
        assert [r.key for r in txn.search_similar(V3, Metric.L2, 10)] == [b"ok"]  # still usable
    raises_naming(exc, needles, lambda: db.search_hnsw("idx", vector, 10))
    assert db.get_hnsw_stats("idx").node_count == 1
    assert [r.key for r in db.search_hnsw("idx", V3, 10)[0]] == [b"ok"]


def test_wrong_dimension_and_metric_are_errors(db) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    with db.begin(RW) as txn:
        txn.upsert_vector(b"a", None, [1.0, 0.0], Metric.L2)
        with pytest.raises(AlopexError):
            txn.search_similar([1.0, 0.0], Metric.COSINE, 1)
        with pytest.raises(AlopexError):
            txn.search_similar([1.0, 0.0, 0.0], Metric.L2, 1)
        with pytest.raises(AlopexError):
            txn.get_vector(b"a", Metric.COSINE)
        with pytest.raises(AlopexError, match="dim"):
            txn.upsert_to_hnsw("idx", b"a", [1.0, 0.0])
        assert txn.get_vector(b"a", Metric.L2).tolist() == [1.0, 0.0]  # still usable
        txn.commit()
    with pytest.raises(AlopexError, match="dim"):
        db.search_hnsw("idx", [1.0, 0.0], 1)
    assert db.get_hnsw_stats("idx").node_count == 0


def test_missing_index(db) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    for call in (lambda: db.search_hnsw("nope", [1.0, 0.0, 0.0], 1), lambda: db.get_hnsw_stats("nope"),
                 lambda: db.drop_hnsw_index("nope")):
        with pytest.raises(AlopexError, match="nope"):
            call()
    with db.begin(RW) as txn:
        with pytest.raises(AlopexError, match="nope"):
            txn.upsert_to_hnsw("nope", b"a", [1.0, 0.0, 0.0])
        with pytest.raises(AlopexError, match="nope"):
            txn.delete_from_hnsw("nope", b"a")
        txn.upsert_to_hnsw("idx", b"a", [1.0, 0.0, 0.0])  # the transaction is still usable
        txn.commit()
    assert db.get_hnsw_stats("idx").node_count == 1


# ---- vectors: accepted -------------------------------------------------------

@accepted
def test_alopex_accepts_any_numeric_1d_input(db, make) -> None:
    v = make(V3)
    want = np.asarray(v, dtype=np.float32)
    db.create_hnsw_index("idx", HnswConfig(3, metric=Metric.L2))
    with db.begin(RW) as txn:
        txn.upsert_vector(b"k", None, v, Metric.L2)
        txn.upsert_to_hnsw("idx", b"k", v)
        np.testing.assert_array_equal(txn.get_vector(b"k", Metric.L2), want)
        (r,) = txn.search_similar(v, Metric.L2, 1)
        assert r.key == b"k" and r.score == pytest.approx(0.0, abs=1e-6)
        txn.commit()
    (r,), _ = db.search_hnsw("idx", v, 1)
    assert r.key == b"k" and r.score == pytest.approx(0.0, abs=1e-6)


# ---- k ---------------------------------------------------------------------

@pytest.mark.parametrize("k, want", [(0, 0), (1, 1), (5, 5), (6, 5), (2**32 - 1, 5), (2**32, 5), (2**63, 5),
                                     (2**64 + 1, 5)],
                         ids=["0", "1", "rows", "rows+1", "2**32-1", "2**32", "2**63", "2**64+1"])
def test_k_zero_and_larger_than_the_rows(db, k: int, want: int) -> None:
    data = np.eye(5, dtype=np.float32)
    db.create_hnsw_index("idx", HnswConfig(5, metric=Metric.L2))
    with db.begin(RW) as txn:
        for i, row in enumerate(data):
            txn.upsert_vector(b"v%d" % i, None, row, Metric.L2)
            txn.upsert_to_hnsw("idx", b"v%d" % i, row)
        txn.commit()
    with db.begin() as txn:
        got = txn.search_similar(data[2], Metric.L2, k)
        assert len(got) == want
        if want:
            assert got[0].key == b"v2"
    results, _ = db.search_hnsw("idx", data[2], k)
    assert len(results) == want
    results, _ = db.search_hnsw("idx", data[2], k, ef_search=k)
    assert len(results) == want


@pytest.mark.parametrize("k, exc, needles", [
    (-1, AlopexError, ["k", "-1"]),
    (-(2**63), AlopexError, ["k", str(-(2**63))]),
    (1.5, TypeError, ["k", "float"]),
    (None, TypeError, ["k", "NoneType"]),
    (True, TypeError, ["k", "bool"]),
    ("3", TypeError, ["k", "str"]),
], ids=["-1", "-2**63", "float", "None", "bool", "str"])
def test_bad_k_is_rejected(db, k, exc, needles) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    with db.begin() as txn:
        for arg, call in (("k", lambda: txn.search_similar(V3, Metric.COSINE, k)),
                          ("k", lambda: db.search_hnsw("idx", V3, k)),
                          ("ef_search", lambda: db.search_hnsw("idx", V3, 1, ef_search=k))):
            if arg == "ef_search" and k is None:
                continue  # ef_search=None is the default
            raises_naming(exc, [arg if needle == "k" else needle for needle in needles], call)


# ---- duplicate keys ------------------------------------------------------------

def test_duplicate_keys_in_a_transaction_last_one_wins(db) -> None:
    db.create_hnsw_index("idx", HnswConfig(3, metric=Metric.L2))
    first, last = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 2.0])
    with db.begin(RW) as txn:
        for v, md in ((first, b"first"), ([5.0, 5.0, 5.0], b"middle"), (last, b"last")):
            txn.upsert_vector(b"k", md, v, Metric.L2)
            txn.upsert_to_hnsw("idx", b"k", v, md)
        txn.commit()
    with db.begin() as txn:
        assert txn.get_vector(b"k", Metric.L2).tolist() == last.tolist()
        (r,) = txn.search_similar(first, Metric.L2, 10)
        assert r.key == b"k" and r.metadata == b"last"
    assert db.get_hnsw_stats("idx").node_count == 1
    (r,), _ = db.search_hnsw("idx", last, 10)
    assert r.key == b"k" and r.metadata == b"last" and r.score == pytest.approx(0.0, abs=1e-6)


# ---- get_vector of missing keys ----------------------------------------------

def test_get_vector_of_a_missing_key_is_a_key_error(db) -> None:
    commit_kv(db, {b"plain": b"bytes", b"gone": b"x"})
    with db.begin(RW) as txn:
        txn.upsert_vector(b"deleted", None, V3, Metric.L2)
        txn.commit()
    with db.begin(RW) as txn:
        txn.delete(b"deleted")
        txn.commit()
    with db.begin() as txn:
        for missing in (b"missing", b"plain", b"deleted"):
            for zc in (True, False):
                with pytest.raises(KeyError) as e:
                    txn.get_vector(missing, Metric.COSINE, zero_copy_return=zc)
                assert missing.hex() in str(e.value)
        assert txn.get(b"plain") == b"bytes"  # still usable


# ---- keys: bytes, not str ------------------------------------------------------

@pytest.mark.parametrize("bad", ["text", bytearray(b"x"), memoryview(b"x"), 1, None],
                         ids=["str", "bytearray", "memoryview", "int", "None"])
def test_keys_and_values_must_be_bytes(db, bad: object) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    txn = db.begin(RW)
    calls = {
        "key": [lambda: txn.put(bad, b"v"), lambda: txn.get(bad), lambda: txn.delete(bad),
                lambda: txn.upsert_vector(bad, None, V3, Metric.L2), lambda: txn.get_vector(bad, Metric.L2),
                lambda: txn.upsert_to_hnsw("idx", bad, V3), lambda: txn.delete_from_hnsw("idx", bad)],
        "value": [lambda: txn.put(b"k", bad)],
        "filter_keys[1]": [lambda: txn.search_similar(V3, Metric.L2, 1, filter_keys=[b"a", bad])],
    }
    if bad is not None:
        calls["metadata"] = [lambda: txn.upsert_vector(b"k", bad, V3, Metric.L2),
                             lambda: txn.upsert_to_hnsw("idx", b"k", V3, bad)]
    for name, fns in calls.items():
        for fn in fns:
            with pytest.raises(TypeError) as e:
                fn()
            assert name in str(e.value) and type(bad).__name__ in str(e.value), (name, str(e.value))
    txn.put(b"k", b"v")  # a failed operation leaves the transaction usable
    txn.commit()
    assert read(db, b"k") == b"v"
    with db.begin() as t:
        assert no_vector(t, b"k")
    assert db.get_hnsw_stats("idx").node_count == 0


def test_empty_keys_are_rejected(db) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    with db.begin(RW) as txn:
        for call in (lambda: txn.put(b"", b"v"), lambda: txn.get(b""), lambda: txn.delete(b""),
                     lambda: txn.upsert_vector(b"", None, V3, Metric.L2), lambda: txn.get_vector(b"", Metric.L2),
                     lambda: txn.upsert_to_hnsw("idx", b"", V3), lambda: txn.delete_from_hnsw("idx", b"")):
            with pytest.raises(AlopexError, match="key is empty") as e:
                call()
            assert e.value.code == "INVALID_ARGUMENT"
        txn.put(b"k", b"v")  # still usable
        txn.commit()
    assert read(db, b"k") == b"v"
    assert db.get_hnsw_stats("idx").node_count == 0


@pytest.mark.parametrize("bad", [b"idx", 1, None], ids=["bytes", "int", "None"])
def test_index_names_must_be_str(db, bad) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    with db.begin(RW) as txn:
        for call in (lambda: db.create_hnsw_index(bad, HnswConfig(3)), lambda: db.drop_hnsw_index(bad),
                     lambda: db.get_hnsw_stats(bad), lambda: db.search_hnsw(bad, V3, 1),
                     lambda: txn.upsert_to_hnsw(bad, b"k", V3), lambda: txn.delete_from_hnsw(bad, b"k")):
            with pytest.raises(TypeError, match="name must be a str"):
                call()


@pytest.mark.parametrize("name, needles", [("", ["index name ''", "0 bytes"]),
                                           ("a\0b", ["index name", "'a\\x00b'", "NUL"]),
                                           ("n" * 256, ["index name", "256 bytes"])],
                         ids=["empty", "NUL", "256-bytes"])
def test_bad_index_names_are_rejected_and_create_nothing(db, name, needles) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    with db.begin(RW) as txn:
        for call in (lambda: db.create_hnsw_index(name, HnswConfig(3)), lambda: db.drop_hnsw_index(name),
                     lambda: db.get_hnsw_stats(name), lambda: db.search_hnsw(name, V3, 1),
                     lambda: txn.upsert_to_hnsw(name, b"k", V3), lambda: txn.delete_from_hnsw(name, b"k")):
            with pytest.raises(AlopexError) as e:
                call()
            for needle in needles:
                assert needle in str(e.value), (needle, str(e.value))
            assert e.value.code == "INVALID_ARGUMENT"
        txn.upsert_to_hnsw("idx", b"k", V3)  # still usable
        txn.commit()
    with pytest.raises(AlopexError, match="index not found"):
        db.get_hnsw_stats("a")  # "a\0b" made no index under a truncated name
    assert db.get_hnsw_stats("idx").node_count == 1


@pytest.mark.parametrize("size", [65536, 70000], ids=["65536", "70000"])
def test_too_long_keys_and_too_many_dimensions_are_rejected(db, size: int) -> None:
    big = b"x" * size
    with db.begin(RW) as txn:
        for call in (lambda: txn.put(big, b"v"), lambda: txn.get(big), lambda: txn.delete(big),
                     lambda: txn.upsert_vector(big, None, V3, Metric.L2)):
            with pytest.raises(AlopexError, match=f"key is {size} bytes"):
                call()
        with pytest.raises(AlopexError, match=f"vector dimension {size} is not in 1..65535"):
            txn.upsert_vector(b"k", None, np.ones(size, dtype=np.float32), Metric.L2)
        with pytest.raises(AlopexError, match=f"query dimension {size} is not in 1..65535"):
            txn.search_similar(np.ones(size, dtype=np.float32), Metric.L2, 1)
        with pytest.raises(AlopexError, match="filter key is empty"):
            txn.search_similar(V3, Metric.L2, 1, filter_keys=[b""])
        assert no_vector(txn, b"k")
        txn.put(b"k", b"v")
        txn.commit()
    assert read(db, b"k") == b"v"


def test_filter_keys_must_be_a_sequence_of_bytes(db) -> None:
    with db.begin() as txn:
        for bad in (["str"], b"one-key", "one-key"):
            with pytest.raises(TypeError, match="filter_keys"):
                txn.search_similar([1.0, 1, 1, 1], Metric.INNER_PRODUCT, 10, filter_keys=bad)


# ---- metrics -----------------------------------------------------------------

@pytest.mark.parametrize("bad", ["cosine", "COSINE", "l2", 0, 2, None, TxnMode.READ_ONLY],
                         ids=["cosine", "COSINE", "l2", "int-0", "int-2", "None", "TxnMode"])
def test_bad_metric_is_a_type_error_naming_it(db, bad) -> None:
    with db.begin(RW) as txn:
        txn.upsert_vector(b"a", None, V3, Metric.L2)
        for call in (lambda: txn.upsert_vector(b"k", None, V3, bad), lambda: txn.search_similar(V3, bad, 1),
                     lambda: txn.get_vector(b"a", bad)):
            with pytest.raises(TypeError) as e:
                call()
            assert "metric" in str(e.value) and repr(bad) in str(e.value), str(e.value)
        assert no_vector(txn, b"k")
    if bad is not None:  # None means COSINE
        with pytest.raises(TypeError) as e:
            HnswConfig(3, metric=bad)
        assert "metric" in str(e.value) and repr(bad) in str(e.value)


# ---- index configs -------------------------------------------------------------

@pytest.mark.parametrize("config, exc, needles", [
    (HnswConfig(0), AlopexError, ["invalid parameter", "dim", "0"]),
    (HnswConfig(65536), AlopexError, ["invalid parameter", "dim", "65536"]),
    (HnswConfig(-1), AlopexError, ["invalid parameter", "dim", "-1"]),
    (HnswConfig(2**32), AlopexError, ["invalid parameter", "dim", str(2**32)]),
    (HnswConfig(4, m=1), AlopexError, ["invalid parameter", "m", "1"]),
    (HnswConfig(4, m=101), AlopexError, ["invalid parameter", "m", "101"]),
    (HnswConfig(4, m=-3), AlopexError, ["invalid parameter", "m", "-3"]),
    (HnswConfig(4, m=16, ef_construction=8), AlopexError, ["invalid parameter", "ef_construction", "8"]),
    (HnswConfig(4, ef_construction=-1), AlopexError, ["invalid parameter", "ef_construction", "-1"]),
    (HnswConfig(4.0), TypeError, ["dim", "float"]),
    (HnswConfig(None), TypeError, ["dim", "NoneType"]),
    (HnswConfig(4, m="16"), TypeError, ["m", "str"]),
    (HnswConfig(4, ef_construction=None), TypeError, ["ef_construction", "NoneType"]),
    (HnswConfig(True), TypeError, ["dim", "bool"]),
], ids=["dim-0", "dim-65536", "dim-negative", "dim-2**32", "m-1", "m-101", "m-negative", "ef-below-m",
        "ef-negative", "dim-float", "dim-None", "m-str", "ef-None", "dim-bool"])
def test_create_validates_the_config(db, config, exc, needles) -> None:
    commit_kv(db, {b"k": b"v"})
    with pytest.raises(exc) as e:
        db.create_hnsw_index("bad", config)
    msg = str(e.value)
    for needle in needles:
        assert needle in msg or (needle == "dim" and "dimension" in msg), (needle, msg)
    with pytest.raises(AlopexError, match="bad"):
        db.get_hnsw_stats("bad")  # nothing was created
    assert read(db, b"k") == b"v"


def test_a_bad_config_does_not_replace_an_existing_index(db) -> None:
    db.create_hnsw_index("idx", HnswConfig(3))
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("idx", b"a", V3)
        txn.commit()
    with pytest.raises(AlopexError, match="invalid parameter"):
        db.create_hnsw_index("idx", HnswConfig(3, m=1))
    assert db.get_hnsw_stats("idx").node_count == 1


@pytest.mark.parametrize("config", [2, None, {"dim": 3}, "HnswConfig(3)"], ids=["int", "None", "dict", "str"])
def test_create_rejects_a_config_of_another_type(db, config) -> None:
    with pytest.raises(TypeError, match="config must be an alopex.HnswConfig"):
        db.create_hnsw_index("i", config)


@pytest.mark.parametrize("limit, exc, needle", [(-1, AlopexError, "invalid parameter memory_limit_bytes"),
                                                (2**64, AlopexError, "invalid parameter memory_limit_bytes"),
                                                (1.5, TypeError, "memory_limit_bytes"),
                                                ("1", TypeError, "memory_limit_bytes")],
                         ids=["negative", "2**64", "float", "str"])
def test_bad_embedded_configs(limit, exc, needle) -> None:
    with pytest.raises(exc, match=needle):
        Database.open_with_config(EmbeddedConfig(limit))


def test_open_with_config_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        Database.open_with_config(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("path, exc", [(3, TypeError), (None, TypeError), ("", AlopexError), ("a\0b", AlopexError)],
                         ids=["int", "None", "empty", "NUL"])
def test_bad_database_paths(path, exc) -> None:
    with pytest.raises(exc, match="path"):
        Database.open(path)


@pytest.mark.parametrize("mode", [1, "READ_WRITE", Metric.L2, True], ids=["int", "str", "Metric", "bool"])
def test_begin_rejects_anything_but_a_txn_mode(db, mode) -> None:
    with pytest.raises(TypeError, match="mode"):
        db.begin(mode)  # type: ignore[arg-type]


# ---- READ_ONLY transactions --------------------------------------------------

def test_read_only_transaction_refuses_every_write(db) -> None:
    db.create_hnsw_index("idx", HnswConfig(2))
    commit_kv(db, {b"a": b"0"})
    txn = db.begin(RO)
    v = np.ones(2, dtype=np.float32)
    for call in (lambda: txn.put(b"a", b"1"), lambda: txn.delete(b"a"),
                 lambda: txn.upsert_vector(b"v", None, v, Metric.L2),
                 lambda: txn.upsert_to_hnsw("idx", b"k", v), lambda: txn.delete_from_hnsw("idx", b"k")):
        with pytest.raises(AlopexError) as e:
            call()
        assert e.value.code == "READ_ONLY" and "read-only" in str(e.value).lower().replace("read_only", "read-only")
    assert txn.get(b"a") == b"0"  # still usable after the failures
    assert no_vector(txn, b"v")
    txn.commit()  # committing a read-only transaction is fine
    assert read(db, b"a") == b"0"
    assert db.get_hnsw_stats("idx").node_count == 0


# ---- transactions after commit or rollback -------------------------------------

ENDED_TXN_CALLS = {
    "get": lambda txn, v: txn.get(b"a"),
    "put": lambda txn, v: txn.put(b"a", b"1"),
    "delete": lambda txn, v: txn.delete(b"a"),
    "commit": lambda txn, v: txn.commit(),
    "rollback": lambda txn, v: txn.rollback(),
    "with": lambda txn, v: txn.__enter__(),
    "upsert_vector": lambda txn, v: txn.upsert_vector(b"v", None, v, Metric.L2),
    "search_similar": lambda txn, v: txn.search_similar(v, Metric.L2, 1),
    "get_vector": lambda txn, v: txn.get_vector(b"v", Metric.L2),
    "upsert_to_hnsw": lambda txn, v: txn.upsert_to_hnsw("idx", b"k", v),
    "delete_from_hnsw": lambda txn, v: txn.delete_from_hnsw("idx", b"k"),
}


@pytest.mark.parametrize("call", list(ENDED_TXN_CALLS.values()), ids=list(ENDED_TXN_CALLS))
@pytest.mark.parametrize("end", ["commit", "rollback", "failed-commit", "context-exit", "db-close"])
def test_every_call_on_an_ended_transaction_says_transaction_is_closed(db, end: str, call) -> None:
    db.create_hnsw_index("idx", HnswConfig(2))
    txn = db.begin(RW)
    txn.put(b"a", b"1")
    if end == "commit":
        txn.commit()
    elif end == "rollback":
        txn.rollback()
    elif end == "failed-commit":
        other = db.begin(RW)
        other.put(b"a", b"2")
        other.commit()
        with pytest.raises(AlopexError, match="transaction conflict"):
            txn.commit()
    elif end == "context-exit":
        with txn:
            pass
    else:
        db.close()
    assert txn.closed
    with pytest.raises(AlopexError, match="transaction is closed") as e:
        call(txn, np.ones(2, dtype=np.float32))
    assert e.value.code == "CLOSED"
    assert txn.closed
    if end != "db-close":
        assert read(db, b"a") == {"commit": b"1", "failed-commit": b"2"}.get(end)
        assert db.get_hnsw_stats("idx").node_count == 0


# ---- closed databases ----------------------------------------------------------

def test_closed_database_raises_database_is_closed(db) -> None:
    active = db.begin(RW)
    active.put(b"a", b"1")
    db.close()
    assert db.closed
    for call in (db.begin, lambda: db.begin(RW), db.flush, db.memory_usage, db.close, db.__enter__,
                 lambda: db.create_hnsw_index("i", HnswConfig(2)), lambda: db.drop_hnsw_index("i"),
                 lambda: db.get_hnsw_stats("i"),
                 lambda: db.search_hnsw("i", np.ones(2, dtype=np.float32), 1)):
        with pytest.raises(AlopexError, match="database is closed") as e:
            call()
        assert e.value.code == "CLOSED"
    # close rolled the active transaction back.
    with pytest.raises(AlopexError, match="closed"):
        active.get(b"a")
    with pytest.raises(AlopexError, match="closed"):
        active.commit()


def test_closed_disk_database_changed_nothing(tmp_path) -> None:
    d = Database.open(tmp_path / "db")
    commit_kv(d, {b"a": b"1"})
    txn = d.begin(RW)
    txn.put(b"a", b"2")
    d.close()
    with pytest.raises(AlopexError, match="database is closed"):
        d.close()
    with pytest.raises(AlopexError, match="transaction is closed"):
        txn.commit()
    again = Database.open(tmp_path / "db")
    assert read(again, b"a") == b"1"
    again.close()


@pytest.mark.parametrize("what", ["search_hnsw", "search_similar", "get_vector"])
def test_alopex_close_racing_searches_never_crashes(tmp_path, what: str) -> None:
    rows = np.random.default_rng(4).standard_normal((200, 8)).astype(np.float32)
    for r in range(60):
        d = Database.open(tmp_path / f"db{r % 2}") if r % 3 == 0 else Database.new()
        if r % 3 != 0 or r < 6:
            d.create_hnsw_index("idx", HnswConfig(8, metric=Metric.L2))
            with d.begin(RW) as txn:
                for i, row in enumerate(rows):
                    txn.upsert_vector(b"v%03d" % i, None, row, Metric.L2)
                    txn.upsert_to_hnsw("idx", b"v%03d" % i, row)
                txn.commit()

        def search() -> None:
            if what == "search_hnsw":
                assert len(d.search_hnsw("idx", rows[0], 5)[0]) == 5
                return
            with d.begin() as txn:
                for _ in range(5):
                    if what == "search_similar":
                        assert len(txn.search_similar(rows[0], Metric.L2, 5)) == 5
                    else:
                        assert txn.get_vector(b"v000", Metric.L2).shape == (8,)

        closed = close_racing_searches(d, search, AlopexError, "CLOSED")
        assert set(closed) <= {"database is closed", "transaction is closed"}
