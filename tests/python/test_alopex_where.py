"""Typed attributes on HNSW index entries (`upsert_to_hnsw(attributes=)`) and
the filter of `search_hnsw(where=)` (docs/FILTERS.md), against a pure-Python
reference: the filter evaluated with SQL's three-valued logic, the top k by
brute force.

The property test writes random entries with random attributes of every type
(some left out, some given as numpy scalars), searches with random filters of
a small grammar over them after the first commit (the first search builds the
segment graph), after overwrites, deletes and new entries in later
transactions (memtable over segment), and on disk after a flush and after a
reopen. Every hit must pass the filter, be live and carry its own score and
metadata; min(k, passing) come back; the hits are the true top k when every
passing entry is wanted (k >= passing), and at least 90% of it over a
stage's other searches. (No search reads the memtable alone: the first one
flushes the committed entries into a segment with a graph.)
"""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alopex
import alopex._alopex
from alopex import AlopexError, Database, HnswConfig, Metric, TxnMode
from alopex_helpers import db, db_factory, kind, reference_scores  # noqa: F401  (fixtures)

RW = TxnMode.READ_WRITE
DIM = 8

# ---- the attributes the property test writes ----------------------------
#
# Each attribute keeps one type in every entry (its type is fixed by its
# first write; a commit giving it another fails, tested on its own below).

INTS = [-5, -1, 0, 1, 2, 3, 7, 20, 2**63 - 1, -(2**63)]
FLOATS = [-1.5, -0.0, 0.0, 0.1, 2.5, 3.0, 1e10, math.inf, -math.inf]
STRINGS = ["", "de", "en", "fr", "é", "o'k", "Z", "日本"]
TAGS = ["a", "b", "c", "ü"]
# A name that needs quoting in a filter: it has a space.
QUOTED = "my col"
NAMES = ("n", "w", "flag", "lang", "tags", QUOTED)

Attrs = Dict[str, Any]  # the reference's values: Python bool, int, float, str, list of str


def random_attrs(rng: np.random.Generator, full: bool = False) -> Tuple[Dict[str, Any], Attrs]:
    """(the attributes= argument, what the reference keeps). An attribute is
    left out a quarter of the time (absent or None); ints, floats and bools
    are sometimes numpy scalars."""
    given_: Dict[str, Any] = {}
    ref: Attrs = {}
    for name in NAMES:
        r = rng.random()
        if not full and r < 0.25:
            if r < 0.125:
                given_[name] = None
            continue
        if name in ("n", QUOTED):
            v: Any = int(INTS[rng.integers(len(INTS))])
            ref[name] = v
            if rng.random() < 0.3:
                v = np.int64(v)
            given_[name] = v
        elif name == "w":
            f = FLOATS[rng.integers(len(FLOATS))]
            if rng.random() < 0.3:
                f32 = np.float32(f)
                given_[name], ref[name] = f32, float(f32)
            else:
                given_[name], ref[name] = f, f
        elif name == "flag":
            b = bool(rng.random() < 0.5)
            given_[name], ref[name] = (np.bool_(b) if rng.random() < 0.3 else b), b
        elif name == "lang":
            s = STRINGS[rng.integers(len(STRINGS))]
            given_[name], ref[name] = s, s
        else:
            tags = [TAGS[i] for i in rng.integers(len(TAGS), size=rng.integers(0, 4))]
            given_[name] = tuple(tags) if rng.random() < 0.3 else list(tags)
            ref[name] = tags
    return given_, ref


# ---- filters: text and a reference predicate (True, False or None) -------

Pred = Callable[[Attrs], Optional[bool]]
Filter = Tuple[str, Pred]


def num_lit(v: Any) -> str:
    return str(v) if isinstance(v, int) else repr(v)


def str_lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def col_ref(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if name == QUOTED else name


CMP: Dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<>": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def on(name: str, f: Callable[[Any], bool]) -> Pred:
    """A predicate that is unknown (None) when the attribute is null."""
    def pred(a: Attrs) -> Optional[bool]:
        v = a.get(name)
        return None if v is None else f(v)
    return pred


def ordered(name: str, literals: st.SearchStrategy, fmt: Callable[[Any], str]) -> st.SearchStrategy:
    """cmp, IN, BETWEEN over a numeric or string attribute."""
    c = col_ref(name)
    cmp = st.tuples(st.sampled_from(sorted(CMP)), literals).map(
        lambda t: (f"{c} {t[0]} {fmt(t[1])}", on(name, lambda v, t=t: CMP[t[0]](v, t[1]))))
    in_ = st.tuples(st.booleans(), st.lists(literals, min_size=1, max_size=4)).map(
        lambda t: (f"{c} {'NOT ' if t[0] else ''}IN ({', '.join(fmt(x) for x in t[1])})",
                   on(name, lambda v, t=t: (v in t[1]) != t[0])))
    between = st.tuples(st.booleans(), literals, literals).map(
        lambda t: (f"{c} {'NOT ' if t[0] else ''}BETWEEN {fmt(t[1])} AND {fmt(t[2])}",
                   on(name, lambda v, t=t: (t[1] <= v <= t[2]) != t[0])))
    return st.one_of(cmp, in_, between)


def is_null(name: str) -> st.SearchStrategy:
    return st.booleans().map(lambda neg: (f"{col_ref(name)} IS {'NOT ' if neg else ''}NULL",
                                          lambda a: (a.get(name) is None) != neg))


INT_LITS = st.one_of(st.sampled_from(INTS + [4, 21, -6]), st.just(10**30), st.just(-(10**30)),
                     st.sampled_from([2.5, -0.5, 0.1, 2000.0]))
FLOAT_LITS = st.one_of(st.sampled_from([f for f in FLOATS if math.isfinite(f)] + [1.0, -2.0, 1e300]),
                       st.sampled_from([0, 3, -1]))
STR_LITS = st.sampled_from(STRINGS + ["zz", "d"])
TAG_LITS = st.sampled_from(TAGS + ["zz"])

PREDICATES: st.SearchStrategy = st.one_of(
    ordered("n", INT_LITS, num_lit), is_null("n"),
    ordered(QUOTED, INT_LITS, num_lit),
    ordered("w", FLOAT_LITS, num_lit), is_null("w"),
    st.just(("flag", on("flag", lambda v: v))),
    st.tuples(st.sampled_from(["=", "!=", "<>"]), st.booleans()).map(
        lambda t: (f"flag {t[0]} {'TRUE' if t[1] else 'false'}", on("flag", lambda v, t=t: CMP[t[0]](v, t[1])))),
    is_null("flag"),
    ordered("lang", STR_LITS, str_lit), is_null("lang"),
    TAG_LITS.map(lambda s: (f"tags CONTAINS {str_lit(s)}", on("tags", lambda v, s=s: s in v))),
    st.tuples(st.sampled_from(["ANY", "all"]), st.lists(TAG_LITS, min_size=1, max_size=3)).map(
        lambda t: (f"tags CONTAINS {t[0]} ({', '.join(str_lit(s) for s in t[1])})",
                   on("tags", lambda v, t=t: (any if t[0] == "ANY" else all)(s in v for s in t[1])))),
    is_null("tags"),
)


def and3(a: Optional[bool], b: Optional[bool]) -> Optional[bool]:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def or3(a: Optional[bool], b: Optional[bool]) -> Optional[bool]:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def combine(children: st.SearchStrategy) -> st.SearchStrategy:
    both = st.tuples(children, children)
    return st.one_of(
        both.map(lambda t: (f"({t[0][0]}) AND ({t[1][0]})", lambda a, t=t: and3(t[0][1](a), t[1][1](a)))),
        both.map(lambda t: (f"{t[0][0]} or {t[1][0]}", lambda a, t=t: or3(t[0][1](a), t[1][1](a)))),
        children.map(lambda c: (f"NOT ({c[0]})",
                                lambda a, c=c: None if c[1](a) is None else not c[1](a))),
    )


FILTERS: st.SearchStrategy = st.recursive(PREDICATES, combine, max_leaves=5)


# ---- the reference and the checks ----------------------------------------

class Model:
    """The committed entries: key -> (vector, reference attributes)."""

    def __init__(self) -> None:
        self.entries: Dict[bytes, Tuple[np.ndarray, Attrs]] = {}

    def upsert(self, txn: alopex.Transaction, rng: np.random.Generator, key: bytes, full: bool = False) -> None:
        vec = rng.standard_normal(DIM).astype(np.float32)
        given_, ref = random_attrs(rng, full)
        txn.upsert_to_hnsw("ix", key, vec, b"md:" + key, attributes=given_)
        self.entries[key] = (vec, ref)


def check(db: Database, model: Model, metric: Metric, filters: List[Filter], rng: np.random.Generator,
          stage: str) -> None:
    keys = sorted(model.entries)
    data = np.stack([model.entries[k][0] for k in keys])
    found_all = wanted_all = 0  # over the searches where not every passing entry is wanted
    for text, pred in filters:
        passing = np.array([pred(model.entries[k][1]) is True for k in keys])
        for k in (1, 10, 40):
            q = rng.standard_normal(DIM).astype(np.float32)
            results, _ = db.search_hnsw("ix", q, k, ef_search=64, where=text)
            where = f"{stage}: where {text!r}, k {k}"
            scores = reference_scores(data, q, metric)
            want = min(k, int(passing.sum()))
            assert len(results) == want, f"{where}: {len(results)} hits, {int(passing.sum())} pass"
            got = [r.key for r in results]
            assert len(set(got)) == len(got), f"{where}: a key twice in {got}"
            true_scores = np.sort(scores[passing])[::-1]
            kth = true_scores[want - 1] if want else math.inf
            found = 0
            for r in results:
                assert r.key in model.entries, f"{where}: {r.key!r} is not live"
                i = keys.index(r.key)
                assert passing[i], f"{where}: {r.key!r} {model.entries[r.key][1]} fails the filter"
                assert r.metadata == b"md:" + r.key
                assert r.score == pytest.approx(scores[i], rel=1e-4, abs=1e-4), where
                found += scores[i] >= kth - 1e-4 * max(1.0, abs(kth))
            assert [r.score for r in results] == sorted((r.score for r in results), reverse=True), where
            if want == int(passing.sum()):
                assert found == want, f"{where}: every passing entry is wanted, {found} of {want} found"
            else:
                found_all += found
                wanted_all += want
    assert found_all * 10 >= wanted_all * 9, f"{stage}: recall {found_all}/{wanted_all}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 600), disk=st.booleans(),
       metric=st.sampled_from([Metric.L2, Metric.COSINE]),
       filters=st.lists(FILTERS, min_size=1, max_size=4))
def test_search_where_matches_a_reference(seed: int, n: int, disk: bool, metric: Metric,
                                          filters: List[Filter]) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(tmp + "/db") if disk else Database.new()
        try:
            db.create_hnsw_index("ix", HnswConfig(DIM, m=8, ef_construction=64, metric=metric))
            model = Model()
            with db.begin(RW) as txn:
                # The anchor has every attribute, so each one exists in every stage.
                model.upsert(txn, rng, b"anchor", full=True)
                for i in range(n):
                    model.upsert(txn, rng, b"k%d" % i)
                txn.commit()
            check(db, model, metric, filters, rng, "first search (builds the graph)")

            # A later transaction: overwrites (new vectors and attributes),
            # deletes and new entries, in the memtable over the segment.
            with db.begin(RW) as txn:
                for i in range(n):
                    r = rng.random()
                    key = b"k%d" % i
                    if r < 0.2:
                        model.upsert(txn, rng, key)
                    elif r < 0.35:
                        txn.delete_from_hnsw("ix", key)
                        model.entries.pop(key, None)
                for i in range(n, n + n // 4):
                    model.upsert(txn, rng, b"k%d" % i)
                txn.commit()
            check(db, model, metric, filters, rng, "memtable over segment")
            if not disk:
                return
            db.flush()
            check(db, model, metric, filters, rng, "flushed")
            db.close()
            db = Database.open(tmp + "/db")
            check(db, model, metric, filters, rng, "reopened")
        finally:
            if not db.closed:
                db.close()


# ---- attribute values and types ------------------------------------------

def one_entry(db: Database, attributes: Any, dim: int = 2) -> None:
    db.create_hnsw_index("ix", HnswConfig(dim, metric=Metric.L2))
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"e", [0.0] * dim, attributes=attributes)
        txn.commit()


def keys(db: Database, where: Optional[str], k: int = 10) -> List[bytes]:
    return sorted(r.key for r in db.search_hnsw("ix", [0.0, 0.0], k, where=where)[0])


def test_every_type_and_numpy_scalars_filter_as_their_python_kind(db: Database) -> None:
    one_entry(db, {
        "i": 2**63 - 1, "j": -(2**63), "k": np.int32(-7), "u": np.uint64(2**63 - 1), "b": np.bool_(True),
        "f": np.float32(0.5), "g": np.float64(-2.25), "h": np.float16(1.5), "inf": math.inf,
        "s": np.str_("straße"), "e": "", "t": ("x", "y", "x"), "none_tags": [], "gone": None,
        "long": "z" * 65535, "n" * 255: 1,
    })
    for where in ["i = 9223372036854775807", "j = -9223372036854775808", "j < -1e18", "k = -7",
                  "u > 9.2e18", "b", "b = true", "f = 0.5", "g BETWEEN -2.25 AND -2.25", "h = 1.5",
                  "inf > 1e308", "s = 'straße'", "e = ''", "e IS NOT NULL", "t CONTAINS ALL ('x', 'y')",
                  "none_tags IS NOT NULL", "long > 'z'", f"{'n' * 255} = 1", "i > 1e30 OR k < 0",
                  '"s" = \'straße\'']:
        assert keys(db, where) == [b"e"], where
    for where in ["none_tags CONTAINS ANY ('x', 'y')", "t CONTAINS 'z'", "NOT b", "b = false",
                  "s != 'straße'", "e IS NULL", "i < 1e30 AND k > 0"]:
        assert keys(db, where) == [], where
    # An attribute given only as None was left out: no entry has it.
    with pytest.raises(AlopexError, match="no column 'gone'") as e:
        keys(db, "gone IS NULL")
    assert e.value.code == "INVALID_ARGUMENT"


def test_an_upsert_replaces_the_attributes_and_none_or_nothing_leaves_them_out(db: Database) -> None:
    db.create_hnsw_index("ix", HnswConfig(2, metric=Metric.L2))
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": 1, "y": "p"})
        txn.upsert_to_hnsw("ix", b"b", [0.0, 1.0], attributes={"x": 2, "y": None})
        txn.upsert_to_hnsw("ix", b"c", [1.0, 0.0], b"meta")  # no attributes
        txn.upsert_to_hnsw("ix", b"d", [1.0, 1.0], attributes={})
        txn.commit()
    assert keys(db, "y IS NULL") == [b"b", b"c", b"d"]
    assert keys(db, "x != 5") == [b"a", b"b"]  # a null fails every comparison
    assert keys(db, "NOT (x = 1)") == [b"b"]
    assert keys(db, None) == keys(db, "") == keys(db, "  ") == [b"a", b"b", b"c", b"d"]
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"y": "q"})  # x is gone
        txn.commit()
    assert keys(db, "x IS NULL") == [b"a", b"c", b"d"]
    assert keys(db, "y = 'q'") == [b"a"]
    assert keys(db, "y IN ('p')") == []


BAD_TYPES = [
    ({"x": object()}, r"attribute 'x' must be None, bool, int, float, str or a list or tuple of str \(tags\), got object"),
    ({"x": b"bytes"}, "attribute 'x' must be .* got bytes"),
    ({"x": {"a": 1}}, "attribute 'x' must be .* got dict"),
    ({"x": {"a"}}, "attribute 'x' must be .* got set"),
    ({"x": 1 + 2j}, "attribute 'x' must be .* got complex"),
    ({"x": np.datetime64(1, "s")}, "attribute 'x' must be .* got datetime64"),
    ({"x": np.array([1, 2])}, "attribute 'x' must be .* got ndarray"),
    ({"ok": 1, "x": ["a", 3]}, "attribute 'x': tag 1 must be a str, got int"),
    ({"x": [None]}, "attribute 'x': tag 0 must be a str, got NoneType"),
    ({1: 2}, "an attribute name must be a str, got int 1"),
    ([("x", 1)], "attributes must be a dict of attribute name -> value or None, got list"),
    ("x=1", "attributes must be a dict .* got str"),
]

BAD_VALUES = [
    ({"x": 2**63}, "attribute 'x': 9223372036854775808 is outside the int64 range"),
    ({"x": -(2**63) - 1}, "attribute 'x': -9223372036854775809 is outside the int64 range"),
    ({"x": np.uint64(2**64 - 1)}, "attribute 'x': 18446744073709551615 is outside the int64 range"),
    ({"w": math.nan}, "attribute 'w' is NaN"),
    ({"w": np.float32("nan")}, "attribute 'w' is NaN"),
    ({"id": 1}, "attribute column 'id' is reserved"),
    ({"": 1}, "attribute column '' is 0 bytes"),
    ({"n" * 256: 1}, "is 256 bytes"),
    ({"a\0b": 1}, "attribute name 'a\\\\x00b' contains a NUL character"),
    ({"\ud800": 1}, "attribute name '\\\\ud800' cannot be encoded as UTF-8"),
    ({"s": "\udc80"}, "attribute 's': string '\\\\udc80' cannot be encoded as UTF-8"),
    ({"t": ["ok", "\ud800"]}, "attribute 't': tag 1 '\\\\ud800' cannot be encoded as UTF-8"),
    ({"s": "x" * 65536}, "attribute column 's' row 0 is 65536 bytes"),
    ({"t": ["x" * 65536]}, "attribute column 't'"),
    ({f"c{i}": i for i in range(257)}, r"column_count is 257 \(at most 256\)"),
]


@pytest.mark.parametrize("error, attributes, message", [(TypeError, a, m) for a, m in BAD_TYPES]
                         + [(AlopexError, a, m) for a, m in BAD_VALUES])
def test_bad_attributes_are_refused_and_stage_nothing(db: Database, error: type, attributes: Any,
                                                      message: str) -> None:
    db.create_hnsw_index("ix", HnswConfig(2, metric=Metric.L2))
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"good", [0.0, 0.0], attributes={"x": 0, "w": 1.0})
        with pytest.raises(error, match=message) as e:
            txn.upsert_to_hnsw("ix", b"bad", [1.0, 1.0], b"md", attributes=attributes)
        if error is AlopexError:
            assert e.value.code == "INVALID_ARGUMENT"
        # The transaction goes on; the bad upsert left nothing behind.
        txn.upsert_to_hnsw("ix", b"good2", [1.0, 0.0])
        txn.commit()
    assert keys(db, None) == [b"good", b"good2"]
    assert keys(db, "x = 0") == [b"good"]


def test_bad_attributes_of_a_key_already_staged_keep_the_staged_version(db: Database) -> None:
    db.create_hnsw_index("ix", HnswConfig(2, metric=Metric.L2))
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": 1})
        with pytest.raises(AlopexError, match="NaN"):
            txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": 2, "w": math.nan})
        with pytest.raises(TypeError):
            txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": 3, "y": object()})
        txn.commit()
    assert keys(db, "x = 1") == [b"a"]
    assert keys(db, "x > 1") == []


def test_attributes_in_a_read_only_or_ended_transaction(db: Database) -> None:
    db.create_hnsw_index("ix", HnswConfig(2))
    with db.begin() as txn:
        with pytest.raises(AlopexError) as e:
            txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": 1})
        assert e.value.code == "READ_ONLY"
    txn = db.begin(RW)
    txn.rollback()
    with pytest.raises(AlopexError, match="transaction is closed"):
        txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": 1})


# ---- bad filters -----------------------------------------------------------

def test_bad_filters_are_invalid_argument(db: Database) -> None:
    db.create_hnsw_index("ix", HnswConfig(2, metric=Metric.L2))
    # An attribute exists once an entry has it: an empty index has none.
    with pytest.raises(AlopexError, match="no column 'year' \\(the collection has no columns\\)"):
        db.search_hnsw("ix", [0.0, 0.0], 5, where="year = 2020")
    assert keys(db, None) == keys(db, "") == []
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"year": 2020, "lang": "de", "flag": True})
        txn.commit()
    cases = {
        "year = ": "filter: at 7: expected a literal",
        "year = 1 AND": "filter: at",
        "(year = 1": "filter: at",
        "lang = 'de": "filter: at",
        "nope = 1": "filter: at 0: no column 'nope' (columns: flag, lang, year)",
        "id = 1": "have byte keys",
        "ID IN (1, 2)": "have byte keys",
        "year = 'x'": "column 'year' is int64",
        "flag < true": "column 'flag' is bool",
        "lang": "lang",
        "year = 1e400": "filter: at",
        "year = 1\0": "invalid parameter where: a NUL character at byte 8",
        "lang = '\ud800'": "invalid parameter where: cannot be encoded as UTF-8",
    }
    for where, message in cases.items():
        with pytest.raises(AlopexError) as e:
            db.search_hnsw("ix", [0.0, 0.0], 5, where=where)
        assert message in str(e.value), (where, str(e.value))
        assert e.value.code == "INVALID_ARGUMENT", where
    for where in (5, b"year = 2020", ["year = 2020"]):
        with pytest.raises(TypeError, match=f"where must be a str or None, got {type(where).__name__}"):
            db.search_hnsw("ix", [0.0, 0.0], 5, where=where)  # type: ignore[arg-type]
    with pytest.raises(AlopexError) as e:
        db.search_hnsw("missing", [0.0, 0.0], 5, where="year = 2020")
    assert e.value.code == "NOT_FOUND"
    assert keys(db, "year = 2020 AND lang = 'de' AND flag") == [b"a"]


def test_an_attributes_type_is_fixed_by_its_first_write(db: Database) -> None:
    db.create_hnsw_index("ix", HnswConfig(2, metric=Metric.L2))
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": 1})
        txn.commit()
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"b", [1.0, 0.0], attributes={"x": "one", "y": 2})
        with pytest.raises(AlopexError, match="attribute 'x' of index entry 'b' is string, but the index's entries "
                                              "hold it as int64") as e:
            txn.commit()
        assert e.value.code == "INVALID_ARGUMENT"
    assert keys(db, None) == [b"a"]  # nothing of the failed commit
    db.search_hnsw("ix", [0.0, 0.0], 1)  # a's version goes into a segment with a graph
    for rewrite in (True, False):  # neither rewriting nor deleting a frees the type
        with db.begin(RW) as txn:
            if rewrite:
                txn.upsert_to_hnsw("ix", b"a", [0.0, 0.0], attributes={"x": "one"})
            else:
                txn.delete_from_hnsw("ix", b"a")
                txn.upsert_to_hnsw("ix", b"c", [0.0, 0.0], attributes={"x": "one"})
            with pytest.raises(AlopexError, match="hold it as int64"):
                txn.commit()
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("ix", b"b", [1.0, 0.0], attributes={"x": 2, "y": 2})
        txn.commit()
    assert keys(db, "x >= 1") == [b"a", b"b"]
    assert keys(db, "y = 2") == [b"b"]


def test_k_and_min_passing(db: Database) -> None:
    db.create_hnsw_index("ix", HnswConfig(2, metric=Metric.L2))
    with db.begin(RW) as txn:
        for i in range(30):
            txn.upsert_to_hnsw("ix", b"%02d" % i, [float(i), 0.0], attributes={"i": i, "even": i % 2 == 0})
        txn.commit()
    res, stats = db.search_hnsw("ix", [0.0, 0.0], 4, where="even AND i >= 10")
    assert [r.key for r in res] == [b"10", b"12", b"14", b"16"]
    assert stats.node_count == 30
    assert len(db.search_hnsw("ix", [0.0, 0.0], 100, where="even")[0]) == 15
    assert db.search_hnsw("ix", [0.0, 0.0], 0, where="even")[0] == []
    assert db.search_hnsw("ix", [0.0, 0.0], 5, where="i < 0")[0] == []


# ---- both faces, and alopex without numpy -----------------------------------

def test_both_faces_take_attributes_and_where() -> None:
    for face in (alopex, alopex._alopex):
        up = inspect.signature(face.Transaction.upsert_to_hnsw).parameters
        assert list(up)[1:] == ["name", "key", "vector", "metadata", "attributes"]
        assert up["attributes"].default is None
        search = inspect.signature(face.Database.search_hnsw).parameters
        assert list(search)[1:] == ["name", "query", "k", "ef_search", "progress", "where"]
        assert search["where"].default is None
    assert alopex._alopex.database.Database is alopex.Database


NO_NUMPY = r'''
import sys
sys.modules["numpy"] = None  # `import numpy` now raises ImportError
from alopex import AlopexError, Database, HnswConfig, TxnMode
from alopex import _core

# The one-row columns are built with cffi alone.
cols, n, keep = _core._attribute_columns({"i": -3, "f": 0.5, "b": True, "s": "héllo", "t": ["x", "yz"],
                                          "gone": None})
ffi = _core.ffi
assert n == 6
assert [ffi.string(cols[j].name).decode() for j in range(n)] == ["i", "f", "b", "s", "t", "gone"]
assert [cols[j].type for j in range(n)] == [1, 2, 3, 4, 5, 1]
assert ffi.cast("int64_t*", cols[0].values)[0] == -3
assert ffi.cast("double*", cols[1].values)[0] == 0.5
assert ffi.cast("uint8_t*", cols[2].values)[0] == 1
assert ffi.buffer(ffi.cast("char*", cols[3].values), cols[3].offsets[1])[:] == "héllo".encode()
assert [cols[4].offsets[0], cols[4].offsets[1]] == [0, 2]
assert [cols[4].tag_offsets[j] for j in range(3)] == [0, 1, 3]
assert ffi.buffer(ffi.cast("char*", cols[4].values), 3)[:] == b"xyz"
assert cols[5].validity[0] == 0 and all(cols[j].validity == ffi.NULL for j in range(5))

db = Database.new()
db.create_hnsw_index("idx", HnswConfig(2))
txn = db.begin(TxnMode.READ_WRITE)
try:
    txn.upsert_to_hnsw("idx", b"a", [1.0, 0.0], attributes={"x": object()})
except TypeError as e:
    assert "attribute 'x'" in str(e), str(e)
else:
    raise SystemExit("a bad attribute was taken")
try:
    db.search_hnsw("idx", [1.0, 0.0], 1, where=3)
except TypeError as e:
    assert "where must be a str" in str(e), str(e)
else:
    raise SystemExit("a bad where was taken")
for call in (lambda: txn.upsert_to_hnsw("idx", b"a", [1.0, 0.0], attributes={"x": 1}),
             lambda: db.search_hnsw("idx", [1.0, 0.0], 1, where="x = 1")):
    try:
        call()
    except AlopexError as e:
        assert "pip install numpy" in str(e), str(e)
    else:
        raise SystemExit("a vector call worked without numpy")
txn.rollback()
db.close()
assert sys.modules["numpy"] is None
print("ok")
'''


def test_attributes_need_no_numpy() -> None:
    out = subprocess.run([sys.executable, "-c", NO_NUMPY], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == ["ok"]


def test_graph_walks_under_filters_of_every_selectivity(db_factory: Callable[..., Database], kind: str) -> None:
    """4,000 entries in a segment graph plus newer versions in the memtable:
    filters passing 0.5% to 90% of them (the exact scan, the filtered walk
    and the gated walk), one that excludes the query's neighbourhood, and
    after a reopen on disk. Every hit passes; recall@10 >= 0.9 over each."""
    n, dim, k = 4000, 16, 10
    rng = np.random.default_rng(11)
    data = rng.standard_normal((n, dim)).astype(np.float32)
    bucket = rng.integers(0, 200, size=n)  # bucket < b passes about b / 2 percent
    db = db_factory(kind, "walks")
    db.create_hnsw_index("ix", HnswConfig(dim, m=16, ef_construction=100, metric=Metric.L2))

    def write(rows: range) -> None:
        with db.begin(RW) as txn:
            for i in rows:
                txn.upsert_to_hnsw("ix", b"%d" % i, data[i],
                                   attributes={"bucket": int(bucket[i]), "x0": float(data[i, 0])})
            txn.commit()

    write(range(n))
    db.search_hnsw("ix", data[0], k)  # builds the graph
    data[:300] = rng.standard_normal((300, dim)).astype(np.float32)  # newer versions, in the memtable
    bucket[:300] = rng.integers(0, 200, size=300)
    write(range(300))
    queries = rng.standard_normal((20, dim)).astype(np.float32)
    queries[:, 0] = np.abs(queries[:, 0]) + 1.0  # the neighbourhood has x0 > 0

    def run(stage: str) -> None:
        for where, passing in [("bucket < 1", bucket < 1), ("bucket < 20", bucket < 20),
                               ("bucket < 60", bucket < 60), ("bucket >= 20", bucket >= 20),
                               ("x0 < -0.5", data[:, 0] < -0.5),
                               ("bucket < 100 AND x0 < 0", (bucket < 100) & (data[:, 0] < 0))]:
            found = wanted = 0
            for q in queries:
                res, _ = db.search_hnsw("ix", q, k, ef_search=64, where=where)
                scores = reference_scores(data, q, Metric.L2)
                truth = np.argsort(-np.where(passing, scores, -np.inf), kind="stable")[:min(k, int(passing.sum()))]
                assert len(res) == len(truth), (stage, where)
                hit_rows = [int(r.key) for r in res]
                assert all(passing[i] for i in hit_rows), (stage, where)
                found += len(set(hit_rows) & set(int(i) for i in truth))
                wanted += len(truth)
            assert found * 10 >= wanted * 9, f"{stage} {where}: recall {found}/{wanted}"

    run("memtable over segment")
    if kind == "disk":
        db.close()
        db = db_factory("disk", "walks")
        run("reopened")
