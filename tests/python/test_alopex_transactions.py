"""SPEC 3.2-3.3: databases and transactions (key/value part), in both
storage modes."""

from __future__ import annotations

import pytest

from alopex import AlopexError, Database, EmbeddedConfig, TxnMode
from alopex_helpers import commit_kv, db, db_factory, kind, read  # noqa: F401  (fixtures)

RW = TxnMode.READ_WRITE
RO = TxnMode.READ_ONLY


# ---- snapshot isolation and conflicts ------------------------------------

def test_transaction_reads_its_own_uncommitted_writes(db: Database) -> None:
    txn = db.begin(RW)
    txn.put(b"a", b"1")
    assert txn.get(b"a") == b"1"
    txn.delete(b"a")
    assert txn.get(b"a") is None
    assert read(db, b"a") is None  # invisible to others before commit
    txn.rollback()


def test_transaction_does_not_see_a_commit_made_after_it_began(db: Database) -> None:
    commit_kv(db, {b"a": b"old"})
    reader = db.begin(RO)
    writer = db.begin(RW)
    commit_kv(db, {b"a": b"new", b"b": b"born"})
    assert reader.get(b"a") == b"old"
    assert reader.get(b"b") is None
    assert writer.get(b"a") == b"old"
    assert read(db, b"a") == b"new"  # a transaction begun later sees it
    reader.commit()
    writer.rollback()


def test_deletes_are_isolated_too(db: Database) -> None:
    commit_kv(db, {b"a": b"1"})
    reader = db.begin()
    commit_kv(db, {b"a": None})
    assert reader.get(b"a") == b"1"
    assert read(db, b"a") is None


@pytest.mark.parametrize("loser_writes", ["put", "delete"])
def test_first_committer_wins_and_the_loser_changes_nothing(db: Database, loser_writes: str) -> None:
    commit_kv(db, {b"k": b"v"})
    t1 = db.begin(RW)
    t2 = db.begin(RW)
    t1.put(b"k", b"t1")
    if loser_writes == "put":
        t2.put(b"k", b"t2")
    else:
        t2.delete(b"k")
    t2.put(b"other", b"t2")
    t1.commit()
    with pytest.raises(AlopexError, match="transaction conflict"):
        t2.commit()
    assert read(db, b"k") == b"t1"
    assert read(db, b"other") is None
    with pytest.raises(AlopexError, match="transaction is closed"):
        t2.get(b"k")  # a failed commit closes the transaction


def test_disjoint_writers_both_commit(db: Database) -> None:
    t1 = db.begin(RW)
    t2 = db.begin(RW)
    t1.put(b"a", b"1")
    t2.put(b"b", b"2")
    t1.commit()
    t2.commit()
    assert (read(db, b"a"), read(db, b"b")) == (b"1", b"2")


def test_a_read_does_not_make_a_conflict_snapshot_isolation(db: Database) -> None:
    commit_kv(db, {b"a": b"0"})
    t1 = db.begin(RW)
    assert t1.get(b"a") == b"0"
    commit_kv(db, {b"a": b"1"})
    t1.put(b"c", b"x")
    t1.commit()  # write-write conflicts only
    assert read(db, b"c") == b"x"


# ---- modes ----------------------------------------------------------------

def test_begin_defaults_to_read_only(db: Database) -> None:
    for txn in (db.begin(), db.begin(None)):
        assert txn.mode == RO
        with pytest.raises(AlopexError):
            txn.put(b"a", b"1")
        txn.rollback()
    assert read(db, b"a") is None


def test_empty_value_and_missing_delete(db: Database) -> None:
    txn = db.begin(RW)
    txn.put(b"e", b"")
    txn.delete(b"never-existed")
    txn.commit()
    assert read(db, b"e") == b""


def test_values_larger_than_the_read_buffer(db: Database) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    huge = b"z" * (3 << 20)
    commit_kv(db, {b"big": big, b"huge": huge, b"small": b"s"})
    with db.begin() as txn:
        assert txn.get(b"small") == b"s"
        assert txn.get(b"big") == big
        assert txn.get(b"huge") == huge
        assert txn.get(b"small") == b"s"


def test_values_around_the_stack_read_buffer(db: Database) -> None:
    # _txn_calls.c reads values up to 1 KiB through a stack buffer and larger
    # ones straight into the result after a first call that gives the size.
    values = {b"v%d" % n: bytes(i % 251 for i in range(n)) for n in (0, 1, 1023, 1024, 1025, 4096)}
    commit_kv(db, values)
    with db.begin() as txn:
        for key, value in values.items():
            assert txn.get(key) == value
        assert txn.get(b"v1025") == values[b"v1025"]  # the same answer twice


def test_bytes_subclasses_are_keys_and_values(db: Database) -> None:
    class Key(bytes):
        pass

    with db.begin(RW) as txn:
        txn.put(Key(b"k"), Key(b"v"))
        assert txn.get(Key(b"k")) == b"v" and type(txn.get(b"k")) is bytes
        txn.delete(Key(b"k"))
        assert txn.get(b"k") is None
        txn.commit()


def test_the_handle_attribute_can_only_be_dropped(db: Database) -> None:
    txn = db.begin(RW)
    with pytest.raises(AttributeError, match="only be set to None"):
        txn._h = 5
    assert not txn.closed
    txn.put(b"a", b"1")
    txn.commit()
    assert txn._h is None and txn.closed


# ---- context manager -------------------------------------------------------

def test_context_manager_rolls_back_an_uncommitted_transaction(db: Database) -> None:
    with db.begin(RW) as txn:
        txn.put(b"a", b"1")
    assert txn.closed
    assert read(db, b"a") is None


def test_context_manager_rolls_back_on_exception_and_propagates_it(db: Database) -> None:
    with pytest.raises(KeyError, match="boom"):
        with db.begin(RW) as txn:
            txn.put(b"a", b"1")
            raise KeyError("boom")
    assert txn.closed
    assert read(db, b"a") is None


def test_context_manager_keeps_an_explicit_commit(db: Database) -> None:
    with db.begin(RW) as txn:
        assert txn.__enter__() is txn
        txn.put(b"a", b"1")
        txn.commit()
    assert read(db, b"a") == b"1"


def test_garbage_collected_transaction_is_rolled_back(db: Database) -> None:
    txn = db.begin(RW)
    txn.put(b"a", b"1")
    del txn
    t2 = db.begin(RW)
    t2.put(b"a", b"2")
    t2.commit()  # no conflict with the dropped transaction
    assert read(db, b"a") == b"2"


# ---- flush, memory ----------------------------------------------------------

def test_flush_in_memory_is_an_error_and_on_disk_keeps_data(db_factory) -> None:
    mem = db_factory("memory")
    with pytest.raises(AlopexError):
        mem.flush()
    disk = db_factory("disk")
    commit_kv(disk, {b"a": b"1"})
    disk.flush()
    commit_kv(disk, {b"b": b"2"})
    assert (read(disk, b"a"), read(disk, b"b")) == (b"1", b"2")


def test_memory_usage_reports_real_figures(db: Database) -> None:
    before = db.memory_usage()
    assert before.total_bytes > 0
    commit_kv(db, {b"k%d" % i: b"x" * 1000 for i in range(200)})
    after = db.memory_usage()
    assert after.used_bytes >= before.used_bytes + 150_000
    assert after.free_bytes == max(0, after.total_bytes - after.used_bytes)


def test_memory_cap_refuses_the_commit_and_changes_nothing() -> None:
    db = Database.open_with_config(EmbeddedConfig(memory_limit_bytes=256 * 1024))
    try:
        assert db.memory_usage().total_bytes == 256 * 1024
        commit_kv(db, {b"small": b"s" * 1000})
        used = db.memory_usage().used_bytes
        txn = db.begin(RW)
        txn.put(b"a", b"x" * 1000)
        txn.put(b"big", b"x" * (512 * 1024))
        with pytest.raises(AlopexError, match="memory limit exceeded"):
            txn.commit()
        assert read(db, b"a") is None and read(db, b"big") is None
        assert read(db, b"small") == b"s" * 1000
        assert db.memory_usage().used_bytes == used
        commit_kv(db, {b"after": b"ok"})  # still usable
        assert read(db, b"after") == b"ok"
    finally:
        db.close()


def test_open_with_config_without_limit() -> None:
    db = Database.open_with_config(EmbeddedConfig())
    commit_kv(db, {b"a": b"x" * 100_000})
    db.close()


def test_open_in_memory_is_a_fresh_database() -> None:
    a, b = Database.open_in_memory(), Database.new()
    commit_kv(a, {b"k": b"1"})
    assert read(b, b"k") is None
    a.close()
    b.close()


def test_open_accepts_pathlike_and_creates_parents(tmp_path) -> None:
    db = Database.open(tmp_path / "a" / "b")
    commit_kv(db, {b"k": b"1"})
    db.close()
    assert (tmp_path / "a" / "b").is_dir()
