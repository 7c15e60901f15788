"""progress= of pomaidb.freeze/compact and alopex's search_hnsw: what a
callable receives, and a tqdm bar that honours tqdm's redraw rate limit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

import pomaidb
from alopex import Database, HnswConfig, Metric, TxnMode

tqdm = pytest.importorskip("tqdm")  # a dev requirement (requirements-dev.txt); the package's `progress` extra


def _rows(n: int, dim: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _check_calls(calls: List[Tuple[int, int]], total: int) -> None:
    assert calls, "no progress was reported"
    assert all(t == total for _, t in calls), calls[:5]
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[-1] == total


def test_freeze_bar_redraws_at_tqdm_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """5000 rows report progress thousands of times; the bar may redraw only
    about once per tqdm `mininterval` (0.1 s), plus its first and last draw."""
    with pomaidb.open_db(tmp_path / "db", dim=32, adaptive_threshold=0) as db:
        pomaidb.put_batch(db, np.arange(5000, dtype=np.uint64), _rows(5000, 32))
        start = time.monotonic()
        pomaidb.freeze(db, progress=True)
        elapsed = time.monotonic() - start
        assert pomaidb.count(db) == 5000
    err = capsys.readouterr().err
    redraws = err.count("\r")
    assert redraws <= 3 + elapsed / 0.1 * 1.5, (redraws, elapsed)
    assert "5000/5000" in err.split("\r")[-1]


def test_freeze_and_compact_callables_see_every_row(tmp_path: Path) -> None:
    """Of every shard; the merge's total is the live rows of its segments."""
    calls: List[Tuple[int, int]] = []
    with pomaidb.open_db(tmp_path / "db", dim=16, shards=2, adaptive_threshold=0) as db:
        pomaidb.put_batch(db, np.arange(3000, dtype=np.uint64), _rows(3000, 16))
        pomaidb.freeze(db, progress=lambda d, t: calls.append((d, t)))
        _check_calls(calls, 3000)
        calls.clear()
        pomaidb.put_batch(db, np.arange(2500, 3500, dtype=np.uint64), _rows(1000, 16, seed=8))  # 500 overwrites
        pomaidb.freeze(db)
        db.compact(progress=lambda d, t: calls.append((d, t)))
        _check_calls(calls, 3500)


def _index_db(rows: int, path: Path | None = None) -> Tuple[Database, np.ndarray]:
    db = Database.open(str(path)) if path is not None else Database.new()
    db.create_hnsw_index("docs", HnswConfig(16, metric=Metric.L2))
    data = _rows(rows, 16)
    with db.begin(TxnMode.READ_WRITE) as txn:
        for i in range(rows):
            txn.upsert_to_hnsw("docs", b"doc%05d" % i, data[i])
        txn.commit()
    return db, data


def test_search_hnsw_reports_the_first_build(tmp_path: Path) -> None:
    # Fewer rows than a commit needs to start a background flush (1024): the
    # search's own first build is what reports.
    db, data = _index_db(1000, tmp_path / "kv")
    try:
        calls: List[Tuple[int, int]] = []
        hits, stats = db.search_hnsw("docs", data[17], k=3, progress=lambda d, t: calls.append((d, t)))
        _check_calls(calls, 1000)
        assert hits[0].key == b"doc00017" and stats.node_count == 1000
        calls.clear()
        db.search_hnsw("docs", data[18], k=3, progress=lambda d, t: calls.append((d, t)))
        assert calls == []  # built already: nothing to report
    finally:
        db.close()
    db = Database.open(str(tmp_path / "kv"))
    try:  # the graph is in the segment the build wrote: a reopen builds nothing, reports nothing
        db.search_hnsw("docs", data[19], k=3, progress=lambda d, t: calls.append((d, t)))
        assert calls == []
    finally:
        db.close()


def test_search_hnsw_bar_and_bad_progress(capsys: pytest.CaptureFixture[str]) -> None:
    db, data = _index_db(1000)
    try:
        with pytest.raises(TypeError, match="progress must be"):
            db.search_hnsw("docs", data[0], k=1, progress="yes")
        hits, _ = db.search_hnsw("docs", data[5], k=1, progress=True)
        assert hits[0].key == b"doc00005"
        err = capsys.readouterr().err
        assert "index docs" in err and "1000/1000" in err.split("\r")[-1]

        def boom(done: int, total: int) -> None:
            raise RuntimeError("stop")

        db2, data2 = _index_db(100)
        try:  # an exception of the callback is raised after the call (it cannot cross into C)
            with pytest.raises(RuntimeError, match="stop"):
                db2.search_hnsw("docs", data2[0], k=1, progress=boom)
        finally:
            db2.close()
    finally:
        db.close()
