"""Random sequences of writes and deletes agree with a dict model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pomaidb

DIM = 3
ids = st.one_of(st.integers(0, 20), st.sampled_from([2**63, 2**64 - 1]))
vectors = st.lists(st.floats(-1e6, 1e6, width=32), min_size=DIM, max_size=DIM)
put = st.tuples(st.just("put"), st.lists(st.tuples(ids, vectors, st.one_of(st.none(), st.binary(max_size=8))),
                                           max_size=6))
delete = st.tuples(st.just("delete"), st.lists(ids, max_size=4))
freeze = st.tuples(st.just("freeze"), st.none())


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(put, delete, freeze), max_size=8), st.booleans())
def test_database_agrees_with_a_dict(ops, reopen) -> None:
    model: dict[int, tuple[list[float], bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db"
        db = pomaidb.open_db(path, dim=DIM, shards=2, metric="l2")
        for op, arg in ops:
            if op == "put":
                if not arg:
                    continue
                pomaidb.put_batch(db, [i for i, _, _ in arg], [v for _, v, _ in arg],
                                  metadata=[m for _, _, m in arg])
                for i, v, m in arg:
                    model[i] = (v, m or b"")
            elif op == "delete":
                pomaidb.delete(db, arg)
                for i in arg:
                    model.pop(i, None)
            else:
                pomaidb.freeze(db)
        if reopen:
            pomaidb.close(db)
            db = pomaidb.open_db(path, dim=DIM, shards=2, metric="l2")
        try:
            assert pomaidb.count(db) == len(model)
            for i in [*model, 0, 5, 2**63, 2**64 - 1]:
                got = pomaidb.get(db, i)
                assert pomaidb.exists(db, i) == (i in model)
                if i in model:
                    vec, meta = got
                    np.testing.assert_array_equal(vec, np.array(model[i][0], dtype=np.float32))
                    assert meta == model[i][1]
                else:
                    assert got is None
            [(found, _)] = pomaidb.search_batch(db, [[0.0] * DIM], topk=100)
            assert sorted(found) == sorted(model)
        finally:
            pomaidb.close(db)
