"""cffi releases the GIL inside the C calls: four Python threads searching
one HNSW index run their calls at the same time, while the main thread keeps
running."""

from __future__ import annotations

import threading
import time
from typing import List, Tuple

import numpy as np

from alopex import Database, HnswConfig, Metric, TxnMode


def _overlap(a: Tuple[float, float], b: Tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_four_threads_search_one_index_in_parallel() -> None:
    dim, n = 64, 4000
    rng = np.random.default_rng(9)
    data = rng.standard_normal((n, dim)).astype(np.float32)
    db = Database.new()
    try:
        db.create_hnsw_index("idx", HnswConfig(dim, m=16, ef_construction=100, metric=Metric.L2))
        with db.begin(TxnMode.READ_WRITE) as txn:
            for i, row in enumerate(data):
                txn.upsert_to_hnsw("idx", b"%d" % i, row)
            txn.commit()
        queries = rng.standard_normal((40, dim)).astype(np.float32)
        # Calibrate: make one call last a few milliseconds at least.
        t0 = time.perf_counter()
        db.search_hnsw("idx", queries[0], 100, ef_search=800)
        one = time.perf_counter() - t0

        intervals: List[List[Tuple[float, float]]] = [[] for _ in range(4)]
        errors: List[BaseException] = []
        go = threading.Event()

        def worker(w: int) -> None:
            try:
                go.wait()
                for q in queries:
                    start = time.perf_counter()
                    results, _ = db.search_hnsw("idx", q, 100, ef_search=800)
                    intervals[w].append((start, time.perf_counter()))
                    assert len(results) == 100
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        ticks = 0
        longest_stall = 0.0
        go.set()
        begin = last = time.perf_counter()
        while any(t.is_alive() for t in threads):
            now = time.perf_counter()
            longest_stall = max(longest_stall, now - last)
            last = now
            ticks += 1
        end = time.perf_counter()
        for t in threads:
            t.join()
        assert not errors, errors

        busy = sum(e - s for iv in intervals for (s, e) in iv)
        overlap = sum(_overlap(a, b)
                      for i in range(4) for j in range(i + 1, 4)
                      for a in intervals[i] for b in intervals[j])
        assert one > 0.0005, f"a search takes {one * 1e3:.3f} ms: too fast to tell"
        # With the GIL held through each call, calls of different threads
        # could not overlap at all; released, they overlap most of the time.
        assert overlap > 0.25 * busy, (overlap, busy)
        # And the main thread kept running: it was never stalled for long.
        assert ticks > 1000
        assert longest_stall < (end - begin) / 4, (longest_stall, end - begin)
    finally:
        db.close()
