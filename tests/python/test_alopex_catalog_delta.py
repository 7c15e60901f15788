"""alopex.Catalog with DELTA tables (SPEC 3.4): every write mode, scans, and the
files read back by deltalake's own reader (not polars).

Skipped when the deltalake package is not importable; requirements-dev.txt
installs it, so CI runs these. Without deltalake, DELTA is an AlopexError
(test_alopex_catalog.py::test_formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from alopex import AlopexError, Catalog, ColumnInfo
from alopex import _catalog

pl = pytest.importorskip("polars")
deltalake = pytest.importorskip("deltalake")


@pytest.fixture(autouse=True)
def fresh_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ALOPEX_CATALOG_PATH", raising=False)
    _catalog._close_store()
    Catalog.create_catalog("main")
    Catalog.create_namespace("main", "default")
    yield
    _catalog._close_store()


def users(ids: List[int], names: List[str]) -> Any:
    return pl.DataFrame({"id": ids, "name": names})


def read_back(path: Path, version: Any = None) -> List[Dict[str, Any]]:
    """Rows of the Delta table at `path` (sorted by id), read by deltalake."""
    table = deltalake.DeltaTable(str(path), version=version)
    return sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def delta_table(tmp_path: Path, name: str = "u", primary_key: Any = None) -> Path:
    loc = tmp_path / name
    Catalog.create_table("main", "default", name, [], str(loc), data_source_format="DELTA",
                         primary_key=primary_key)
    return loc


def test_overwrite_writes_a_delta_table_and_scan_table_reads_it(tmp_path: Path) -> None:
    loc = delta_table(tmp_path)
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


def test_append_adds_rows(tmp_path: Path) -> None:
    loc = delta_table(tmp_path)
    Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="append")
    Catalog.write_table(users([2], ["b"]), "main", "default", "u", delta_mode="append")
    assert read_back(loc) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert deltalake.DeltaTable(str(loc)).version() == 1


def test_append_of_another_schema_fails_and_keeps_the_old_data(tmp_path: Path) -> None:
    loc = delta_table(tmp_path)
    Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="append")
    with pytest.raises(Exception):
        Catalog.write_table(pl.DataFrame({"other": [1.5]}), "main", "default", "u", delta_mode="append")
    assert read_back(loc) == [{"id": 1, "name": "a"}]
    assert deltalake.DeltaTable(str(loc)).version() == 0


def test_merge_upserts_by_primary_key(tmp_path: Path) -> None:
    loc = delta_table(tmp_path, primary_key="id")
    # The first merge creates the table; later ones update matches and insert the rest.
    Catalog.write_table(users([1, 2], ["a", "b"]), "main", "default", "u", delta_mode="merge",
                        primary_key="id")
    assert read_back(loc) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    Catalog.write_table(users([2, 3], ["B", "c"]), "main", "default", "u", delta_mode="merge",
                        primary_key=["id"])
    assert read_back(loc) == [{"id": 1, "name": "a"}, {"id": 2, "name": "B"}, {"id": 3, "name": "c"}]
    # The table's recorded primary key is used when none is given.
    Catalog.write_table(users([1], ["A"]), "main", "default", "u", delta_mode="merge")
    assert [r["name"] for r in read_back(loc)] == ["A", "B", "c"]


def test_merge_without_primary_key_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    loc = delta_table(tmp_path)
    with pytest.raises(AlopexError, match="primary_key"):
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="merge")
    assert not loc.exists()


def test_error_mode(tmp_path: Path) -> None:
    loc = delta_table(tmp_path)
    Catalog.write_table(users([1], ["a"]), "main", "default", "u")  # default mode: error
    with pytest.raises(AlopexError, match="already exists"):
        Catalog.write_table(users([2], ["b"]), "main", "default", "u", delta_mode="error")
    assert read_back(loc) == [{"id": 1, "name": "a"}]


def test_ignore_mode(tmp_path: Path) -> None:
    loc = delta_table(tmp_path)
    Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="ignore")
    Catalog.write_table(users([2], ["b"]), "main", "default", "u", delta_mode="ignore")
    assert read_back(loc) == [{"id": 1, "name": "a"}]


def test_error_and_ignore_need_a_registered_table(tmp_path: Path) -> None:
    for mode in ("error", "ignore"):
        with pytest.raises(AlopexError, match="does not exist"):
            Catalog.write_table(users([1], ["a"]), "main", "default", "v", delta_mode=mode,
                                storage_location=str(tmp_path / "v"))
    assert not (tmp_path / "v").exists()
