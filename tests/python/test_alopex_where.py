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
stage's other searches.
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
# Each attribute keeps one type in every entry (a filter on an attribute the
# entries disagree on is an error, tested on its own below).

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
            results, stats = db.search_hnsw("ix", q, k, ef_search=64, where=text)
            where = f"{stage}: where {text!r}, k {k}"
            assert stats.node_count >= 0
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


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 250), disk=st.booleans(),
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
