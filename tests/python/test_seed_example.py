"""The example of the original PomaiDB Python API docs runs unchanged."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

# Verbatim from shared/seeds/pomaidb-python-api.md ("Example").
SEED_EXAMPLE = '''\
import pomaidb

db = pomaidb.open_db("/tmp/vec_db", dim=128, shards=1, metric="ip")
pomaidb.put_batch(db, ids=[1, 2], vectors=[[0.1] * 128, [0.2] * 128])
pomaidb.freeze(db)
for ids, scores in pomaidb.search_batch(db, [[0.15] * 128], topk=5):
    print(ids, scores)
pomaidb.close(db)
'''


def test_seed_example_prints_both_ids_best_first(tmp_path: Path) -> None:
    # Only the database directory moves into tmp_path.
    assert SEED_EXAMPLE.count('"/tmp/vec_db"') == 1
    script = SEED_EXAMPLE.replace('"/tmp/vec_db"', repr(str(tmp_path / "vec_db")))
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1, out.stdout
    ids_text, scores_text = lines[0].split("] [")
    ids = ast.literal_eval(ids_text + "]")
    scores = ast.literal_eval("[" + scores_text)
    assert ids == [2, 1]  # ip: 0.15*0.2*128 > 0.15*0.1*128
    assert scores == pytest.approx([3.84, 1.92], rel=1e-4)
