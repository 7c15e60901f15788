"""A database does not cross os.fork(): in the child every inherited
database and transaction raises CLOSED ("... before fork() ..."), close and
the implicit closes at garbage collection and interpreter exit do nothing,
and nothing the child does touches the parent's files; databases the child
opens itself work. Meanwhile the parent writes on, and after a close and a
reopen every row it was acknowledged is there.

The in-process tests fork this pytest process: the child runs its checks and
leaves with os._exit (no test teardown), reporting what failed through a pipe.
Interpreter exit in the child is tested in a fresh interpreter that forks.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import pomaidb
from alopex import AlopexError, Database, HnswConfig, Metric, TxnMode

DIM = 4


def _rows(ids: List[int]) -> np.ndarray:
    return np.array([[1.0, i % 97, 0.5, i % 13] for i in ids], dtype=np.float32)


def in_child(child: Callable[[], List[str]]) -> List[str]:
    """Runs `child` in a process forked from this one. Returns the failures
    `child` returned ([] when none), or how the child died; the child gets
    60 s (SIGALRM)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 1
        try:
            signal.alarm(60)
            failures = child()
            code = 0 if not failures else 1
        except BaseException as e:  # anything, so the child never returns into pytest
            failures = [f"the child raised {e!r}"]
        finally:
            os.write(w, json.dumps(failures).encode())
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out: List[str] = json.loads(b"".join(chunks)) if chunks else []
    if os.WIFSIGNALED(status):
        out.append(f"the child died of {signal.Signals(os.WTERMSIG(status)).name}")
    return out


def expect_closed(failures: List[str], name: str, call: Callable[[], Any], names_fork: bool = True) -> None:
    """`call` must raise the face's error with code CLOSED, and with
    `names_fork` a message saying the handle is from before fork()."""
    try:
        call()
    except pomaidb.PomaiDBError as e:
        if e.code != pomaidb.StatusCode.CLOSED or (names_fork and "before fork()" not in e.message):
            failures.append(f"{name}: {e}")
    except AlopexError as e:
        if e.code != "CLOSED" or (names_fork and "before fork()" not in str(e)):
            failures.append(f"{name}: {e.code} {e}")
    except Exception as e:
        failures.append(f"{name} raised {e!r}")
    else:
        failures.append(f"{name} returned")


class Writer:
    """Calls write(i) for i = 0, 1, ... on a thread until stopped; `acked`
    holds the i whose write returned."""

    def __init__(self, write: Callable[[int], None]) -> None:
        self.acked: List[int] = []
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()

        def run() -> None:
            i = 0
            try:
                while not self._stop.is_set():
                    write(i)
                    self.acked.append(i)
                    i += 1
            except BaseException as e:
                self.error = e

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def stop(self) -> List[int]:
        self._stop.set()
        self._thread.join()
        assert self.error is None, self.error
        return self.acked


# ---- pomaidb ---------------------------------------------------------------

def pomaidb_calls(db: pomaidb.Database) -> Dict[str, Callable[[], Any]]:
    """One call of every kind on `db`."""
    q = _rows([1])
    return {
        "put_batch": lambda: pomaidb.put_batch(db, [7], q),
        "put_batch with metadata": lambda: db.put_batch([7], q, [b"m"]),
        "delete": lambda: pomaidb.delete(db, [1]),
        "get": lambda: pomaidb.get(db, 1),
        "exists": lambda: pomaidb.exists(db, 1),
        "count": lambda: pomaidb.count(db),
        "len": lambda: len(db),
        "freeze": lambda: pomaidb.freeze(db),
        "freeze with progress": lambda: pomaidb.freeze(db, progress=lambda done, total: None),
        "compact": lambda: pomaidb.compact(db),
        "stats": lambda: pomaidb.stats(db),
        "search": lambda: pomaidb.search(db, q, topk=3),
        "search_batch": lambda: pomaidb.search_batch(db, q, topk=3),
    }


def use_own_pomaidb(path: str, failures: List[str]) -> None:
    """A database the child opens itself works, its search pool included."""
    try:
        with pomaidb.open_db(path, dim=DIM, search_threads=4, fsync=True) as own:
            own.put_batch(list(range(300)), _rows(list(range(300))))
            own.freeze()
            ids, _ = own.search(_rows([3, 4]), topk=5)
            if own.count() != 300 or ids.shape != (2, 5):
                failures.append(f"own database: count {own.count()}, ids {ids.shape}")
    except Exception as e:
        failures.append(f"own database: {e!r}")


def assert_pomaidb_holds(path: str, expected: List[int]) -> None:
    """Reopened, the database at `path` holds exactly the ids `expected`."""
    with pomaidb.open_db(path, dim=DIM) as db:
        assert db.count() == len(expected)
        assert all(db.exists(i) for i in expected)


def test_pomaidb_child_calls_on_an_inherited_database_raise_closed_while_the_parent_writes_on(
        tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    db = pomaidb.open_db(path, dim=DIM, fsync=True, search_threads=4)
    db.put_batch(list(range(100)), _rows(list(range(100))))
    writer = Writer(lambda i: db.put_batch([1000 + i], _rows([1000 + i])))

    def child() -> List[str]:
        failures: List[str] = []
        for name, call in pomaidb_calls(db).items():
            expect_closed(failures, name, call)
        db.close()  # nothing to the parent's database
        pomaidb.close(db)
        if not db.closed:
            failures.append("close did not mark the object closed")
        use_own_pomaidb(str(tmp_path / "child"), failures)
        return failures

    try:
        failures = in_child(child)
    finally:
        acked = [1000 + i for i in writer.stop()]
    assert failures == []
    db.freeze()
    db.put_batch(list(range(100, 200)), _rows(list(range(100, 200))))
    db.close()
    assert_pomaidb_holds(path, list(range(200)) + acked)


# ---- alopex ----------------------------------------------------------------

def alopex_txn_calls(txn: Any) -> Dict[str, Callable[[], Any]]:
    """One call of every kind on the transaction `txn`."""
    v = np.array([1.0, 0.0, 0.5, 0.25], dtype=np.float32)
    return {
        "txn.get": lambda: txn.get(b"k1"),
        "txn.put": lambda: txn.put(b"c", b"c"),
        "txn.delete": lambda: txn.delete(b"k1"),
        "txn.upsert_vector": lambda: txn.upsert_vector(b"v", None, v, Metric.L2),
        "txn.get_vector": lambda: txn.get_vector(b"v", Metric.L2),
        "txn.search_similar": lambda: txn.search_similar(v, Metric.L2, 3),
        "txn.upsert_to_hnsw": lambda: txn.upsert_to_hnsw("idx", b"e", v),
        "txn.delete_from_hnsw": lambda: txn.delete_from_hnsw("idx", b"e"),
        "txn.commit": lambda: txn.commit(),
    }


def alopex_db_calls(db: Database) -> Dict[str, Callable[[], Any]]:
    """One call of every kind on the database `db`."""
    v = np.array([1.0, 0.0, 0.5, 0.25], dtype=np.float32)
    return {
        "db.begin": lambda: db.begin(TxnMode.READ_WRITE),
        "db.flush": lambda: db.flush(),
        "db.memory_usage": lambda: db.memory_usage(),
        "db.create_hnsw_index": lambda: db.create_hnsw_index("idx2", HnswConfig(DIM)),
        "db.drop_hnsw_index": lambda: db.drop_hnsw_index("idx"),
        "db.get_hnsw_stats": lambda: db.get_hnsw_stats("idx"),
        "db.search_hnsw": lambda: db.search_hnsw("idx", v, 3),
    }


def check_alopex_calls(db: Database, txn: Any, failures: List[str]) -> None:
    """Every call on `db` and its transaction `txn`, made before the fork,
    raises CLOSED naming fork(); the transaction lets go of its handle at the
    first, so the later calls on it say "transaction is closed"."""
    for i, (name, call) in enumerate(alopex_txn_calls(txn).items()):
        expect_closed(failures, name, call, names_fork=i == 0)
    for name, call in alopex_db_calls(db).items():
        expect_closed(failures, name, call)


def commit_key(db: Database, key: bytes) -> None:
    with db.begin(TxnMode.READ_WRITE) as txn:
        txn.put(key, key)
        txn.commit()


def has_key(db: Database, key: bytes) -> bool:
    with db.begin() as txn:
        return bool(txn.get(key) == key)


def use_own_alopex(path: str, failures: List[str]) -> None:
    """A database the child opens itself works: transactions, an index built
    and searched on its pool, a flush."""
    try:
        own = Database.open(path)
        own.create_hnsw_index("idx", HnswConfig(DIM, metric=Metric.L2))
        with own.begin(TxnMode.READ_WRITE) as txn:
            for i in range(200):
                txn.upsert_to_hnsw("idx", b"row%d" % i, _rows([i])[0])
            txn.commit()
        commit_key(own, b"child-key")
        own.flush()
        results, _ = own.search_hnsw("idx", _rows([3])[0], 5)
        if len(results) != 5 or not has_key(own, b"child-key"):
            failures.append(f"own database: {len(results)} results")
        own.close()
    except Exception as e:
        failures.append(f"own database: {e!r}")


@pytest.mark.parametrize("disk", [True, False], ids=["disk", "in_memory"])
def test_alopex_child_calls_on_an_inherited_database_and_transaction_raise_closed_while_the_parent_commits_on(
        tmp_path: Path, disk: bool) -> None:
    path = str(tmp_path / "db")
    db = Database.open(path) if disk else Database.new()
    for i in range(100):
        commit_key(db, b"k%d" % i)
    db.create_hnsw_index("idx", HnswConfig(DIM, metric=Metric.L2))
    txn = db.begin(TxnMode.READ_WRITE)  # open at the fork, with a write of its own
    txn.put(b"pending", b"pending")
    writer = Writer(lambda i: commit_key(db, b"w%d" % i))

    def child() -> List[str]:
        failures: List[str] = []
        check_alopex_calls(db, txn, failures)
        db.close()  # nothing to the parent's database
        if not db.closed:
            failures.append("close did not mark the object closed")
        use_own_alopex(str(tmp_path / "child"), failures)
        return failures

    try:
        failures = in_child(child)
    finally:
        acked = writer.stop()
    assert failures == []
    # The parent's transaction from before the fork still works.
    txn.put(b"after", b"after")
    txn.commit()
    commit_key(db, b"last")
    if disk:
        db.flush()
        db.close()
        db = Database.open(path)
    expected = [b"pending", b"after", b"last"] + [b"k%d" % i for i in range(100)] + [b"w%d" % i for i in acked]
    assert [k for k in expected if not has_key(db, k)] == []
    assert db.get_hnsw_stats("idx").node_count == 0
    db.close()


def test_alopex_catalog_starts_over_in_a_forked_child() -> None:
    from alopex import Catalog

    Catalog.create_catalog("fork_parent")
    try:
        def child() -> List[str]:
            names = [c.name for c in Catalog.list_catalogs()]
            Catalog.create_catalog("fork_child")
            after = [c.name for c in Catalog.list_catalogs()]
            return [] if (names, after) == ([], ["fork_child"]) else [f"the child's catalog: {names}, {after}"]

        assert in_child(child) == []
        assert "fork_parent" in [c.name for c in Catalog.list_catalogs()]
        assert "fork_child" not in [c.name for c in Catalog.list_catalogs()]
    finally:
        Catalog.delete_catalog("fork_parent")


# ---- multiprocessing with the 'fork' start method ----------------------------

# The databases the pool workers inherit (set by the test before it forks).
_inherited: Dict[str, Any] = {}


def _worker_pomaidb(op: str) -> Tuple[str, str]:
    """In a worker: `op` on the inherited database, then a database of its own."""
    failures: List[str] = []
    expect_closed(failures, op, pomaidb_calls(_inherited["db"])[op])
    use_own_pomaidb(os.path.join(_inherited["dir"], f"worker-{os.getpid()}"), failures)
    return op, "; ".join(failures)


def _worker_alopex(op: str) -> Tuple[str, str]:
    """In a worker: `op` on the inherited database or transaction (which an
    earlier task of the worker may have made let go of its handle), then a
    database of its own."""
    failures: List[str] = []
    txn_calls = alopex_txn_calls(_inherited["txn"])
    if op in txn_calls:
        expect_closed(failures, op, txn_calls[op], names_fork=False)
    else:
        expect_closed(failures, op, alopex_db_calls(_inherited["db"])[op])
    use_own_alopex(os.path.join(_inherited["dir"], f"worker-{os.getpid()}"), failures)
    return op, "; ".join(failures)


def _process_closes() -> None:
    """The target of a multiprocessing.Process: closes the inherited database."""
    _inherited["db"].close()


def fork_workers(worker: Callable[[str], Tuple[str, str]], ops: List[str]) -> List[Tuple[str, str]]:
    """Maps `worker` over `ops` in a pool of 2 'fork' workers, then has a
    'fork' multiprocessing.Process close the inherited database (it must exit
    0 within 60 s). Returns the (op, failures) of the ops that failed."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map_async(worker, ops).get(timeout=120)
    process = ctx.Process(target=_process_closes)
    process.start()
    process.join(60)
    if process.is_alive():
        process.kill()
        process.join()
    assert process.exitcode == 0
    return [r for r in results if r[1]]


def test_pomaidb_multiprocessing_fork_workers_see_the_inherited_database_closed(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    db = pomaidb.open_db(path, dim=DIM, fsync=True)
    db.put_batch(list(range(100)), _rows(list(range(100))))
    _inherited.update(db=db, dir=str(tmp_path))
    writer = Writer(lambda i: db.put_batch([1000 + i], _rows([1000 + i])))
    try:
        failed = fork_workers(_worker_pomaidb, list(pomaidb_calls(db)))
    finally:
        acked = [1000 + i for i in writer.stop()]
        _inherited.clear()
    assert failed == []
    db.close()
    assert_pomaidb_holds(path, list(range(100)) + acked)


def test_alopex_multiprocessing_fork_workers_see_the_inherited_database_closed(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    db = Database.open(path)
    commit_key(db, b"first")
    db.create_hnsw_index("idx", HnswConfig(DIM, metric=Metric.L2))
    txn = db.begin(TxnMode.READ_WRITE)
    _inherited.update(db=db, txn=txn, dir=str(tmp_path))
    writer = Writer(lambda i: commit_key(db, b"w%d" % i))
    try:
        failed = fork_workers(_worker_alopex, list(alopex_txn_calls(txn)) + list(alopex_db_calls(db)))
    finally:
        acked = writer.stop()
        _inherited.clear()
    assert failed == []
    txn.rollback()
    db.close()
    db = Database.open(path)
    assert [k for k in [b"first"] + [b"w%d" % i for i in acked] if not has_key(db, k)] == []
    db.close()


# ---- interpreter exit in the child -------------------------------------------

# Opens a database and forks. The child either just exits, running the
# implicit closes of interpreter exit ("exit"), or closes first ("close"), or
# closes first while the database object's lock and the catalog's were held
# at the fork by a thread it does not have ("close-locked"). The parent writes
# on meanwhile, then closes, reopens and prints the child's exit status and
# whether every acknowledged row is there.
_EXIT_SCRIPT = textwrap.dedent(r'''
    import os, sys, threading
    import numpy as np
    face, path, action = sys.argv[1:4]

    def rows(ids):
        return np.array([[1.0, i % 97, 0.5, i % 13] for i in ids], dtype=np.float32)

    if face == "pomaidb":
        import pomaidb
        db = pomaidb.open_db(path, dim=4, fsync=True, search_threads=4)
        locks = [db._lock]
        def write(i):
            db.put_batch([i], rows([i]))
        def reopen_and_check(acked):
            with pomaidb.open_db(path, dim=4) as db2:
                return db2.count() == len(acked) and all(db2.exists(i) for i in acked)
    else:
        from alopex import Catalog, Database, TxnMode, _catalog
        db = Database.open(path)
        Catalog.create_catalog("main")  # the catalog's store: closed at exit too
        locks = [db._lock, _catalog._lock]
        def write(i):
            with db.begin(TxnMode.READ_WRITE) as t:
                t.put(b"k%d" % i, b"v")
                t.commit()
        txn = db.begin(TxnMode.READ_WRITE)  # abandoned in the child: rolled back when freed
        txn.put(b"pending", b"v")
        def reopen_and_check(acked):
            db2 = Database.open(path)
            with db2.begin() as t:
                ok = all(t.get(b"k%d" % i) == b"v" for i in acked)
            db2.close()
            return ok

    acked = []
    for i in range(100):
        write(i)
        acked.append(i)
    held, release = threading.Event(), threading.Event()
    def holder():
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait()
        for lock in locks:
            lock.release()
    if action == "close-locked":
        threading.Thread(target=holder).start()
        held.wait()
    pid = os.fork()
    if pid == 0:
        import signal
        signal.alarm(60)  # a hang fails the test instead of stalling it
        if action != "exit":
            db.close()
        sys.exit(0)
    release.set()
    stop = threading.Event()
    def writer():
        i = 1000
        while not stop.is_set():
            write(i)
            acked.append(i)
            i += 1
    thread = threading.Thread(target=writer)
    thread.start()
    _, status = os.waitpid(pid, 0)
    stop.set()
    thread.join()
    for i in range(100, 200):
        write(i)
        acked.append(i)
    db.close()
    print(os.waitstatus_to_exitcode(status), reopen_and_check(acked))
''')


@pytest.mark.parametrize("action", ["exit", "close", "close-locked"])
@pytest.mark.parametrize("face", ["pomaidb", "alopex"])
def test_a_child_that_exits_leaves_the_parents_database_intact(tmp_path: Path, face: str, action: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ALOPEX_CATALOG_PATH"}
    proc = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, face, str(tmp_path / "db"), action],
                          capture_output=True, text=True, timeout=120, cwd="/", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "True"], proc.stderr
