"""alopex.Catalog as AlopexDB's own Python tests specify it.

The checks of AlopexDB's tests/test_catalog.py, test_catalog_consistency.py
and test_credentials.py (crates/alopex-py), restated here: the error type
of every failure (a missing object is a ValueError carrying AlopexDB's
code, a write it cannot do an AlopexError), the write modes, the storage
options handed to polars, the credential resolver at its AlopexDB path
`alopex._alopex.catalog._resolve_credentials`, and the `alopex._alopex`
module itself. The merged options reach a scan function without a
`storage_options` parameter as separate keywords (`token=...`), as AlopexDB
passes them, and real polars as its `storage_options=` dict, the only way
polars accepts them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

import alopex
from alopex import AlopexError, Catalog, ColumnInfo

from alopex_helpers import fresh_catalog, ns  # noqa: F401  (fixtures)

pl = pytest.importorskip("polars")


@pytest.fixture(autouse=True)
def _own_catalog(fresh_catalog: None) -> None:
    """Every test here starts from an empty Catalog (alopex_helpers)."""


ID_NAME = [ColumnInfo("id", "INTEGER", 0, False), ColumnInfo("name", "TEXT", 1, True)]


def code_of(exc: pytest.ExceptionInfo[BaseException]) -> Any:
    return getattr(exc.value, "code", None)


# ---- metadata ------------------------------------------------------------------

def test_listed_infos_carry_every_field_with_its_default(ns: None, tmp_path: Path) -> None:
    loc = str(tmp_path / "data.parquet")
    Catalog.create_table("main", "default", "users", ID_NAME, loc, data_source_format="PARQUET")

    cat = next(c for c in Catalog.list_catalogs() if c.name == "main")
    assert (cat.comment, cat.storage_root) == (None, None)
    space = next(n for n in Catalog.list_namespaces("main") if n.name == "default")
    assert (space.catalog_name, space.comment, space.storage_root) == ("main", None, None)
    table = next(t for t in Catalog.list_tables("main", "default") if t.name == "users")
    assert (table.catalog_name, table.namespace_name, table.table_type) == (
        "main", "default", "MANAGED")
    assert (table.storage_location, table.data_source_format) == (loc, "PARQUET")
    assert (table.primary_key, table.comment) == (None, None)
    assert [(c.name, c.type_name, c.position, c.nullable) for c in table.columns] == [
        ("id", "INTEGER", 0, False), ("name", "TEXT", 1, True)]
    assert Catalog.get_table_info("main", "default", "users") == table


def test_methods_take_alopexdbs_keyword_names(tmp_path: Path) -> None:
    loc = str(tmp_path / "k.parquet")
    Catalog.create_catalog(name="main")
    Catalog.create_namespace(catalog_name="main", namespace="default")
    Catalog.create_table(catalog_name="main", namespace="default", table_name="k",
                         columns=ID_NAME, storage_location=loc, data_source_format="PARQUET")
    Catalog.write_table(df=pl.DataFrame({"id": [1], "name": ["a"]}), catalog_name="main",
                        namespace="default", table_name="k", delta_mode="overwrite",
                        storage_location=None, credential_provider="auto", storage_options=None,
                        primary_key=None)
    lf = Catalog.scan_table(catalog_name="main", namespace="default", table_name="k",
                            credential_provider="auto", storage_options=None)
    assert lf.collect().to_dicts() == [{"id": 1, "name": "a"}]
    assert [t.name for t in Catalog.list_tables(catalog_name="main", namespace="default")] == ["k"]
    assert Catalog.get_table_info(catalog_name="main", namespace="default",
                                  table_name="k").name == "k"
    Catalog.delete_table(catalog_name="main", namespace="default", table_name="k")
    Catalog.delete_namespace(catalog_name="main", namespace="default")
    Catalog.delete_catalog(name="main")
    assert Catalog.list_catalogs() == []


# ---- the error of each failure -------------------------------------------------

@pytest.mark.parametrize("args", [(1, "INTEGER"), ("id", None), ("id", "INTEGER", "0"),
                                  ("id", "INTEGER", 1.0)])
def test_a_column_field_of_the_wrong_type_is_a_type_error(args: Any) -> None:
    with pytest.raises(TypeError):
        ColumnInfo(*args)


@pytest.mark.parametrize("args", [("", "INTEGER"), ("id", ""), ("id", "INTEGER", -1)])
def test_an_empty_column_name_or_a_negative_position_is_a_value_error(args: Any) -> None:
    """Stricter than AlopexDB, which accepts the empty names and reports -1
    as an OverflowError."""
    with pytest.raises(ValueError):
        ColumnInfo(*args)


def test_a_namespace_in_a_missing_catalog_is_a_value_error() -> None:
    with pytest.raises(ValueError) as e:
        Catalog.create_namespace("nope", "default")
    assert code_of(e) == "ALOPEX-PY004"  # the parent of the new namespace


def test_a_table_in_a_missing_catalog_or_namespace_is_a_value_error(ns: None) -> None:
    for catalog, namespace in (("nope", "default"), ("main", "nope")):
        with pytest.raises(ValueError) as e:
            Catalog.create_table(catalog, namespace, "t", ID_NAME, "/tmp/t.parquet")
        assert code_of(e) == "ALOPEX-PY004"


def test_duplicate_catalogs_and_namespaces_are_runtime_errors(ns: None) -> None:
    with pytest.raises(RuntimeError) as e:
        Catalog.create_catalog("main")
    assert code_of(e) == "ALOPEX-PY005"
    with pytest.raises(RuntimeError) as e:
        Catalog.create_namespace("main", "default")
    assert code_of(e) == "ALOPEX-PY006"


def test_scan_of_a_missing_table_or_a_bad_name_is_a_value_error(ns: None) -> None:
    with pytest.raises(ValueError) as e:
        Catalog.scan_table("main", "default", "missing_table")
    assert code_of(e) == "ALOPEX-PY003"
    with pytest.raises(ValueError):
        Catalog.scan_table("bad-name", "default", "t")


def test_missing_objects_are_value_errors_with_the_code_of_the_first_one_missing(
        ns: None, tmp_path: Path) -> None:
    """AlopexDB's lifecycle: delete a table, then its namespace, then the
    catalog, and each lookup below what is gone names what is gone."""
    Catalog.create_namespace("main", "archive")
    for space, table in (("default", "events"), ("default", "snapshots"),
                         ("archive", "events_archive")):
        Catalog.create_table("main", space, table, ID_NAME, str(tmp_path / f"{table}.parquet"))

    Catalog.delete_table("main", "default", "snapshots")
    assert [t.name for t in Catalog.list_tables("main", "default")] == ["events"]
    with pytest.raises(ValueError) as e:
        Catalog.get_table_info("main", "default", "snapshots")
    assert code_of(e) == "ALOPEX-PY003"

    Catalog.delete_namespace("main", "default")
    assert [n.name for n in Catalog.list_namespaces("main")] == ["archive"]
    for call in (lambda: Catalog.list_tables("main", "default"),
                 lambda: Catalog.get_table_info("main", "default", "events")):
        with pytest.raises(ValueError) as e:
            call()
        assert code_of(e) == "ALOPEX-PY002"
    assert Catalog.get_table_info("main", "archive", "events_archive").namespace_name == "archive"

    Catalog.delete_catalog("main")
    assert Catalog.list_catalogs() == []
    for call in (lambda: Catalog.list_namespaces("main"),
                 lambda: Catalog.list_tables("main", "archive")):
        with pytest.raises(ValueError) as e:
            call()
        assert code_of(e) == "ALOPEX-PY001"


def test_write_into_a_missing_catalog_or_namespace_is_a_value_error(
        ns: None, tmp_path: Path) -> None:
    df = pl.DataFrame({"id": [1]})
    for catalog, namespace, code in (("nope", "default", "ALOPEX-PY001"),
                                     ("main", "nope", "ALOPEX-PY002")):
        with pytest.raises(ValueError) as e:
            Catalog.write_table(df, catalog, namespace, "t", delta_mode="overwrite",
                                storage_location=str(tmp_path / "t.parquet"))
        assert code_of(e) == code
    assert not list(tmp_path.iterdir())


# ---- write modes ---------------------------------------------------------------

def test_append_overwrite_and_merge_in_sequence(ns: None, tmp_path: Path) -> None:
    loc = str(tmp_path / "data.parquet")
    Catalog.write_table(pl.DataFrame({"id": [1, 2], "name": ["a", "b"]}), "main", "default", "t",
                        delta_mode="append", storage_location=loc)
    assert pl.read_parquet(loc).height == 2
    Catalog.write_table(pl.DataFrame({"id": [3], "name": ["c"]}), "main", "default", "t",
                        delta_mode="append")
    assert pl.read_parquet(loc).height == 3
    Catalog.write_table(pl.DataFrame({"id": [10], "name": ["z"]}), "main", "default", "t",
                        delta_mode="overwrite")
    assert pl.read_parquet(loc)["id"].to_list() == [10]
    Catalog.write_table(pl.DataFrame({"id": [2, 4], "name": ["bb", "d"]}), "main", "default",
                        "t", delta_mode="merge", primary_key=["id"])
    out = pl.read_parquet(loc).sort("id")
    assert out.to_dicts() == [{"id": 2, "name": "bb"}, {"id": 4, "name": "d"},
                              {"id": 10, "name": "z"}]


class DType:
    """A dtype that is only its name, as a duck-typed frame reports it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


class DuckFrame:
    """Rows with a `schema` and a `write_parquet` that writes JSON: what
    AlopexDB's write_table asks of a frame, and nothing of polars."""

    def __init__(self, rows: List[Dict[str, Any]]) -> None:
        self.rows = rows

    @property
    def schema(self) -> Dict[str, DType]:
        return {k: DType("Int64" if isinstance(v, int) else "String")
                for k, v in self.rows[0].items()}

    def write_parquet(self, path: str, **_options: Any) -> None:
        Path(path).write_text(json.dumps(self.rows))


class LazyFrame:  # named so: write_table collects a frame by this name
    def __init__(self, frame: DuckFrame) -> None:
        self.frame = frame

    def collect(self) -> DuckFrame:
        return self.frame


def test_a_duck_typed_lazy_frame_is_collected_registered_and_written(
        ns: None, tmp_path: Path) -> None:
    rows = [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]
    loc = str(tmp_path / "shared_rows.parquet")
    Catalog.write_table(LazyFrame(DuckFrame(rows)), "main", "default", "shared_rows",
                        delta_mode="overwrite", storage_location=loc)
    info = Catalog.get_table_info("main", "default", "shared_rows")
    assert (info.storage_location, info.data_source_format) == (loc, "PARQUET")
    assert [(c.name, c.type_name, c.position, c.nullable) for c in info.columns] == [
        ("id", "BIGINT", 0, True), ("name", "TEXT", 1, True)]
    assert json.loads(Path(loc).read_text()) == rows


# ---- options handed to polars --------------------------------------------------

def test_scan_merges_the_credential_dict_with_storage_options_which_win(
        ns: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loc = str(tmp_path / "data.parquet")
    pl.DataFrame({"id": [1]}).write_parquet(loc)
    Catalog.create_table("main", "default", "t", [ColumnInfo("id", "INTEGER", 0, False)], loc)
    calls: List[Any] = []
    monkeypatch.setattr(pl, "scan_parquet", lambda path, **kw: calls.append((path, kw)))
    Catalog.scan_table("main", "default", "t",
                       credential_provider={"token": "old", "shared": "old"},
                       storage_options={"shared": "new", "extra": "1"})
    assert calls == [(loc, {"token": "old", "shared": "new", "extra": "1"})]

    def polars_like(path: str, *, storage_options: Any = None, retries: int = 2) -> None:
        calls.append((path, storage_options))

    calls.clear()
    monkeypatch.setattr(pl, "scan_parquet", polars_like)
    Catalog.scan_table("main", "default", "t", credential_provider={"token": "old"},
                       storage_options={"extra": "1"})
    assert calls == [(loc, {"token": "old", "extra": "1"})]


def test_real_polars_scan_gets_the_options_as_storage_options(
        ns: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real scan_parquet: options polars knows pass, an unknown
    one is polars' own error about it (it did arrive), not a TypeError."""
    loc = str(tmp_path / "data.parquet")
    pl.DataFrame({"id": [1, 2]}).write_parquet(loc)
    Catalog.create_table("main", "default", "t", [ColumnInfo("id", "INTEGER", 0, False)], loc)
    assert Catalog.scan_table("main", "default", "t").collect()["id"].to_list() == [1, 2]
    seen: List[Any] = []
    real = pl.scan_parquet

    def spy(source: Any, *, storage_options: Any = None, **kw: Any) -> Any:
        seen.append(storage_options)
        return real(source, **kw)

    monkeypatch.setattr(pl, "scan_parquet", spy)
    Catalog.scan_table("main", "default", "t", credential_provider={"aws_region": "x"}).collect()
    assert seen == [{"aws_region": "x"}]


# ---- alopex._alopex.catalog._resolve_credentials -------------------------------

from alopex._alopex import catalog as native_catalog  # noqa: E402  (AlopexDB's import)

CLOUD_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
             "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY")


@pytest.fixture
def cloud_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Every cloud variable set, so a location that must not read them shows it."""
    for var in CLOUD_ENV:
        monkeypatch.setenv(var, var.lower())
    return monkeypatch


AZURE = {"AZURE_STORAGE_ACCOUNT": "account", "AZURE_STORAGE_KEY": "key"}


@pytest.mark.parametrize("location, env, expected", [
    ("s3://bucket/path", {"AWS_REGION": "ap-northeast-1"}, {"aws_access_key_id": "aws_access_key_id",
                                                            "aws_secret_access_key": "aws_secret_access_key",
                                                            "aws_region": "ap-northeast-1"}),
    ("gs://bucket/path", {"GOOGLE_APPLICATION_CREDENTIALS": "/tmp/gcs.json"},
     {"service_account_path": "/tmp/gcs.json"}),
    ("az://container/path", AZURE, {"account_name": "account", "account_key": "key"}),
    ("abfs://container/path", AZURE, {"account_name": "account", "account_key": "key"}),
    # Local files and unknown schemes: nothing, whatever the environment holds.
    *[(location, {}, {}) for location in ("data/table", "/abs/data.parquet", "file:///tmp/data.parquet",
                                          "ftp://example.com/data")],
])
def test_each_location_resolves_from_its_own_variables(
        cloud_env: pytest.MonkeyPatch, location: str, env: Dict[str, str], expected: Dict[str, str]) -> None:
    for var, value in env.items():
        cloud_env.setenv(var, value)
    assert native_catalog._resolve_credentials(location) == expected
    assert native_catalog._resolve_credentials(location, "auto") == expected


def test_unset_variables_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in CLOUD_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert native_catalog._resolve_credentials("s3://b/k") == {"aws_region": "eu-west-1"}


def test_a_credential_dict_is_taken_as_is_and_storage_options_win(
        cloud_env: pytest.MonkeyPatch) -> None:
    assert native_catalog._resolve_credentials(
        "s3://bucket/path", credential_provider={"token": "old", "shared": "old"},
        storage_options={"shared": "new", "extra": "1"}) == {
        "token": "old", "shared": "new", "extra": "1"}
    assert native_catalog._resolve_credentials(
        "s3://bucket/path", "auto", {"aws_region": "us-east-1"})["aws_region"] == "us-east-1"


@pytest.mark.parametrize("provider", ["unsupported", ["not", "dict"], 3])
def test_a_bad_credential_provider_is_an_alopex_error_naming_it(provider: Any) -> None:
    with pytest.raises(AlopexError, match="credential_provider") as e:
        native_catalog._resolve_credentials("s3://bucket/path", provider)
    assert repr(provider) in str(e.value)


def test_scan_and_write_reject_a_bad_credential_provider_before_doing_anything(
        ns: None, tmp_path: Path) -> None:
    loc = tmp_path / "t.parquet"
    with pytest.raises(AlopexError, match="'unsupported'"):
        Catalog.write_table(pl.DataFrame({"id": [1]}), "main", "default", "t",
                            delta_mode="overwrite", storage_location=str(loc),
                            credential_provider="unsupported")
    assert Catalog.list_tables("main", "default") == [] and not loc.exists()
    Catalog.create_table("main", "default", "t", [], str(loc))
    with pytest.raises(AlopexError, match="credential_provider"):
        Catalog.scan_table("main", "default", "t", credential_provider=["not", "dict"])


def test_scan_passes_what_the_resolver_gives(
        ns: None, cloud_env: pytest.MonkeyPatch) -> None:
    calls: List[Any] = []
    cloud_env.setattr(pl, "scan_parquet", lambda path, *, storage_options=None: calls.append(storage_options))
    Catalog.create_table("main", "default", "t", [], "s3://bucket/t.parquet")
    Catalog.scan_table("main", "default", "t", storage_options={"endpoint_url": "http://e"})
    assert calls == [native_catalog._resolve_credentials(
        "s3://bucket/t.parquet", "auto", {"endpoint_url": "http://e"})]
    # A credential dict is taken as is (no AWS variable added), and storage_options win.
    Catalog.scan_table("main", "default", "t", credential_provider={"aws_access_key_id": "X", "token": "T"},
                       storage_options={"token": "U"})
    assert calls[1] == {"aws_access_key_id": "X", "token": "U"}


# ---- the alopex._alopex module -------------------------------------------------

# The names of AlopexDB's _alopex.pyi that this package implements.
MAPPED = ["AlopexError", "TxnMode", "Metric", "StorageMode", "HnswConfig", "EmbeddedConfig",
          "DatabaseOptions", "SearchResult", "HnswStats", "MemoryStats", "CatalogInfo",
          "NamespaceInfo", "ColumnInfo", "TableInfo", "Database", "Transaction", "Catalog"]
# ... and some it does not: these must stay absent, not be stand-ins.
LEFT_OUT = ["ALOPEX_ERROR_CODES", "_bind_sql_params", "ThreadMode", "DataFrame", "LazyFrame",
            "Expr", "col", "lit", "concat", "concat_str", "SqlResultStream", "DataFrameStream",
            "LocalScan", "StringNamespace", "DatetimeNamespace", "ListNamespace", "polars"]


def test_the_native_module_path_holds_alopexs_own_objects() -> None:
    import alopex._alopex as native
    for name in MAPPED:
        assert getattr(native, name) is getattr(alopex, name), name
    for name in ("TableType", "DataSourceFormat", "DeltaMode", "CredentialProvider"):
        assert hasattr(native, name), name
    for name in LEFT_OUT:
        assert not hasattr(native, name), name
    assert not hasattr(native.Database, "execute_sql")


def test_the_native_submodules_are_laid_out_as_alopexdbs() -> None:
    from alopex._alopex import catalog, database, transaction, types
    assert catalog.Catalog is Catalog and catalog._resolve_credentials is not None
    for name in ("CatalogInfo", "NamespaceInfo", "TableInfo", "ColumnInfo"):
        assert getattr(catalog, name) is getattr(alopex, name)
        assert getattr(types, name) is getattr(alopex, name)
    assert database.Database is alopex.Database
    assert transaction.Transaction is alopex.Transaction
    for name in ("TxnMode", "Metric", "StorageMode", "HnswConfig", "EmbeddedConfig",
                 "DatabaseOptions", "SearchResult", "HnswStats", "MemoryStats"):
        assert getattr(types, name) is getattr(alopex, name), name
