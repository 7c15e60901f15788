"""SPEC 3.3 vectors: upsert_vector, get_vector, search_similar (flat, exact),
numpy in and out."""

from __future__ import annotations

import numpy as np
import pytest

import alopex._core as core
from alopex import Database, Metric, TxnMode
from alopex_helpers import db, db_factory, kind, reference_scores  # noqa: F401  (fixtures)

RW = TxnMode.READ_WRITE
METRICS = (Metric.COSINE, Metric.L2, Metric.INNER_PRODUCT)


def load(db: Database, data: np.ndarray, metric: Metric, prefix: bytes = b"v") -> list:
    keys = [prefix + b"%05d" % i for i in range(len(data))]
    txn = db.begin(RW)
    for k, row in zip(keys, data):
        txn.upsert_vector(k, k[::-1], row, metric)
    txn.commit()
    return keys


@pytest.mark.parametrize("metric", METRICS, ids=repr)
def test_search_similar_matches_numpy_brute_force(db: Database, metric: Metric) -> None:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((300, 24)).astype(np.float32)
    data[5] = 0.0  # a zero vector: cosine 0.0
    keys = load(db, data, metric)
    with db.begin() as txn:
        for _ in range(5):
            q = rng.standard_normal(24).astype(np.float32)
            ref = reference_scores(data, q, metric)
            order = sorted(range(len(data)), key=lambda i: (-ref[i], keys[i]))[:10]
            got = txn.search_similar(q, metric, 10)
            assert [r.key for r in got] == [keys[i] for i in order]
            np.testing.assert_allclose([r.score for r in got], ref[order], rtol=1e-4, atol=1e-4)
            assert all(r.metadata == r.key[::-1] for r in got)
            assert all(r.vector is None for r in got)
            assert all(isinstance(r.score, float) for r in got)


def test_l2_score_is_negative_euclidean_distance(db: Database) -> None:
    with db.begin(RW) as txn:
        txn.upsert_vector(b"a", None, np.array([3.0, 4.0], dtype=np.float32), Metric.L2)
        (r,) = txn.search_similar(np.zeros(2, dtype=np.float32), Metric.L2, 5)
        assert r.score == pytest.approx(-5.0)


def test_ties_are_broken_by_key_ascending(db: Database) -> None:
    """(k = 0 and k > rows: test_bad_input.py, test_k_zero_and_larger_than_the_rows.)"""
    with db.begin(RW) as txn:
        for k in (b"c", b"a", b"b"):
            txn.upsert_vector(k, None, [1.0, 1.0], Metric.INNER_PRODUCT)
        got = txn.search_similar([1.0, 0.0], Metric.INNER_PRODUCT, 3)
        assert [r.key for r in got] == [b"a", b"b", b"c"]


def test_uncommitted_upserts_are_visible_to_their_transaction_only(db: Database) -> None:
    txn = db.begin(RW)
    txn.upsert_vector(b"mine", None, [1.0, 0.0], Metric.COSINE)
    assert [r.key for r in txn.search_similar([1.0, 0.0], Metric.COSINE, 5)] == [b"mine"]
    with db.begin() as other:
        assert other.search_similar([1.0, 0.0], Metric.COSINE, 5) == []
    txn.rollback()
    with db.begin() as after:
        assert after.search_similar([1.0, 0.0], Metric.COSINE, 5) == []


def test_search_sees_the_snapshot_not_later_commits(db: Database) -> None:
    load(db, np.eye(3, dtype=np.float32), Metric.L2, b"old")
    reader = db.begin()
    load(db, np.eye(3, dtype=np.float32), Metric.L2, b"new")
    assert {r.key[:3] for r in reader.search_similar([1.0, 0, 0], Metric.L2, 10)} == {b"old"}
    reader.rollback()


def test_deleted_and_overwritten_vectors_drop_out(db: Database) -> None:
    load(db, np.eye(3, dtype=np.float32), Metric.L2)
    with db.begin(RW) as txn:
        txn.delete(b"v00000")
        txn.put(b"v00001", b"plain bytes now")
        assert [r.key for r in txn.search_similar([1.0, 0, 0], Metric.L2, 10)] == [b"v00002"]
        with pytest.raises(KeyError):
            txn.get_vector(b"v00001", Metric.L2)


def test_filter_keys_limits_the_candidates(db: Database) -> None:
    keys = load(db, np.eye(4, dtype=np.float32), Metric.INNER_PRODUCT)
    with db.begin() as txn:
        got = txn.search_similar([1.0, 1, 1, 1], Metric.INNER_PRODUCT, 10,
                                 filter_keys=[keys[3], b"absent", keys[1]])
        assert sorted(r.key for r in got) == [keys[1], keys[3]]
        assert txn.search_similar([1.0, 1, 1, 1], Metric.INNER_PRODUCT, 10, filter_keys=[]) == []


def test_return_vectors_gives_float32_arrays(db: Database) -> None:
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    keys = load(db, data, Metric.L2)
    with db.begin() as txn:
        for zero_copy in (True, False):
            got = txn.search_similar(data[2], Metric.L2, 4, return_vectors=True,
                                     zero_copy_return=zero_copy)
            by_key = {r.key: r.vector for r in got}
            for i, k in enumerate(keys):
                v = by_key[k]
                assert v.dtype == np.float32 and v.shape == (3,)
                np.testing.assert_array_equal(v, data[i])
            if not zero_copy:
                assert all(r.vector.flags.owndata for r in got)


def test_get_vector_round_trip(db: Database) -> None:
    v = np.linspace(-1, 1, 777).astype(np.float32)
    big = np.linspace(0, 1, 3000).astype(np.float32)  # beyond the first read buffer
    with db.begin(RW) as txn:
        txn.upsert_vector(b"v", b"meta", v, Metric.COSINE)
        txn.upsert_vector(b"big", None, big, Metric.L2)
        txn.put(b"plain", b"bytes")
        txn.commit()
    with db.begin() as txn:
        for zc in (True, False):
            got = txn.get_vector(b"v", Metric.COSINE, zero_copy_return=zc)
            assert got.dtype == np.float32 and got.shape == (777,)
            np.testing.assert_array_equal(got, v)
        np.testing.assert_array_equal(txn.get_vector(b"big", Metric.L2), big)
        assert txn.get(b"v") == b"meta"  # a vector key reads as its metadata


# ---- numpy inputs ---------------------------------------------------------

def test_float32_c_contiguous_input_is_not_copied() -> None:
    a = np.ones(8, dtype=np.float32)
    assert core._as_f32(a) is a
    read_only = a.copy()
    read_only.flags.writeable = False
    assert core._as_f32(read_only) is read_only
    strided = np.ones(16, dtype=np.float32)[::2]
    converted = core._as_f32(strided)
    assert converted is not strided and converted.flags.c_contiguous
    f64 = np.ones(8)
    assert core._as_f32(f64).dtype == np.float32
    assert core._as_f32([1, 2, 3]).dtype == np.float32

