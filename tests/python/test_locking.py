"""A database directory is held by one process at a time: a second process
opening it gets a clear "locked" error (never two writers on one WAL), and can
open it once the first one closes or dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pomaidb
from alopex import Database

_TRY_OPEN = {
    "pomaidb": """
        import sys, pomaidb
        try:
            db = pomaidb.open_db(sys.argv[1], dim=4)
        except pomaidb.PomaiDBError as e:
            print("ERROR", type(e).__name__, e)
            sys.exit(0)
        pomaidb.put_batch(db, [7], [[1, 2, 3, 4]])
        pomaidb.close(db)
        print("OPENED")
    """,
    "alopex": """
        import sys
        from alopex import Database, AlopexError, TxnMode
        try:
            db = Database.open(sys.argv[1])
        except AlopexError as e:
            print("ERROR", type(e).__name__, e)
            sys.exit(0)
        with db.begin(TxnMode.READ_WRITE) as txn:
            txn.put(b"k", b"v")
            txn.commit()
        db.close()
        print("OPENED")
    """,
}


def _other_process_opens(face: str, path: Path) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_TRY_OPEN[face]), str(path)],
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_pomaidb_directory_held_by_this_process_is_locked_for_another(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = pomaidb.open_db(str(path), dim=4)
    try:
        pomaidb.put_batch(db, [1], [[0, 0, 0, 1]])
        answer = _other_process_opens("pomaidb", path)
        assert answer.startswith("ERROR") and "locked" in answer, answer
        assert pomaidb.count(db) == 1, "the refused open changed nothing"
    finally:
        pomaidb.close(db)
    assert _other_process_opens("pomaidb", path) == "OPENED"
    db = pomaidb.open_db(str(path), dim=4)
    try:
        assert pomaidb.count(db) == 2
    finally:
        pomaidb.close(db)


def test_alopex_directory_held_by_this_process_is_locked_for_another(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = Database.open(path)
    try:
        answer = _other_process_opens("alopex", path)
        assert answer.startswith("ERROR") and "locked" in answer, answer
    finally:
        db.close()
    assert _other_process_opens("alopex", path) == "OPENED"


def test_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    path = tmp_path / "db"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time, pomaidb
            db = pomaidb.open_db(sys.argv[1], dim=4)
            print("HELD", flush=True)
            time.sleep(600)
        """), str(path)], stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert holder.stdout.readline().strip() == "HELD"
        answer = _other_process_opens("pomaidb", path)
        assert "locked" in answer, answer
    finally:
        holder.kill()
        holder.wait()
    assert _other_process_opens("pomaidb", path) == "OPENED"
