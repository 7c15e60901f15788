"""Transaction.scan_prefix / scan_range: ascending (key, value) iterators at
the transaction's snapshot plus its own writes, fetched in batches; against a
dict model (hypothesis), across batch boundaries, with 0x00/0xFF bytes; the
iterator after commit; phantom conflicts; bad arguments."""

from __future__ import annotations

import threading
from typing import Dict, List, Optional, Tuple

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import alopex
from alopex import AlopexError, Database, HnswConfig, Metric, TxnMode, _core
from alopex_helpers import commit_kv, db, db_factory, kind  # noqa: F401  (fixtures)

RW = TxnMode.READ_WRITE
RO = TxnMode.READ_ONLY

Model = Dict[bytes, bytes]


def in_range(model: Model, start: bytes, end: Optional[bytes]) -> List[Tuple[bytes, bytes]]:
    return sorted((k, v) for k, v in model.items() if k >= start and (end is None or k < end))


def with_prefix(model: Model, prefix: bytes) -> List[Tuple[bytes, bytes]]:
    return sorted((k, v) for k, v in model.items() if k.startswith(prefix))


# ---- the model test ----------------------------------------------------------

keys = st.binary(min_size=1, max_size=4).map(lambda b: bytes(x % 4 * 85 for x in b))  # 0x00, 0x55, 0xAA, 0xFF
bounds = st.binary(max_size=4).map(lambda b: bytes(x % 4 * 85 for x in b))
values = st.binary(max_size=40)
ops = st.lists(st.tuples(st.sampled_from(["put", "delete", "vector"]), keys, values), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(committed_ops=ops, own_ops=ops, flush=st.booleans(), batch=st.integers(1, 5),
       scans=st.lists(st.tuples(bounds, st.one_of(st.none(), bounds)), min_size=1, max_size=4),
       prefixes=st.lists(bounds, min_size=1, max_size=3))
def test_scans_match_a_dict_model(db_factory, kind: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                  committed_ops, own_ops, flush: bool, batch: int, scans, prefixes) -> None:
    monkeypatch.setattr(_core, "_SCAN_BATCH_ENTRIES", batch)  # many batch boundaries
    database = db_factory(kind)
    model: Model = {}

    def apply(txn: alopex.Transaction, ops_: list, m: Model) -> None:
        for op, k, v in ops_:
            if op == "put":
                txn.put(k, v)
                m[k] = v
            elif op == "delete":
                txn.delete(k)
                m.pop(k, None)
            else:
                txn.upsert_vector(k, None, np.array([1.0, 2.0], np.float32), Metric.L2)
                m.pop(k, None)  # vector records are not scanned

    with database.begin(RW) as txn:
        apply(txn, committed_ops, model)
        txn.commit()
    if flush and kind == "disk":
        database.flush()
    snapshot = dict(model)
    with database.begin(RW) as txn:
        mine = dict(model)
        apply(txn, own_ops, mine)
        with database.begin(RO) as ro:
            for start, end in scans:
                if end is not None and start > end:
                    start, end = end, start
                assert list(txn.scan_range(start, end)) == in_range(mine, start, end)
                assert list(ro.scan_range(start, end)) == in_range(snapshot, start, end)
            for p in prefixes:
                assert list(txn.scan_prefix(p)) == with_prefix(mine, p)
                assert list(ro.scan_prefix(p)) == with_prefix(snapshot, p)


# ---- batches, order, bytes -----------------------------------------------------

def test_a_big_scan_crosses_batch_boundaries(db: Database) -> None:
    n = 5000
    big = b"x" * 3000  # 1 MiB holds ~350 of these: the byte limit cuts batches too
    items = {b"k%05d" % i: (big if i % 7 == 0 else b"%d" % i) for i in range(n)}
    commit_kv(db, items)
    with db.begin() as txn:
        got = list(txn.scan_prefix(b"k"))
        assert got == sorted(items.items())
        assert list(txn.scan_range(b"k01000", b"k02000")) == sorted(
            (k, v) for k, v in items.items() if b"k01000" <= k < b"k02000")
        # A value larger than the byte limit comes alone in its batch.
        txn2 = db.begin(RW)
        txn2.put(b"huge", b"h" * (2 << 20))
        assert [k for k, _ in txn2.scan_range(b"h", b"i")] == [b"huge"]
        txn2.rollback()


def test_keys_with_zero_and_ff_bytes_sort_as_bytes(db: Database) -> None:
    ks = [b"\x00", b"\x00\x00", b"\x00\xff", b"a", b"a\x00", b"a\xff", b"a\xff\xff", b"b", b"\xff", b"\xff\xff"]
    commit_kv(db, {k: k + b"!" for k in ks})
    with db.begin() as txn:
        assert [k for k, _ in txn.scan_prefix(b"")] == sorted(ks)
        assert [k for k, _ in txn.scan_prefix(b"a")] == [b"a", b"a\x00", b"a\xff", b"a\xff\xff"]
        assert [k for k, _ in txn.scan_prefix(b"a\xff")] == [b"a\xff", b"a\xff\xff"]
        assert [k for k, _ in txn.scan_prefix(b"\xff")] == [b"\xff", b"\xff\xff"]
        assert [k for k, _ in txn.scan_prefix(b"\x00")] == [b"\x00", b"\x00\x00", b"\x00\xff"]
        assert [k for k, _ in txn.scan_range(b"a\x00", b"b")] == [b"a\x00", b"a\xff", b"a\xff\xff"]
        assert [k for k, _ in txn.scan_range(b"a\xff\xff")] == [b"a\xff\xff", b"b", b"\xff", b"\xff\xff"]
        assert list(txn.scan_range(b"a", b"a")) == []
        assert dict(txn.scan_prefix(b"")) == {k: k + b"!" for k in ks}


def test_scans_skip_vectors_and_index_entries(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(2))
    with db.begin(RW) as txn:
        txn.put(b"a", b"1")
        txn.upsert_vector(b"b", b"meta", np.array([1, 0], np.float32), Metric.COSINE)
        txn.upsert_to_hnsw("idx", b"c", np.array([1, 0], np.float32))
        txn.put(b"d", b"")
        txn.commit()
    with db.begin() as txn:
        assert list(txn.scan_prefix(b"")) == [(b"a", b"1"), (b"d", b"")]


def test_writes_between_batches_are_seen(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch fetched after a write of the transaction sees it (with batches
    of one entry, every next() fetches one)."""
    monkeypatch.setattr(_core, "_SCAN_BATCH_ENTRIES", 1)
    commit_kv(db, {b"a": b"1", b"c": b"3", b"e": b"5"})
    with db.begin(RW) as txn:
        it = txn.scan_prefix(b"")
        assert next(it) == (b"a", b"1")
        txn.put(b"b", b"2")
        txn.delete(b"c")
        assert list(it) == [(b"b", b"2"), (b"e", b"5")]


def test_one_iterator_shared_by_threads_hands_out_each_entry_once(db: Database,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """next() from another thread while a batch is being fetched (the GIL
    released) is a ValueError, as for a running generator; no entry is lost
    or handed out twice."""
    monkeypatch.setattr(_core, "_SCAN_BATCH_ENTRIES", 3)
    items = {b"k%04d" % i: b"%d" % i for i in range(3000)}
    commit_kv(db, items)
    txn = db.begin()
    it = txn.scan_prefix(b"k")
    got: List[List[Tuple[bytes, bytes]]] = [[], [], []]

    def drain(mine: List[Tuple[bytes, bytes]]) -> None:
        while True:
            try:
                mine.append(next(it))
            except ValueError:
                continue
            except StopIteration:
                return

    threads = [threading.Thread(target=drain, args=(g,)) for g in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = got[0] + got[1] + got[2]
    assert len(merged) == len(items)
    assert sorted(merged) == sorted(items.items())
    txn.rollback()


# ---- the iterator after the transaction ends ------------------------------------

@pytest.mark.parametrize("end", ["commit", "rollback", "close_db"])
def test_using_the_iterator_after_the_transaction_ends_raises(db: Database, end: str) -> None:
    commit_kv(db, {b"a": b"1", b"b": b"2"})
    txn = db.begin(RW)
    it = txn.scan_prefix(b"")
    assert next(it) == (b"a", b"1")  # the batch holds b too: it must not be handed out
    never_started = txn.scan_range(b"a")
    if end == "commit":
        txn.commit()
    elif end == "rollback":
        txn.rollback()
    else:
        db.close()
    for i in (it, never_started):
        with pytest.raises(AlopexError, match="transaction is closed") as e:
            next(i)
        assert e.value.code == "CLOSED"
    with pytest.raises(AlopexError, match="transaction is closed"):
        txn.scan_prefix(b"")


# ---- conflicts -----------------------------------------------------------------

def test_a_phantom_in_a_scanned_range_makes_the_commit_conflict(db: Database) -> None:
    commit_kv(db, {b"user:1": b"a", b"user:3": b"c"})
    txn = db.begin(RW)
    assert len(list(txn.scan_prefix(b"user:"))) == 2
    commit_kv(db, {b"user:2": b"b"})
    txn.put(b"count", b"2")
    with pytest.raises(AlopexError, match="transaction conflict"):
        txn.commit()
    # Outside the range: no conflict.
    txn = db.begin(RW)
    list(txn.scan_prefix(b"user:"))
    commit_kv(db, {b"other": b"x"})
    txn.put(b"count", b"3")
    txn.commit()
    with db.begin() as r:
        assert r.get(b"count") == b"3"


# ---- bad arguments ---------------------------------------------------------------

def test_bad_arguments_are_clear_errors(db: Database) -> None:
    with db.begin() as txn:
        with pytest.raises(TypeError, match="prefix must be bytes, got str"):
            txn.scan_prefix("user:")
        with pytest.raises(TypeError, match="start must be bytes, got int"):
            txn.scan_range(1, b"b")
        with pytest.raises(TypeError, match="end must be bytes or None, got str"):
            txn.scan_range(b"a", "b")
        with pytest.raises(AlopexError, match=r"start b'b' is greater than end b'a'") as e:
            txn.scan_range(b"b", b"a")
        assert e.value.code == "INVALID_ARGUMENT"
        with pytest.raises(TypeError, match="prefix must be bytes, got bytearray"):
            txn.scan_prefix(bytearray(b"a"))


def test_prefix_end() -> None:
    assert _core._prefix_end(b"") is None
    assert _core._prefix_end(b"\xff\xff") is None
    assert _core._prefix_end(b"a") == b"b"
    assert _core._prefix_end(b"a\xff") == b"b"
    assert _core._prefix_end(b"a\x00") == b"a\x01"
    assert _core._prefix_end(b"\x00\xff\xff") == b"\x01"
