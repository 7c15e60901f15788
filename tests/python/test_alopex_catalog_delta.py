"""alopex.Catalog with DELTA tables (SPEC 3.4): overwrite (a new version
each), scans, the registered format and columns, with the files read back by
deltalake's own reader (not polars). The other write modes run for both
formats in test_alopex_catalog.py (FORMATS).

Skipped when the deltalake package is not importable; requirements-dev.txt
installs it, so CI runs these. Without deltalake, DELTA is an AlopexError
(test_alopex_catalog.py::test_formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

from alopex import Catalog, ColumnInfo

from alopex_helpers import fresh_catalog, ns  # noqa: F401  (fixtures)

pl = pytest.importorskip("polars")
deltalake = pytest.importorskip("deltalake")


@pytest.fixture(autouse=True)
def _own_catalog(fresh_catalog: None, ns: None) -> None:
    """Every test here starts from a Catalog holding main.default only (alopex_helpers)."""


def users(ids: List[int], names: List[str]) -> Any:
    return pl.DataFrame({"id": ids, "name": names})


def read_back(path: Path, version: Any = None) -> List[Dict[str, Any]]:
    """Rows of the Delta table at `path` (sorted by id), read by deltalake."""
    table = deltalake.DeltaTable(str(path), version=version)
    return sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def test_overwrite_writes_a_delta_table_and_scan_table_reads_it(tmp_path: Path) -> None:
    loc = tmp_path / "u"
    Catalog.create_table("main", "default", "u", [], str(loc), data_source_format="DELTA")
    Catalog.write_table(users([1, 2], ["a", "b"]), "main", "default", "u", delta_mode="overwrite")
    assert (loc / "_delta_log").is_dir()
    assert read_back(loc) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    lf = Catalog.scan_table("main", "default", "u")
    assert isinstance(lf, pl.LazyFrame)
    assert sorted(lf.collect().to_dicts(), key=lambda r: r["id"]) == read_back(loc)

    Catalog.write_table(users([3], ["c"]).lazy(), "main", "default", "u", delta_mode="overwrite")
    assert read_back(loc) == [{"id": 3, "name": "c"}]
    # A Delta overwrite is a new version: the previous one is still readable.
    assert read_back(loc, version=0) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_write_table_keeps_the_registered_format_and_columns(tmp_path: Path) -> None:
    loc = tmp_path / "n"
    cols = [ColumnInfo("id", "BIGINT"), ColumnInfo("score", "DOUBLE")]
    Catalog.create_table("main", "default", "n", cols, str(loc), data_source_format="DELTA")
    Catalog.write_table(pl.DataFrame({"id": [1], "score": [0.5]}), "main", "default", "n",
                        delta_mode="overwrite")
    info = Catalog.get_table_info("main", "default", "n")
    assert info.data_source_format == "DELTA"
    assert [c.name for c in info.columns] == ["id", "score"]
    assert deltalake.DeltaTable(str(loc)).to_pyarrow_table().to_pylist() == [{"id": 1, "score": 0.5}]
