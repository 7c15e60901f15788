"""Shared fixtures of the pomaidb tests: every database lives in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

import pomaidb


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def open_db(tmp_path: Path) -> Iterator[Callable[..., pomaidb.Database]]:
    """open_db(dim, name="db", **opts): opens tmp_path/name; closes all at teardown."""
    opened: list[pomaidb.Database] = []

    def _open(dim: int, name: str = "db", **opts: object) -> pomaidb.Database:
        db = pomaidb.open_db(tmp_path / name, dim=dim, **opts)
        opened.append(db)
        return db

    yield _open
    for db in opened:
        db.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
