"""SPEC 3.1: the value types of alopex (no database needed, except where a
constructor must refuse to run)."""

from __future__ import annotations

import pickle

import pytest

import alopex
from alopex import (
    AlopexError,
    Database,
    DatabaseOptions,
    EmbeddedConfig,
    HnswConfig,
    HnswStats,
    MemoryStats,
    Metric,
    SearchResult,
    StorageMode,
    Transaction,
    TxnMode,
)


@pytest.mark.parametrize("const, text", [
    (TxnMode.READ_ONLY, "TxnMode.READ_ONLY"), (TxnMode.READ_WRITE, "TxnMode.READ_WRITE"),
    (Metric.COSINE, "Metric.COSINE"), (Metric.L2, "Metric.L2"),
    (Metric.INNER_PRODUCT, "Metric.INNER_PRODUCT"),
    (StorageMode.DISK, "StorageMode.DISK"), (StorageMode.IN_MEMORY, "StorageMode.IN_MEMORY"),
])
def test_constants_repr_as_class_dot_name(const: object, text: str) -> None:
    assert repr(const) == text
    assert str(const) == text


def test_constants_compare_by_value_and_hash() -> None:
    assert TxnMode.READ_WRITE == pickle.loads(pickle.dumps(TxnMode.READ_WRITE))
    assert TxnMode.READ_WRITE != TxnMode.READ_ONLY
    assert Metric.L2 != StorageMode.DISK  # same C value 0, different kinds
    assert Metric.L2 != 0  # not an int
    assert len({Metric.L2, Metric.L2, Metric.COSINE, Metric.INNER_PRODUCT}) == 3
    assert {TxnMode.READ_ONLY: 1}[TxnMode.READ_ONLY] == 1


def test_constant_classes_cannot_be_called_without_a_value() -> None:
    with pytest.raises(TypeError):
        Metric()  # type: ignore[call-arg]


def test_hnsw_config_defaults() -> None:
    c = HnswConfig(2)
    assert (c.dim, c.m, c.ef_construction, c.metric) == (2, 16, 200, Metric.COSINE)
    assert HnswConfig(8, 4, 40, Metric.L2).metric == Metric.L2
    assert repr(c) == "HnswConfig(dim=2, m=16, ef_construction=200, metric=Metric.COSINE)"


def test_embedded_config_and_database_options_defaults() -> None:
    assert EmbeddedConfig().memory_limit_bytes is None
    assert EmbeddedConfig(1024).memory_limit_bytes == 1024
    o = DatabaseOptions()
    assert (o.path, o.storage_mode, o.memory_limit_bytes, o.enable_metrics) == (
        None, StorageMode.IN_MEMORY, None, False)
    o = DatabaseOptions("/x", StorageMode.DISK, 10, True)
    assert (o.path, o.storage_mode, o.memory_limit_bytes, o.enable_metrics) == (
        "/x", StorageMode.DISK, 10, True)


def test_result_and_stats_types() -> None:
    r = SearchResult(b"k", 0.5)
    assert (r.key, r.score, r.metadata, r.vector) == (b"k", 0.5, None, None)
    s = HnswStats()
    assert (s.node_count, s.deleted_count, s.level_distribution, s.memory_bytes,
            s.avg_edges_per_node) == (0, 0, [], 0, 0.0)
    m = MemoryStats(100, 30)
    assert (m.total_bytes, m.used_bytes, m.free_bytes) == (100, 30, 70)
    assert MemoryStats(10, 30).free_bytes == 0
    assert MemoryStats(10, 3, 7).free_bytes == 7


def test_alopex_error_is_an_exception_with_a_code() -> None:
    e = AlopexError("transaction conflict", "CONFLICT")
    assert isinstance(e, Exception)
    assert str(e) == "transaction conflict" and e.code == "CONFLICT"
    e2 = pickle.loads(pickle.dumps(e))
    assert (str(e2), e2.code) == ("transaction conflict", "CONFLICT")


def test_database_and_transaction_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError):
        Database()
    with pytest.raises(TypeError):
        Transaction()


def test_package_exports() -> None:
    for name in ("AlopexError", "TxnMode", "Metric", "StorageMode", "HnswConfig",
                 "EmbeddedConfig", "DatabaseOptions", "SearchResult", "HnswStats", "MemoryStats",
                 "Database", "Transaction"):
        assert name in alopex.__all__ and hasattr(alopex, name)
