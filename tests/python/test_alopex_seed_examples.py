"""The three examples of the original alopex Python docs run unchanged
(shared/seeds/alopex-python-bindings.md: Database / Transaction, vector
search, HNSW index), each in a fresh interpreter, with their output checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Verbatim from the seed document ("Database / Transaction").
KV_EXAMPLE = '''\
from alopex import Database, TxnMode

db = Database.new()

with db.begin(TxnMode.READ_WRITE) as txn:
    txn.put(b"user:1", b"alice")
    txn.commit()

with db.begin(TxnMode.READ_ONLY) as txn:
    value = txn.get(b"user:1")
    print(value)

db.close()
'''

# Verbatim ("ベクトル検索（numpy 必須）").
VECTOR_EXAMPLE = '''\
import numpy as np
from alopex import Database, Metric, TxnMode

db = Database.new()
with db.begin(TxnMode.READ_WRITE) as txn:
    vec = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    txn.upsert_vector(b"k1", None, vec, Metric.COSINE)
    results = txn.search_similar(vec, Metric.COSINE, 1, return_vectors=True)
    print(results[0].key, results[0].score)
    if results[0].vector is not None:
        print(results[0].vector.dtype, results[0].vector.shape)
'''

# Verbatim ("HNSW インデックス（numpy 必須）").
HNSW_EXAMPLE = '''\
import numpy as np
from alopex import Database, HnswConfig, TxnMode

db = Database.new()
db.create_hnsw_index("idx", HnswConfig(2))

with db.begin(TxnMode.READ_WRITE) as txn:
    vec = np.array([1.0, 0.0], dtype=np.float32)
    txn.upsert_to_hnsw("idx", b"k1", vec, None)
    txn.commit()

results, stats = db.search_hnsw("idx", np.array([1.0, 0.0], dtype=np.float32), 1)
print(stats.node_count)
'''


def _run(script: str, cwd: Path) -> list:
    out = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_kv_example_prints_the_committed_value(tmp_path: Path) -> None:
    assert _run(KV_EXAMPLE, tmp_path) == ["b'alice'"]


def test_vector_example_finds_the_vector_with_similarity_one(tmp_path: Path) -> None:
    lines = _run(VECTOR_EXAMPLE, tmp_path)
    assert len(lines) == 2, lines
    key, score = lines[0].split(" ")
    assert key == "b'k1'"
    assert abs(float(score) - 1.0) < 1e-6
    assert lines[1] == "float32 (3,)"


def test_hnsw_example_prints_one_node(tmp_path: Path) -> None:
    assert _run(HNSW_EXAMPLE, tmp_path) == ["1"]
