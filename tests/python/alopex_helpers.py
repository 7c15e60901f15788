"""Fixtures shared by the alopex tests (imported by each test_alopex_*.py).

`fresh_catalog` and `ns` give a Catalog test a store of its own and a
namespace main.default.

`db_factory(kind)` opens a database of either kind ("memory" or "disk", the
disk one in tmp_path) and closes whatever is still open at teardown; the
`kind` fixture runs a test once per kind, since SPEC 3 promises that both
behave the same. `reference_scores` is the brute-force score of each metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List

import numpy as np
import pytest

import alopex

KINDS = ("memory", "disk")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_factory(tmp_path: Path) -> Iterator[Callable[..., alopex.Database]]:
    opened: List[alopex.Database] = []
    counter = [0]

    def _open(kind: str = "memory", name: str = "") -> alopex.Database:
        if kind == "memory":
            db = alopex.Database.new()
        else:
            if not name:
                counter[0] += 1
                name = f"db{counter[0]}"
            db = alopex.Database.open(str(tmp_path / name))
        opened.append(db)
        return db

    yield _open
    for db in opened:
        if not db.closed:
            db.close()


@pytest.fixture
def db(db_factory: Callable[..., alopex.Database], kind: str) -> alopex.Database:
    """A fresh database of each kind."""
    return db_factory(kind)


def commit_kv(db: alopex.Database, items: dict) -> None:
    """Commits key -> value (None deletes) in one READ_WRITE transaction."""
    txn = db.begin(alopex.TxnMode.READ_WRITE)
    for k, v in items.items():
        if v is None:
            txn.delete(k)
        else:
            txn.put(k, v)
    txn.commit()


def reference_scores(data: np.ndarray, q: np.ndarray, metric: alopex.Metric) -> np.ndarray:
    """The score of every row of `data` for query `q`, in float64 (cosine of a zero vector: 0)."""
    d = data.astype(np.float64)
    qq = q.astype(np.float64)
    if metric == alopex.Metric.INNER_PRODUCT:
        return d @ qq
    if metric == alopex.Metric.L2:
        return -np.sqrt(((d - qq) ** 2).sum(axis=1))
    norms = np.linalg.norm(d, axis=1) * np.linalg.norm(qq)
    dots = d @ qq
    return np.where(norms == 0, 0.0, dots / np.where(norms == 0, 1, norms))


def read(db: alopex.Database, key: bytes):
    with db.begin() as txn:
        return txn.get(key)


@pytest.fixture
def fresh_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A Catalog with no ALOPEX_CATALOG_PATH and a store of its own, closed
    after the test (the Catalog tests use it autouse)."""
    from alopex import _catalog

    monkeypatch.delenv("ALOPEX_CATALOG_PATH", raising=False)
    _catalog._close_store()
    yield
    _catalog._close_store()


@pytest.fixture
def ns() -> None:
    """Catalog "main" with namespace "default"."""
    alopex.Catalog.create_catalog("main")
    alopex.Catalog.create_namespace("main", "default")
