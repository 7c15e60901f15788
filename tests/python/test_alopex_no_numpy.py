"""Without numpy, alopex still imports and its key/value part works; every
vector method raises AlopexError telling how to install numpy."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r'''
import sys
sys.modules["numpy"] = None  # `import numpy` now raises ImportError
import alopex
from alopex import AlopexError, Database, HnswConfig, Metric, TxnMode

db = Database.new()
with db.begin(TxnMode.READ_WRITE) as txn:
    txn.put(b"k", b"v")
    assert txn.get(b"k") == b"v"
    txn.commit()
db.create_hnsw_index("idx", HnswConfig(2))  # needs no numpy
txn = db.begin(TxnMode.READ_WRITE)
calls = {
    "upsert_vector": lambda: txn.upsert_vector(b"a", None, [1.0, 0.0], Metric.L2),
    "search_similar": lambda: txn.search_similar([1.0, 0.0], Metric.L2, 1),
    "get_vector": lambda: txn.get_vector(b"a", Metric.L2),
    "upsert_to_hnsw": lambda: txn.upsert_to_hnsw("idx", b"a", [1.0, 0.0]),
    "search_hnsw": lambda: db.search_hnsw("idx", [1.0, 0.0], 1),
}
for name, call in calls.items():
    try:
        call()
    except AlopexError as e:
        assert "pip install numpy" in str(e), (name, str(e))
        print(name, "ok")
    else:
        raise SystemExit(name + " did not raise")
txn.put(b"still", b"usable")
txn.commit()
db.close()
assert "numpy" not in sys.modules or sys.modules["numpy"] is None
'''


def test_vector_calls_name_the_fix_when_numpy_is_missing() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == ["upsert_vector", "ok", "search_similar", "ok", "get_vector", "ok",
                                  "upsert_to_hnsw", "ok", "search_hnsw", "ok"]
