"""Hypothesis stateful test: two concurrent transactions against a dict model
of snapshot isolation with first-committer-wins, in memory and on disk (where
the database is also closed and reopened between steps).

Model: `committed` is the database; each open transaction has the snapshot
it began on, its own writes (None = deleted), and the commit number at its
begin. Committing a transaction whose write set meets a key committed by
someone else after its begin raises "transaction conflict" and changes
nothing; otherwise its writes are applied at once.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Dict, Optional, Tuple

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from alopex import AlopexError, Database, TxnMode

KEYS = st.sampled_from([b"a", b"b", b"key-c"])
VALUES = st.binary(max_size=12)
# Mostly READ_WRITE: read-only transactions only need a few cases.
MODES = st.sampled_from([TxnMode.READ_ONLY, TxnMode.READ_WRITE, TxnMode.READ_WRITE, TxnMode.READ_WRITE])


class _Txn:
    def __init__(self, handle, mode: TxnMode, snapshot: Dict[bytes, bytes], seq: int) -> None:
        self.handle = handle
        self.mode = mode
        self.snapshot = snapshot
        self.writes: Dict[bytes, Optional[bytes]] = {}
        self.begin_seq = seq

    def expected(self, key: bytes) -> Optional[bytes]:
        if key in self.writes:
            return self.writes[key]
        return self.snapshot.get(key)


class TransactionsMachine(RuleBasedStateMachine):
    on_disk = False

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="alopex-stateful-") if self.on_disk else None
        self.db = self._open()
        self.committed: Dict[bytes, bytes] = {}
        self.last_write: Dict[bytes, int] = {}  # key -> commit number that last wrote it
        self.seq = 0
        self.txns: Dict[int, Optional[_Txn]] = {0: None, 1: None}

    def _open(self) -> Database:
        return Database.open(self.dir) if self.dir else Database.new()

    def teardown(self) -> None:
        if not self.db.closed:
            self.db.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- rules

    @rule(data=st.data(), mode=MODES)
    def begin(self, data: st.DataObject, mode: TxnMode) -> None:
        """Begins in a free slot (or replaces a transaction, rolling it back)."""
        free = sorted(s for s, t in self.txns.items() if t is None)
        slot = data.draw(st.sampled_from(free or [0, 1]), label="slot")
        old = self.txns[slot]
        if old is not None:
            old.handle.rollback()
        self.txns[slot] = _Txn(self.db.begin(mode), mode, dict(self.committed), self.seq)

    def _active(self) -> bool:
        return any(t is not None for t in self.txns.values())

    def _pick(self, data: st.DataObject) -> Tuple[int, _Txn]:
        """An open transaction and its slot."""
        slot = data.draw(st.sampled_from(sorted(s for s, t in self.txns.items() if t is not None)), label="slot")
        t = self.txns[slot]
        assert t is not None
        return slot, t

    @precondition(_active)
    @rule(data=st.data(), key=KEYS, value=st.none() | VALUES)
    def write(self, data: st.DataObject, key: bytes, value: Optional[bytes]) -> None:
        """A put, or a delete (value None); a READ_ONLY transaction refuses both."""
        _, t = self._pick(data)
        call = (lambda: t.handle.delete(key)) if value is None else (lambda: t.handle.put(key, value))
        if t.mode == TxnMode.READ_ONLY:
            with pytest.raises(AlopexError):
                call()
        else:
            call()
            t.writes[key] = value

    @precondition(lambda self: all(t is not None and t.mode == TxnMode.READ_WRITE
                                   for t in self.txns.values()))
    @rule(key=KEYS, first=VALUES, second=VALUES)
    def both_write(self, key: bytes, first: bytes, second: bytes) -> None:
        """Both open transactions write one key: the later commit must lose."""
        for t, value in ((self.txns[0], first), (self.txns[1], second)):
            assert t is not None
            t.handle.put(key, value)
            t.writes[key] = value

    @precondition(_active)
    @rule(data=st.data(), key=KEYS)
    def get(self, data: st.DataObject, key: bytes) -> None:
        _, t = self._pick(data)
        assert t.handle.get(key) == t.expected(key)

    @precondition(_active)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        slot, t = self._pick(data)
        self.txns[slot] = None
        conflict = any(self.last_write.get(k, 0) > t.begin_seq for k in t.writes)
        event("commit: conflict" if conflict else "commit: applied" if t.writes else "commit: no writes")
        if conflict:
            with pytest.raises(AlopexError, match="transaction conflict"):
                t.handle.commit()
        else:
            t.handle.commit()
            if t.writes:
                self.seq += 1
                for k, v in t.writes.items():
                    self.last_write[k] = self.seq
                    if v is None:
                        self.committed.pop(k, None)
                    else:
                        self.committed[k] = v
        with pytest.raises(AlopexError, match="transaction is closed"):
            t.handle.get(b"a")

    @precondition(_active)
    @rule(data=st.data())
    def rollback(self, data: st.DataObject) -> None:
        slot, t = self._pick(data)
        self.txns[slot] = None
        t.handle.rollback()

    @precondition(lambda self: self.on_disk)
    @rule(flush=st.booleans())
    def reopen(self, flush: bool) -> None:
        """Close (rolling back the open transactions) and reopen the disk db."""
        if flush:
            self.db.flush()
        self.db.close()
        for slot, t in self.txns.items():
            if t is not None:
                with pytest.raises(AlopexError):
                    t.handle.get(b"a")
        self.txns = {0: None, 1: None}
        self.db = self._open()

    # -- the committed state, read by a fresh transaction

    @invariant()
    def committed_state_matches(self) -> None:
        with self.db.begin() as txn:
            for key in (b"a", b"b", b"key-c"):
                assert txn.get(key) == self.committed.get(key)


class DiskTransactionsMachine(TransactionsMachine):
    on_disk = True


_SETTINGS = settings(max_examples=100, stateful_step_count=40, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

TestTransactionsInMemory = TransactionsMachine.TestCase
TestTransactionsInMemory.settings = _SETTINGS
TestTransactionsOnDisk = DiskTransactionsMachine.TestCase
TestTransactionsOnDisk.settings = _SETTINGS
