"""alopex.Catalog (SPEC 3.4): DDL, validation, write modes, scans, threads.

Every test starts from an empty in-memory catalog (the `fresh_catalog`
fixture closes the process-wide store and unsets ALOPEX_CATALOG_PATH)."""

from __future__ import annotations

import datetime as dt
import errno
import importlib.util
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

import alopex
from alopex import AlopexError, Catalog, CatalogInfo, ColumnInfo, NamespaceInfo, TableInfo
from alopex import _catalog

from alopex_helpers import fresh_catalog, ns  # noqa: F401  (fixtures)

pl = pytest.importorskip("polars")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(autouse=True)
def _own_catalog(fresh_catalog: None) -> None:
    """Every test here starts from an empty Catalog (alopex_helpers)."""


def users(ids: List[int], names: List[str]) -> Any:
    return pl.DataFrame({"id": ids, "name": names})


def read_back(path: Path) -> List[Dict[str, Any]]:
    """Rows of a Parquet file as read by pyarrow, a reader other than polars."""
    return pq.read_table(str(path)).to_pylist()


# ---- the seed example ------------------------------------------------------

def test_seed_catalog_example_runs_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    import polars as pl
    from alopex import Catalog, ColumnInfo

    Catalog.create_catalog("main")
    Catalog.create_namespace("main", "default")

    columns = [ColumnInfo("id", "int", 0, False)]
    Catalog.create_table("main", "default", "users", columns, "/tmp/users.parquet")

    df = pl.DataFrame({"id": [1, 2], "name": ["a", "b"]})
    Catalog.write_table(
        df,
        "main",
        "default",
        "users",
        delta_mode="overwrite",
        storage_location="/tmp/users.parquet",
    )

    lazy_frame = Catalog.scan_table("main", "default", "users")
    print(lazy_frame.collect())
    out = capsys.readouterr().out
    assert "shape: (2, 2)" in out
    assert read_back(Path("/tmp/users.parquet")) == [{"id": 1, "name": "a"},
                                                    {"id": 2, "name": "b"}]


# ---- DDL ----------------------------------------------------------------------

def test_catalogs_are_created_listed_sorted_and_got() -> None:
    Catalog.create_catalog("zeta", comment="last")
    Catalog.create_catalog("alpha", storage_root="s3://bucket/root")
    assert [c.name for c in Catalog.list_catalogs()] == ["alpha", "zeta"]
    assert Catalog.get_catalog("zeta") == CatalogInfo("zeta", "last", None)
    assert Catalog.get_catalog("alpha").storage_root == "s3://bucket/root"


def test_namespaces_and_tables_are_listed_sorted(ns: None, tmp_path: Path) -> None:
    Catalog.create_namespace("main", "b_ns")
    Catalog.create_namespace("main", "a_ns", comment="first")
    assert [n.name for n in Catalog.list_namespaces("main")] == ["a_ns", "b_ns", "default"]
    assert Catalog.get_namespace("main", "a_ns") == NamespaceInfo("a_ns", "main", "first", None)
    for t in ("t3", "t1", "t2"):
        Catalog.create_table("main", "default", t, [], str(tmp_path / f"{t}.parquet"))
    assert [t.name for t in Catalog.list_tables("main", "default")] == ["t1", "t2", "t3"]


def test_table_info_keeps_every_field(ns: None, tmp_path: Path) -> None:
    cols = [ColumnInfo("id", "BIGINT", 0, False, "key"), ColumnInfo("name", "TEXT", 1)]
    loc = str(tmp_path / "u.parquet")
    Catalog.create_table("main", "default", "u", cols, loc, primary_key=["id"], comment="c")
    info = Catalog.get_table_info("main", "default", "u")
    assert info == TableInfo("u", "main", "default", "MANAGED", loc, "PARQUET", cols, ["id"], "c")
    assert info.columns[0].comment == "key" and info.columns[0].nullable is False
    assert "TableInfo(name='u'" in repr(info) and "ColumnInfo(name='id'" in repr(info)


def test_info_attributes_are_read_only() -> None:
    col = ColumnInfo("id", "int")
    assert (col.position, col.nullable, col.comment) == (0, True, None)
    with pytest.raises(AttributeError):
        col.name = "x"  # type: ignore[misc]
    info = Catalog.create_catalog("main")
    with pytest.raises(AttributeError):
        info.comment = "x"  # type: ignore[misc]


def test_deleting_a_catalog_deletes_its_namespaces_and_tables(ns: None, tmp_path: Path) -> None:
    Catalog.create_table("main", "default", "t", [], str(tmp_path / "t.parquet"))
    Catalog.create_catalog("other")
    Catalog.delete_catalog("main")
    assert [c.name for c in Catalog.list_catalogs()] == ["other"]
    with pytest.raises(ValueError):
        Catalog.get_table_info("main", "default", "t")
    # Recreating gives an empty catalog: nothing of the old one survives.
    Catalog.create_catalog("main")
    assert Catalog.list_namespaces("main") == []
    Catalog.create_namespace("main", "default")
    assert Catalog.list_tables("main", "default") == []


def test_deleting_a_namespace_deletes_its_tables(ns: None, tmp_path: Path) -> None:
    Catalog.create_table("main", "default", "t", [], str(tmp_path / "t.parquet"))
    Catalog.delete_namespace("main", "default")
    assert Catalog.list_namespaces("main") == []
    Catalog.create_namespace("main", "default")
    assert Catalog.list_tables("main", "default") == []


def test_delete_table(ns: None, tmp_path: Path) -> None:
    Catalog.create_table("main", "default", "t", [], str(tmp_path / "t.parquet"))
    Catalog.delete_table("main", "default", "t")
    assert Catalog.list_tables("main", "default") == []
    with pytest.raises(ValueError):
        Catalog.delete_table("main", "default", "t")


@pytest.mark.parametrize("bad, exc", [(b, ValueError) for b in ["../x", "a/b", "", "1abc", "a-b", "a.b", " a", "é"]]
                         + [(b, TypeError) for b in [None, 3, b"main"]])
def test_bad_names_are_rejected_and_create_nothing(bad: Any, exc: type, tmp_path: Path) -> None:
    """A str that is not a name is a ValueError; a name that is not a str, a
    TypeError (as in AlopexDB, whose names are `&str` arguments)."""
    loc = str(tmp_path / "t.parquet")
    with pytest.raises(exc):
        Catalog.create_catalog(bad)
    Catalog.create_catalog("main")
    with pytest.raises(exc):
        Catalog.list_namespaces(bad)
    with pytest.raises(exc):
        Catalog.create_namespace("main", bad)
    Catalog.create_namespace("main", "default")
    with pytest.raises(exc):
        Catalog.create_table("main", "default", bad, [], loc)
    with pytest.raises(exc):
        Catalog.write_table(users([1], ["a"]), "main", "default", bad, delta_mode="overwrite",
                            storage_location=loc)
    assert Catalog.list_tables("main", "default") == [] and not list(tmp_path.iterdir())


def test_missing_objects_are_value_errors(ns: None) -> None:
    """(The other calls on missing objects, with AlopexDB's codes: test_alopex_catalog_alopexdb.py.)"""
    calls = [
        lambda: Catalog.get_catalog("nope"),
        lambda: Catalog.delete_catalog("nope"),
        lambda: Catalog.get_namespace("main", "nope"),
        lambda: Catalog.delete_namespace("main", "nope"),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


def test_a_duplicate_table_is_an_alopex_error_and_changes_nothing(ns: None, tmp_path: Path) -> None:
    """(Duplicate catalogs and namespaces: test_alopex_catalog_alopexdb.py.)"""
    Catalog.create_table("main", "default", "t", [], str(tmp_path / "t.parquet"))
    with pytest.raises(AlopexError, match="already exists"):
        Catalog.create_table("main", "default", "t", [], str(tmp_path / "t2.parquet"))
    assert Catalog.get_table_info("main", "default", "t").storage_location.endswith("t.parquet")


def test_formats(ns: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loc = str(tmp_path / "t")
    with pytest.raises(AlopexError, match="unsupported data_source_format"):
        Catalog.create_table("main", "default", "t", [], loc, data_source_format="CSV")
    # Without deltalake (hidden here whether or not it is installed) DELTA says what to install.
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "deltalake", None)
        with pytest.raises(AlopexError, match=re.escape("pip install 'pomai[delta]'")):
            Catalog.create_table("main", "default", "t", [], loc, data_source_format="DELTA")
    assert Catalog.list_tables("main", "default") == []
    info = Catalog.create_table("main", "default", "t", [], loc, data_source_format="parquet")
    assert info.data_source_format == "PARQUET"
    # With deltalake, DELTA tables work: test_alopex_catalog_delta.py.


@pytest.mark.parametrize("loc", ["file:///data/t.parquet", "s3://b/t.parquet", "gs://b/t",
                                 "az://c/t", "abfs://c@a.dfs.core.windows.net/t", "/abs/t",
                                 "rel/t.parquet"])
def test_accepted_storage_locations(ns: None, loc: str) -> None:
    assert Catalog.create_table("main", "default", "t", [], loc).storage_location == loc


@pytest.mark.parametrize("loc", ["http://x/t", "ftp://x/t", "hdfs://x/t", ""])
def test_rejected_storage_locations(ns: None, loc: str) -> None:
    with pytest.raises(ValueError):
        Catalog.create_table("main", "default", "t", [], loc)
    with pytest.raises(ValueError):
        Catalog.write_table(users([1], ["a"]), "main", "default", "t", delta_mode="overwrite",
                            storage_location=loc)
    assert Catalog.list_tables("main", "default") == []


# ---- write modes ---------------------------------------------------------------

def test_overwrite_creates_a_table_from_the_schema(ns: None, tmp_path: Path) -> None:
    loc = tmp_path / "all.parquet"
    df = pl.DataFrame({
        "i8": pl.Series([1], dtype=pl.Int8), "i16": pl.Series([1], dtype=pl.Int16),
        "i32": pl.Series([1], dtype=pl.Int32), "i64": pl.Series([1], dtype=pl.Int64),
        "f32": pl.Series([1.0], dtype=pl.Float32), "f64": [1.0], "s": ["x"], "b": [b"\x00"],
        "ok": [True], "ts": [dt.datetime(2024, 1, 1)], "d": [dt.date(2024, 1, 1)],
    })
    Catalog.write_table(df, "main", "default", "all", delta_mode="overwrite",
                        storage_location=str(loc))
    info = Catalog.get_table_info("main", "default", "all")
    assert [(c.name, c.type_name, c.position) for c in info.columns] == [
        ("i8", "INTEGER", 0), ("i16", "INTEGER", 1), ("i32", "INTEGER", 2), ("i64", "BIGINT", 3),
        ("f32", "FLOAT", 4), ("f64", "DOUBLE", 5), ("s", "TEXT", 6), ("b", "BLOB", 7),
        ("ok", "BOOLEAN", 8), ("ts", "TIMESTAMP", 9), ("d", "TIMESTAMP", 10)]
    assert info.storage_location == str(loc) and info.data_source_format == "PARQUET"
    assert read_back(loc)[0]["s"] == "x"


def test_parquet_tables_are_written_snappy_compressed(ns: None, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    loc = tmp_path / "t.parquet"
    df = pl.DataFrame({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
    for mode in ("overwrite", "append", "merge"):
        Catalog.write_table(df, "main", "default", "t", delta_mode=mode, storage_location=str(loc),
                            primary_key="id")
        meta = pq.ParquetFile(loc).metadata
        codecs = {meta.row_group(g).column(c).compression
                  for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
        assert codecs == {"SNAPPY"}, (mode, codecs)
    assert Catalog.scan_table("main", "default", "t").collect().sort("id").equals(df)


def test_overwrite_replaces_the_data(ns: None, tmp_path: Path) -> None:
    loc = tmp_path / "u.parquet"
    Catalog.write_table(users([1, 2], ["a", "b"]), "main", "default", "u",
                        delta_mode="overwrite", storage_location=str(loc))
    Catalog.write_table(users([3], ["c"]), "main", "default", "u", delta_mode="overwrite")
    assert read_back(loc) == [{"id": 3, "name": "c"}]
    assert not [p for p in tmp_path.iterdir() if p.name != "u.parquet"]  # no temp file left


@pytest.mark.parametrize("failing", ["background", "final"])
def test_a_failed_sync_fails_the_write_and_keeps_the_old_data(
        ns: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """The file is synced while polars writes it (a background thread) and once
    at the end; an EIO from either is raised, never lost, and nothing changes."""
    loc = tmp_path / "u.parquet"
    Catalog.write_table(users([1, 2], ["a", "b"]), "main", "default", "u",
                        delta_mode="overwrite", storage_location=str(loc))
    real = os.fdatasync
    started = threading.Event()

    def fdatasync(fd: int) -> None:
        background = threading.current_thread() is not threading.main_thread()
        started.set()
        if background == (failing == "background"):
            raise OSError(5, "Input/output error (injected)")
        real(fd)

    monkeypatch.setattr(_catalog.os, "fdatasync", fdatasync)
    if failing == "background":  # make sure the background thread syncs before polars returns
        monkeypatch.setattr(_catalog, "_WRITEBACK_MIN_BYTES", 0)  # even for this small frame
        real_write = pl.DataFrame.write_parquet

        def slow_write(self: Any, *args: Any, **kwargs: Any) -> None:
            real_write(self, *args, **kwargs)
            assert started.wait(5)

        monkeypatch.setattr(pl.DataFrame, "write_parquet", slow_write)
    with pytest.raises(OSError, match="injected"):
        Catalog.write_table(users([3], ["c"]), "main", "default", "u", delta_mode="overwrite")
    assert read_back(loc) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert not [p for p in tmp_path.iterdir() if p.name != "u.parquet"]  # no temp file left


@pytest.mark.parametrize("errno_", [errno.EIO, errno.EINVAL])
def test_a_failed_directory_sync_is_raised_unless_the_filesystem_cannot_sync_one(
        ns: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_: int) -> None:
    """The rename is durable only once the directory is synced: an EIO there
    is the caller's to know. EINVAL means the filesystem cannot sync a
    directory at all, and is let be."""
    loc = tmp_path / "u.parquet"
    Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="overwrite",
                        storage_location=str(loc))

    def fsync(fd: int) -> None:
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr(_catalog.os, "fsync", fsync)
    write = lambda: Catalog.write_table(users([2], ["b"]), "main", "default", "u",  # noqa: E731
                                        delta_mode="overwrite")
    if errno_ == errno.EIO:
        with pytest.raises(OSError) as e:
            write()
        assert e.value.errno == errno.EIO
    else:
        write()
    assert read_back(loc) == [{"id": 2, "name": "b"}]  # renamed either way
    assert [p.name for p in tmp_path.iterdir()] == ["u.parquet"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_the_replaced_file_is_not_held_open_after_the_write(ns: None, tmp_path: Path) -> None:
    """The old file is closed by a background thread after the rename (its
    blocks are freed off the caller's path), but closed all the same."""
    loc = tmp_path / "u.parquet"
    for i in range(3):
        Catalog.write_table(users([i], ["a"]), "main", "default", "u", delta_mode="overwrite",
                            storage_location=str(loc))

    def held() -> List[str]:
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(tmp_path)):
                out.append(target)
        return out

    deadline = time.monotonic() + 10
    while held() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held() == []


# The write modes of the two formats of a table. DELTA needs the deltalake
# package (requirements-dev.txt installs it); its own tests: test_alopex_catalog_delta.py.
FORMATS = ["PARQUET", pytest.param("DELTA", marks=pytest.mark.skipif(
    importlib.util.find_spec("deltalake") is None, reason="deltalake is not installed"))]
formats = pytest.mark.parametrize("fmt", FORMATS)


def table_of(fmt: str, tmp_path: Path, primary_key: Any = None) -> Path:
    """Registers main.default.u, a table of format `fmt`; its location."""
    loc = tmp_path / "u"
    Catalog.create_table("main", "default", "u", [], str(loc), data_source_format=fmt, primary_key=primary_key)
    return loc


def rows_of(fmt: str, loc: Path) -> List[Dict[str, Any]]:
    """The table's rows as a reader other than polars reads them: pyarrow (in
    the file's order), deltalake (by id: a Delta table's files have no order)."""
    if fmt == "PARQUET":
        return read_back(loc)
    import deltalake
    return sorted(deltalake.DeltaTable(str(loc)).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def delta_version(fmt: str, loc: Path) -> Any:
    """The version of a Delta table (one per write that changed it); None for PARQUET."""
    if fmt == "PARQUET":
        return None
    import deltalake
    return deltalake.DeltaTable(str(loc)).version()


@formats
def test_append_adds_rows(ns: None, tmp_path: Path, fmt: str) -> None:
    loc = table_of(fmt, tmp_path)
    Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="append")
    Catalog.write_table(users([2], ["b"]).lazy(), "main", "default", "u", delta_mode="append")
    assert rows_of(fmt, loc) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    got = Catalog.scan_table("main", "default", "u").collect().sort("id")
    assert got.to_dicts() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert delta_version(fmt, loc) in (None, 1)


@formats
def test_merge_upserts_by_primary_key(ns: None, tmp_path: Path, fmt: str) -> None:
    loc = table_of(fmt, tmp_path, primary_key="id")
    # The first merge writes the data; later ones update matches and insert the rest.
    Catalog.write_table(users([1, 2], ["a", "b"]), "main", "default", "u", delta_mode="merge",
                        primary_key="id")
    Catalog.write_table(users([2, 3], ["B", "c"]), "main", "default", "u", delta_mode="merge",
                        primary_key=["id"])
    rows = sorted(rows_of(fmt, loc), key=lambda r: r["id"])
    assert rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "B"}, {"id": 3, "name": "c"}]
    # The table's own primary key is used when none is given.
    Catalog.write_table(users([1], ["A"]), "main", "default", "u", delta_mode="merge")
    rows = sorted(rows_of(fmt, loc), key=lambda r: r["id"])
    assert [r["name"] for r in rows] == ["A", "B", "c"]


def test_merge_into_a_missing_table_creates_it_with_the_key(ns: None, tmp_path: Path) -> None:
    loc = tmp_path / "u.parquet"
    with pytest.raises(AlopexError, match="primary_key"):  # a key the data does not have
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="merge",
                            storage_location=str(loc), primary_key="nope")
    assert Catalog.list_tables("main", "default") == [] and not list(tmp_path.iterdir())
    Catalog.write_table(users([1, 2], ["a", "b"]), "main", "default", "u", delta_mode="merge",
                        storage_location=str(loc), primary_key="id")
    assert Catalog.get_table_info("main", "default", "u").primary_key == ["id"]
    assert read_back(loc) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


@formats
def test_append_of_another_schema_fails_and_keeps_the_old_data(ns: None, tmp_path: Path, fmt: str) -> None:
    loc = table_of(fmt, tmp_path)
    Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="append")
    with pytest.raises(AlopexError):
        Catalog.write_table(pl.DataFrame({"other": [1.5]}), "main", "default", "u",
                            delta_mode="append")
    assert rows_of(fmt, loc) == [{"id": 1, "name": "a"}]
    assert [p.name for p in tmp_path.iterdir()] == ["u"]
    assert delta_version(fmt, loc) in (None, 0)


@formats
def test_merge_without_primary_key_is_an_alopex_error(ns: None, tmp_path: Path, fmt: str) -> None:
    """AlopexDB's PrimaryKeyRequired, for a missing table as for a registered one."""
    loc = tmp_path / "u"
    with pytest.raises(AlopexError, match="primary_key") as e:
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="merge",
                            storage_location=str(loc))
    assert not isinstance(e.value, ValueError)
    assert Catalog.list_tables("main", "default") == [] and not loc.exists()
    table_of(fmt, tmp_path)
    with pytest.raises(AlopexError, match="primary_key"):
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="merge")
    with pytest.raises(AlopexError, match="primary_key"):
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="merge",
                            primary_key="missing_column")
    assert not loc.exists()


@formats
@pytest.mark.parametrize("mode", ["error", "ignore"])
def test_error_and_ignore_modes(ns: None, tmp_path: Path, fmt: str, mode: str) -> None:
    """Both write only a registered table, and only while it holds no data;
    then error raises and ignore does nothing."""
    loc = tmp_path / "u"
    with pytest.raises(AlopexError, match="does not exist"):
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode=mode,
                            storage_location=str(loc))
    assert Catalog.list_tables("main", "default") == [] and not loc.exists()
    table_of(fmt, tmp_path)
    kwargs = {"delta_mode": mode} if mode == "ignore" else {}  # error is the default mode
    Catalog.write_table(users([1], ["a"]), "main", "default", "u", **kwargs)
    if mode == "error":
        with pytest.raises(AlopexError, match="already exists"):
            Catalog.write_table(users([2], ["b"]), "main", "default", "u", delta_mode="error")
    else:
        Catalog.write_table(users([2], ["b"]), "main", "default", "u", delta_mode="ignore")
    assert rows_of(fmt, loc) == [{"id": 1, "name": "a"}]


def test_missing_table_needs_a_storage_location(ns: None) -> None:
    for mode in ("append", "overwrite", "merge"):
        with pytest.raises(AlopexError, match="storage_location"):
            Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode=mode,
                                primary_key="id")
    assert Catalog.list_tables("main", "default") == []


def test_bad_mode_and_other_location(ns: None, tmp_path: Path) -> None:
    with pytest.raises(AlopexError, match="delta_mode"):
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="upsert",
                            storage_location=str(tmp_path / "u.parquet"))
    with pytest.raises(TypeError, match="delta_mode"):
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode=None,
                            storage_location=str(tmp_path / "u.parquet"))
    Catalog.create_table("main", "default", "u", [], str(tmp_path / "u.parquet"))
    with pytest.raises(AlopexError, match="stored at"):
        Catalog.write_table(users([1], ["a"]), "main", "default", "u", delta_mode="overwrite",
                            storage_location=str(tmp_path / "elsewhere.parquet"))
    assert not list(tmp_path.iterdir())


def test_file_uri_locations_are_written(ns: None, tmp_path: Path) -> None:
    loc = tmp_path / "f.parquet"
    Catalog.write_table(users([1], ["a"]), "main", "default", "f", delta_mode="overwrite",
                        storage_location=loc.as_uri())
    assert read_back(loc) == [{"id": 1, "name": "a"}]
    assert Catalog.scan_table("main", "default", "f").collect().height == 1


# ---- scan_table options ---------------------------------------------------------

@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """The calls of pl.scan_parquet, as (args, keywords), with AWS credentials in the environment."""
    for k, v in {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(k, v)
    calls: List[Any] = []

    def scan(*args: Any, storage_options: Any = None, **kwargs: Any) -> str:
        # Shaped like polars' scan functions: options come as storage_options=.
        if storage_options is not None:
            kwargs["storage_options"] = storage_options
        calls.append((args, kwargs))
        return "lazy"

    monkeypatch.setattr(pl, "scan_parquet", scan)
    return calls


def test_scan_table_resolves_s3_credentials_from_the_environment(ns: None, rec: List[Any]) -> None:
    Catalog.create_table("main", "default", "s", [], "s3://bucket/s.parquet")
    assert Catalog.scan_table("main", "default", "s") == "lazy"
    assert rec == [(("s3://bucket/s.parquet",), {"storage_options": {
        "aws_access_key_id": "AK", "aws_secret_access_key": "SK", "aws_region": "eu-west-1"}})]
    Catalog.scan_table("main", "default", "s", credential_provider=None,
                       storage_options={"aws_region": "us-east-1", "endpoint_url": "http://e"})
    assert rec[1][1]["storage_options"] == {
        "aws_access_key_id": "AK", "aws_secret_access_key": "SK", "aws_region": "us-east-1",
        "endpoint_url": "http://e"}


def test_scan_table_of_a_local_table_passes_no_options(ns: None, rec: List[Any], tmp_path: Path) -> None:
    Catalog.create_table("main", "default", "t", [], str(tmp_path / "t.parquet"))
    Catalog.scan_table("main", "default", "t")
    assert rec == [((str(tmp_path / "t.parquet"),), {})]


# ---- threads --------------------------------------------------------------------

def test_two_threads_write_different_tables_at_once(ns: None, tmp_path: Path) -> None:
    barrier = threading.Barrier(2)
    errors: List[BaseException] = []

    def writer(name: str, base: int) -> None:
        try:
            barrier.wait()
            for i in range(20):
                Catalog.write_table(users([base + i], [name]), "main", "default", name,
                                    delta_mode="append",
                                    storage_location=str(tmp_path / f"{name}.parquet"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=("left", 0)),
               threading.Thread(target=writer, args=("right", 100))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert [t.name for t in Catalog.list_tables("main", "default")] == ["left", "right"]
    assert [r["id"] for r in read_back(tmp_path / "left.parquet")] == list(range(20))
    assert [r["id"] for r in read_back(tmp_path / "right.parquet")] == list(range(100, 120))


def test_threads_appending_to_one_table_lose_no_rows(ns: None, tmp_path: Path) -> None:
    loc = str(tmp_path / "one.parquet")
    Catalog.create_table("main", "default", "one", [], loc)

    def writer(base: int) -> None:
        for i in range(10):
            Catalog.write_table(users([base + i], ["x"]), "main", "default", "one",
                                delta_mode="append")

    threads = [threading.Thread(target=writer, args=(b,)) for b in (0, 100, 200)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r["id"] for r in read_back(Path(loc))) == sorted(
        b + i for b in (0, 100, 200) for i in range(10))


def test_exports() -> None:
    for name in ("Catalog", "CatalogInfo", "NamespaceInfo", "ColumnInfo", "TableInfo"):
        assert name in alopex.__all__ and getattr(alopex, name) is getattr(_catalog, name)
    assert os.environ.get("ALOPEX_CATALOG_PATH") is None
