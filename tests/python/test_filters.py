"""Attributes and filters of pomaidb (docs/FILTERS.md): put_batch(attributes=),
update_attributes, schema, search / count / delete / scan with where=, get of
many ids, db[id] and `id in db`.

The property test writes random rows with attributes in random layer mixes
(memtable, frozen segments, merges, deletes, overwrites) and checks every
filtered read against a reference evaluated in the test (SQL's three-valued
logic, row by row) and a numpy brute-force search."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pomaidb

pa = pytest.importorskip("pyarrow")

DIM = 4
STRINGS = ["", "a", "b", "bb", "é", "z"]
TAGS = ["red", "blue", "green"]

# ---- a reference evaluator over generated expressions ------------------------
# An expression is a tuple tree: ("and", l, r), ("or", l, r), ("not", e), or a
# leaf ("cmp", col, op, lit), ("in", col, lits, negated), ("between", col, lo, hi),
# ("null", col, negated), ("contains", col, kind, lits), ("id", op, lit).

COLUMN_TYPES = {"n": "int64", "f": "float64", "b": "bool", "s": "string", "t": "tags"}


def lit_text(v: Any) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def to_text(e: Any) -> str:
    k = e[0]
    if k in ("and", "or"):
        return f"({to_text(e[1])} {k.upper()} {to_text(e[2])})"
    if k == "not":
        return f"NOT ({to_text(e[1])})"
    if k == "cmp":
        return f"{e[1]} {e[2]} {lit_text(e[3])}"
    if k == "in":
        return f"{e[1]} {'NOT ' if e[3] else ''}IN ({', '.join(lit_text(x) for x in e[2])})"
    if k == "between":
        return f"{e[1]} BETWEEN {lit_text(e[2])} AND {lit_text(e[3])}"
    if k == "null":
        return f"{e[1]} IS {'NOT ' if e[2] else ''}NULL"
    if k == "contains":
        if e[2] == "one":
            return f"{e[1]} CONTAINS {lit_text(e[3][0])}"
        return f"{e[1]} CONTAINS {e[2].upper()} ({', '.join(lit_text(x) for x in e[3])})"
    if k == "id":
        return f"id {e[1]} {e[2]}"
    raise AssertionError(e)


OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
       "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def evaluate(e: Any, row: Dict[str, Any], rid: int) -> Optional[bool]:
    """True, False or None (unknown), as SQL."""
    k = e[0]
    if k == "and":
        a, b = evaluate(e[1], row, rid), evaluate(e[2], row, rid)
        if a is False or b is False:
            return False
        return None if a is None or b is None else True
    if k == "or":
        a, b = evaluate(e[1], row, rid), evaluate(e[2], row, rid)
        if a is True or b is True:
            return True
        return None if a is None or b is None else False
    if k == "not":
        a = evaluate(e[1], row, rid)
        return None if a is None else not a
    if k == "id":
        return OPS[e[1]](rid, e[2])
    v = row.get(e[1])
    if k == "null":
        return (v is not None) if e[2] else (v is None)
    if v is None:
        return None
    if k == "cmp":
        return OPS[e[2]](v, e[3])
    if k == "in":
        inside = v in e[2]
        return not inside if e[3] else inside
    if k == "between":
        return e[2] <= v <= e[3]
    if k == "contains":
        if e[2] == "all":
            return all(x in v for x in e[3])
        return any(x in v for x in e[3])
    raise AssertionError(e)


def leaves(draw: Any) -> Any:
    col = draw(st.sampled_from(list(COLUMN_TYPES) + ["id"]))
    if col == "id":
        return ("id", draw(st.sampled_from(list(OPS))), draw(st.integers(0, 60)))
    t = COLUMN_TYPES[col]
    if draw(st.integers(0, 5)) == 0:
        return ("null", col, draw(st.booleans()))
    if t == "int64":
        lit = st.integers(-3, 12)
    elif t == "float64":
        lit = st.one_of(st.integers(-3, 12), st.floats(-3, 12, allow_nan=False, allow_infinity=False))
    elif t == "bool":
        return ("cmp", col, draw(st.sampled_from(["=", "!="])), draw(st.booleans()))
    elif t == "string":
        lit = st.sampled_from(STRINGS)
    else:
        kind = draw(st.sampled_from(["one", "any", "all"]))
        n = 1 if kind == "one" else draw(st.integers(1, 3))
        return ("contains", col, kind, draw(st.lists(st.sampled_from(TAGS + ["x"]), min_size=n, max_size=n)))
    form = draw(st.sampled_from(["cmp", "in", "between"]))
    if form == "cmp":
        return ("cmp", col, draw(st.sampled_from(list(OPS))), draw(lit))
    if form == "in":
        return ("in", col, draw(st.lists(lit, min_size=1, max_size=4)), draw(st.booleans()))
    return ("between", col, draw(lit), draw(lit))


@st.composite
def expressions(draw: Any, depth: int = 3) -> Any:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return leaves(draw)
    k = draw(st.sampled_from(["and", "or", "not"]))
    if k == "not":
        return ("not", draw(expressions(depth - 1)))
    return (k, draw(expressions(depth - 1)), draw(expressions(depth - 1)))


def random_rows(rng: np.random.Generator, n: int, columns: List[str]) -> Dict[str, list]:
    out: Dict[str, list] = {}
    for c in columns:
        vals: list = []
        for _ in range(n):
            if rng.random() < 0.2:
                vals.append(None)
            elif c == "n":
                vals.append(int(rng.integers(-2, 11)))
            elif c == "f":
                vals.append(float(rng.integers(-4, 24)) / 2)
            elif c == "b":
                vals.append(bool(rng.random() < 0.5))
            elif c == "s":
                vals.append(STRINGS[int(rng.integers(len(STRINGS)))])
            else:
                vals.append([TAGS[int(i)] for i in rng.integers(0, 3, size=int(rng.integers(0, 3)))])
        out[c] = vals
    return out


def attributes_arg(cols: Dict[str, list]) -> Dict[str, Any]:
    """The columns as put_batch takes them (typed pyarrow arrays: an all-null
    Python list has no type)."""
    types = {"n": pa.int64(), "f": pa.float64(), "b": pa.bool_(), "s": pa.string(), "t": pa.list_(pa.string())}
    return {c: pa.array(v, type=types[c]) for c, v in cols.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), exprs=st.lists(expressions(), min_size=3, max_size=3),
       steps=st.lists(st.sampled_from(["put", "put", "delete", "freeze", "compact", "update"]), min_size=2, max_size=7))
def test_filtered_reads_match_a_reference_in_random_layer_mixes(tmp_path_factory: Any, seed: int,
                                                                exprs: List[Any], steps: List[str]) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path_factory.mktemp("f") / "db"
    model: Dict[int, Dict[str, Any]] = {}
    vectors: Dict[int, np.ndarray] = {}
    with pomaidb.open_db(path, dim=DIM, metric="l2", adaptive_threshold=1_000_000) as db:
        # every column exists from the first batch on (filters name them all)
        for step in ["put_all"] + steps:
            if step in ("put", "put_all"):
                n = int(rng.integers(1, 40))
                ids = rng.integers(0, 60, size=n).astype(np.uint64)
                vecs = rng.standard_normal((n, DIM)).astype(np.float32)
                names = list(COLUMN_TYPES) if step == "put_all" else \
                    [c for c in COLUMN_TYPES if rng.random() < 0.6]
                cols = random_rows(rng, n, names)
                pomaidb.put_batch(db, ids, vecs, attributes=attributes_arg(cols))
                for i, rid in enumerate(ids.tolist()):
                    model[rid] = {c: cols[c][i] for c in names}
                    vectors[rid] = vecs[i]
            elif step == "delete":
                gone = rng.integers(0, 64, size=8).tolist()
                pomaidb.delete(db, gone)
                for rid in gone:
                    model.pop(rid, None)
            elif step == "update" and model:
                ids = sorted(model)[: int(rng.integers(1, len(model) + 1))]
                cols = random_rows(rng, len(ids), ["n", "s"])
                pomaidb.update_attributes(db, ids, attributes_arg(cols))
                for i, rid in enumerate(ids):
                    model[rid]["n"], model[rid]["s"] = cols["n"][i], cols["s"][i]
            elif step == "freeze":
                pomaidb.freeze(db)
            elif step == "compact":
                pomaidb.compact(db)
        query = rng.standard_normal(DIM).astype(np.float32)
        for e in exprs:
            text = to_text(e)
            want = sorted(rid for rid, row in model.items() if evaluate(e, row, rid) is True)
            assert pomaidb.count(db, where=text) == len(want), text
            got = pomaidb.scan(db, where=text, batch_size=7).to_arrow()
            assert got.column("id").to_pylist() == want, text
            for c in COLUMN_TYPES:
                assert got.column(c).to_pylist() == [model[rid].get(c) for rid in want], (text, c)
            # exact search (no graph: adaptive_threshold is above every segment)
            ids, scores = pomaidb.search(db, query, topk=5, where=text)
            k = min(5, len(want))
            if want:
                d = np.array([-float(np.sum((vectors[rid] - query) ** 2)) for rid in want])
                order = np.lexsort((np.array(want), -d))[:k]
                assert ids[0, :k].tolist() == [want[i] for i in order], text
                np.testing.assert_allclose(scores[0, :k], d[order], rtol=1e-4, atol=1e-4)
            assert (ids[0, k:] == np.iinfo(np.uint64).max).all(), text
        # delete by the last expression: exactly the passing rows go
        text = to_text(exprs[-1])
        want = [rid for rid, row in model.items() if evaluate(exprs[-1], row, rid) is True]
        assert pomaidb.delete(db, where=text) == len(want)
        assert pomaidb.count(db) == len(model) - len(want)
        assert pomaidb.count(db, where=text) == 0


# ---- the API around it ---------------------------------------------------------


def fill(db: pomaidb.Database, n: int = 100) -> np.ndarray:
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    pomaidb.put_batch(db, np.arange(n), vecs, metadata=[b"m%d" % i for i in range(n)], attributes={
        "year": np.arange(n) % 10 + 2000,
        "score": np.linspace(0, 1, n),
        "lang": ["en" if i % 3 else "fr" for i in range(n)],
        "tags": [["a", "b"] if i % 2 else [] for i in range(n)],
        "flag": np.arange(n) % 2 == 0,
    })
    return vecs


def test_schema_get_many_getitem_contains(open_db: Any) -> None:
    db = open_db(DIM)
    vecs = fill(db)
    assert pomaidb.schema(db) == {"flag": "bool", "lang": "string", "score": "float64", "tags": "tags",
                                  "year": "int64"}
    got = pomaidb.get(db, [5, 1000, 3, 5])
    assert got["found"].tolist() == [True, False, True, True]
    np.testing.assert_array_equal(got["vector"][[0, 2, 3]], vecs[[5, 3, 5]])
    assert not got["vector"][1].any()
    assert got["metadata"][0] == b"m5" and got["metadata"][1] is None
    assert got["year"][0] == 2005 and got["year"].mask[1]
    assert got["lang"].tolist() == ["en", None, "fr", "en"]
    vec, meta = db[7]
    np.testing.assert_array_equal(vec, vecs[7])
    assert meta == b"m7"
    with pytest.raises(KeyError):
        db[1000]
    assert 7 in db and 1000 not in db and "7" not in db and -1 not in db


def test_update_attributes_keeps_vectors_metadata_and_other_columns(open_db: Any) -> None:
    db = open_db(DIM)
    vecs = fill(db)
    pomaidb.freeze(db)
    pomaidb.update_attributes(db, [1, 2], {"year": [1990, None]})
    got = pomaidb.get(db, [1, 2])
    assert got["year"][0] == 1990 and got["year"].mask[1]
    assert got["lang"].tolist() == ["en", "en"]
    np.testing.assert_array_equal(got["vector"], vecs[[1, 2]])
    assert got["metadata"].tolist() == [b"m1", b"m2"]
    with pytest.raises(pomaidb.PomaiDBError) as e:
        pomaidb.update_attributes(db, [3, 5000], {"year": [1, 2]})
    assert e.value.code == pomaidb.StatusCode.NOT_FOUND and "5000" in str(e.value)
    assert pomaidb.get(db, [3])["year"][0] == 2003  # nothing changed


def test_scan_columns_batches_and_conversions(open_db: Any) -> None:
    db = open_db(DIM)
    vecs = fill(db)
    s = pomaidb.scan(db, where="lang = 'fr'", columns=["year"], batch_size=10)
    batches = list(s)
    assert all(b.num_rows <= 10 for b in batches)
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["id", "vector", "metadata", "year"]
    assert table.column("id").to_pylist() == list(range(0, 100, 3))
    arrays = pomaidb.scan(db, vectors=True, metadata=False, columns=[]).to_numpy()
    assert set(arrays) == {"id", "vector"}
    np.testing.assert_array_equal(arrays["vector"], vecs)
    pl = pytest.importorskip("polars")
    df = pomaidb.scan(db, where="flag").to_polars()
    assert isinstance(df, pl.DataFrame) and df.height == 50


@pytest.mark.parametrize("where, fragment", [
    ("year <", "at 6"),
    ("year = 'x'", "year"),
    ("nope = 1", "nope"),
    ("year = 1e400", "1e400"),
    ("(year = 1", "expected"),
    ("lang CONTAINS 'a'", "lang"),
    ("year IN ()", "IN"),
    ("'unterminated", "unterminated"),
])
def test_bad_filters_are_invalid_argument_naming_the_problem(open_db: Any, where: str, fragment: str) -> None:
    db = open_db(DIM)
    fill(db)
    for call in (lambda: pomaidb.count(db, where=where),
                 lambda: pomaidb.search(db, np.zeros(DIM), where=where),
                 lambda: pomaidb.scan(db, where=where),
                 lambda: pomaidb.delete(db, where=where)):
        with pytest.raises(pomaidb.InvalidArgumentError) as e:
            call()
        assert fragment in str(e.value), str(e.value)
    assert pomaidb.count(db) == 100


def test_limits_of_expressions(open_db: Any) -> None:
    db = open_db(DIM)
    fill(db)
    big_in = "year IN (" + ", ".join(str(i) for i in range(120_000)) + ")"
    assert len(big_in) < 1 << 20
    assert pomaidb.count(db, where=big_in) == 100
    with pytest.raises(pomaidb.InvalidArgumentError, match="1048576"):
        pomaidb.count(db, where="year = 1 OR " * 100_000 + "year = 2")
    with pytest.raises(pomaidb.InvalidArgumentError, match="64"):
        pomaidb.count(db, where="NOT " * 100 + "flag")


def test_type_conflicts_and_bad_attributes_store_nothing(open_db: Any) -> None:
    db = open_db(DIM)
    fill(db)
    v = np.zeros((1, DIM), dtype=np.float32)
    with pytest.raises(pomaidb.InvalidArgumentError, match="'year' is int64"):
        pomaidb.put_batch(db, [500], v, attributes={"year": ["x"]})
    with pytest.raises(pomaidb.InvalidArgumentError, match="NaN"):
        pomaidb.put_batch(db, [500], v, attributes={"score": [math.nan]})
    with pytest.raises(pomaidb.InvalidArgumentError, match="id"):
        pomaidb.put_batch(db, [500], v, attributes={"id": [1]})
    assert 500 not in db and pomaidb.count(db) == 100


def test_where_ids_allow_list_and_delete_where(open_db: Any) -> None:
    db = open_db(DIM)
    fill(db)
    allow = np.array([1, 2, 3, 50, 99, 12345], dtype=np.uint64)
    assert pomaidb.count(db, where_ids=allow) == 5
    assert pomaidb.count(db, where="flag", where_ids=allow) == 2
    ids, _ = pomaidb.search(db, np.zeros(DIM), topk=10, where_ids=allow)
    assert sorted(x for x in ids[0].tolist() if x != 2**64 - 1) == [1, 2, 3, 50, 99]
    assert pomaidb.delete(db, where="year < 2002") == 20
    assert pomaidb.count(db) == 80
    with pytest.raises(pomaidb.InvalidArgumentError, match="needs a filter"):
        pomaidb.delete(db, where="")


def test_scan_after_close_raises_closed(open_db: Any) -> None:
    db = open_db(DIM)
    fill(db)
    s = pomaidb.scan(db, batch_size=10)
    next(s)
    db.close()
    with pytest.raises(pomaidb.PomaiDBError) as e:
        next(s)
    assert e.value.code == pomaidb.StatusCode.CLOSED
