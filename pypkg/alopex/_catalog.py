"""`alopex.Catalog`: a Unity-Catalog-style catalog of Parquet (and Delta)
tables, read and written through polars (SPEC 3.4).

Metadata (catalogs, namespaces, tables with their columns, format, storage
location, primary key and comment) lives in an alopex `Database`: in memory
by default, or on disk in the directory named by the environment variable
`ALOPEX_CATALOG_PATH` (read at the first Catalog call of the process, and
reloaded by the next process). Each object is one key holding a JSON value
(`cat/<c>`, `ns/<c>/<n>`, `tbl/<c>/<n>/<t>`), next to one index key per
container listing its children (`idx/cat`, `idx/ns/<c>`, `idx/tbl/<c>/<n>`);
every DDL call is one READ_WRITE transaction, so it is all or nothing.

Table data is never placed by name: its storage location is given by the
user, and the persisted catalog writes only inside its own directory.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import inspect
import json
import os
import queue
import re
import sys
import threading
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._core import Database
from ._types import AlopexError, TxnMode

__all__ = ["Catalog", "CatalogInfo", "ColumnInfo", "NamespaceInfo", "TableInfo"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_SCHEMES = ("file", "s3", "gs", "az", "abfs")
_FORMATS = ("PARQUET", "DELTA")
_MODES = ("error", "ignore", "append", "overwrite", "merge")
_ENV_PATH = "ALOPEX_CATALOG_PATH"
_NO_POLARS = "Catalog.scan_table and write_table need polars: pip install 'pomai[polars]'"
_NO_DELTALAKE = "DELTA tables need the deltalake package: pip install 'pomai[delta]'"


# --------------------------------------------------------------------------
# Info classes: plain read-only records.

class _Info:
    """Base of the info classes: attributes fixed at construction, read-only;
    equality by value; a repr that shows every field."""

    __slots__: Tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} is read-only")

    def _set(self, **fields: Any) -> None:
        for k, v in fields.items():
            object.__setattr__(self, "_" + k, v)

    def _fields(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._FIELDS)  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + tuple(
            tuple(v) if isinstance(v, list) else v for v in self._fields()))

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)  # type: ignore[attr-defined]
        return f"{type(self).__name__}({args})"


def _ro(name: str, doc: str) -> property:
    return property(lambda self: object.__getattribute__(self, "_" + name), doc=doc)


class CatalogInfo(_Info):
    """A catalog: `name`, `comment` (str or None), `storage_root` (str or None)."""

    __slots__ = ("_name", "_comment", "_storage_root")
    _FIELDS = ("name", "comment", "storage_root")

    def __init__(self, name: str, comment: Optional[str] = None,
                 storage_root: Optional[str] = None) -> None:
        self._set(name=name, comment=comment, storage_root=storage_root)

    name = _ro("name", "catalog name")
    comment = _ro("comment", "free text or None")
    storage_root = _ro("storage_root", "a directory or URI recorded for the catalog, or None")


class NamespaceInfo(_Info):
    """A namespace (schema) inside a catalog."""

    __slots__ = ("_name", "_catalog_name", "_comment", "_storage_root")
    _FIELDS = ("name", "catalog_name", "comment", "storage_root")

    def __init__(self, name: str, catalog_name: str, comment: Optional[str] = None,
                 storage_root: Optional[str] = None) -> None:
        self._set(name=name, catalog_name=catalog_name, comment=comment,
                  storage_root=storage_root)

    name = _ro("name", "namespace name")
    catalog_name = _ro("catalog_name", "name of the enclosing catalog")
    comment = _ro("comment", "free text or None")
    storage_root = _ro("storage_root", "a directory or URI recorded for the namespace, or None")


class ColumnInfo(_Info):
    """A column of a table: `name`, `type_name` (e.g. "BIGINT", free text),
    `position` (0-based), `nullable`, `comment`."""

    __slots__ = ("_name", "_type_name", "_position", "_nullable", "_comment")
    _FIELDS = ("name", "type_name", "position", "nullable", "comment")

    def __init__(self, name: str, type_name: str, position: int = 0, nullable: bool = True,
                 comment: Optional[str] = None) -> None:
        for what, value in (("name", name), ("type_name", type_name)):
            if not isinstance(value, str):
                raise TypeError(f"column {what} must be a str, got {type(value).__name__}")
            if not value:
                raise ValueError(f"column {what} must not be empty")
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f"column position must be an int, got {type(position).__name__}")
        if position < 0:
            raise ValueError(f"column position must be >= 0, got {position}")
        self._set(name=name, type_name=type_name, position=position, nullable=bool(nullable),
                  comment=comment)

    name = _ro("name", "column name")
    type_name = _ro("type_name", "SQL-style type name, e.g. BIGINT, TEXT")
    position = _ro("position", "0-based position in the table")
    nullable = _ro("nullable", "whether nulls are allowed")
    comment = _ro("comment", "free text or None")


class TableInfo(_Info):
    """A table: where its data lives (`storage_location`), in which format
    (`data_source_format`, "PARQUET" or "DELTA"), its `columns`
    (list of ColumnInfo), `primary_key` (list of column names or None)."""

    __slots__ = ("_name", "_catalog_name", "_namespace_name", "_table_type",
                 "_storage_location", "_data_source_format", "_columns", "_primary_key",
                 "_comment")
    _FIELDS = ("name", "catalog_name", "namespace_name", "table_type", "storage_location",
               "data_source_format", "columns", "primary_key", "comment")

    def __init__(self, name: str, catalog_name: str, namespace_name: str,
                 table_type: str = "MANAGED", storage_location: Optional[str] = None,
                 data_source_format: str = "PARQUET",
                 columns: Optional[Sequence[ColumnInfo]] = None,
                 primary_key: Optional[Sequence[str]] = None,
                 comment: Optional[str] = None) -> None:
        self._set(name=name, catalog_name=catalog_name, namespace_name=namespace_name,
                  table_type=table_type, storage_location=storage_location,
                  data_source_format=data_source_format, columns=list(columns or ()),
                  primary_key=None if primary_key is None else list(primary_key),
                  comment=comment)

    name = _ro("name", "table name")
    catalog_name = _ro("catalog_name", "name of the enclosing catalog")
    namespace_name = _ro("namespace_name", "name of the enclosing namespace")
    table_type = _ro("table_type", '"MANAGED"')
    storage_location = _ro("storage_location", "path or URI of the data")
    data_source_format = _ro("data_source_format", '"PARQUET" or "DELTA"')
    columns = _ro("columns", "list of ColumnInfo (a copy per call of get_table_info)")
    primary_key = _ro("primary_key", "list of column names, or None")
    comment = _ro("comment", "free text or None")


# --------------------------------------------------------------------------
# Errors and validation.

# AlopexDB's stable codes (alopex-py, ALOPEX-PY###), set as `err.code` on the
# ValueError of a missing object and the RuntimeError of a duplicate one, as
# AlopexDB sets them. An AlopexError keeps our own `code` (see AlopexError).
_CATALOG_NOT_FOUND = "ALOPEX-PY001"
_NAMESPACE_NOT_FOUND = "ALOPEX-PY002"
_TABLE_NOT_FOUND = "ALOPEX-PY003"
_PARENT_NOT_FOUND = "ALOPEX-PY004"   # the catalog or namespace a create_* goes into
_CATALOG_EXISTS = "ALOPEX-PY005"
_NAMESPACE_EXISTS = "ALOPEX-PY006"


def _coded(err: Exception, code: str) -> Exception:
    err.code = code  # type: ignore[attr-defined]
    return err


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} name must be a str, got {type(value).__name__}")
    if not _NAME.match(value):
        raise ValueError(f"invalid {what} name {value!r}: must match [A-Za-z_][A-Za-z0-9_]*")
    return value


def _scheme(location: str) -> Optional[str]:
    m = _SCHEME.match(location)
    return m.group(1).lower() if m else None


def _check_location(value: Any, what: str = "storage_location") -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a str or os.PathLike, got {type(value).__name__}")
    loc = os.fspath(value)
    if not isinstance(loc, str):
        loc = os.fsdecode(loc)
    if not loc.strip() or "\0" in loc:
        raise ValueError(f"invalid {what}: {loc!r}")
    scheme = _scheme(loc)
    if scheme is not None and scheme not in _SCHEMES:
        raise ValueError(f"unsupported scheme {scheme!r} in {what} {loc!r}; "
                         f"use a local path or one of {', '.join(_SCHEMES)}")
    return loc


def _local_path(location: str) -> Optional[str]:
    """The filesystem path of a local location (plain path or file://), else None."""
    scheme = _scheme(location)
    if scheme is None:
        return location
    if scheme == "file":
        from urllib.parse import unquote, urlparse
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file:// location with a host is not supported: {location!r}")
        return unquote(parsed.path)
    return None


def _check_format(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"data_source_format must be a str, got {type(value).__name__}")
    fmt = value.strip().upper()
    if fmt not in _FORMATS:
        raise AlopexError(f"unsupported data_source_format {value!r}: use PARQUET or DELTA")
    if fmt == "DELTA" and not _has_deltalake():
        raise AlopexError(_NO_DELTALAKE)
    return fmt


def _has_deltalake() -> bool:
    try:
        import deltalake  # noqa: F401
    except ImportError:
        return False
    return True


def _check_mode(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"delta_mode must be a str, got {type(value).__name__}")
    if value not in _MODES:
        raise AlopexError(f"unsupported delta_mode {value!r}: use one of {', '.join(_MODES)}")
    return value


def _check_primary_key(value: Any) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        keys = [value]
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        keys = list(value)
    else:
        raise TypeError(f"primary_key must be a column name or a list of them, "
                        f"got {type(value).__name__}")
    if not all(isinstance(k, str) for k in keys):
        raise TypeError(f"primary_key column names must be str, got {value!r}")
    if not keys or not all(keys):
        raise ValueError(f"primary_key must be a non-empty list of non-empty names, got {value!r}")
    return keys


def _opt_str(value: Any, what: str) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------
# The metadata store: one alopex Database per process.

_lock = threading.RLock()           # guards every metadata read and write
_db: Optional[Database] = None
_table_locks: Dict[Tuple[str, str, str], threading.Lock] = {}

# Descriptors of replaced files, closed off the writer's path (_replace_file).
_closer_lock = threading.Lock()     # guards _closer, and _closing with it
_closer: Optional[threading.Thread] = None
_closing: "queue.SimpleQueue[int]" = queue.SimpleQueue()


def _store() -> Database:
    global _db
    if _db is None:
        path = os.environ.get(_ENV_PATH)
        if path:
            if os.path.exists(path) and not os.path.isdir(path):
                raise AlopexError(f"{_ENV_PATH}={path!r} is not a directory")
            _db = Database.open(path)
        else:
            _db = Database.new()
    return _db


def _close_store() -> None:
    global _db
    with _lock:
        if _db is not None:
            try:
                _db.close()
            finally:
                _db = None
                _table_locks.clear()


def _close_store_at_exit() -> None:
    """At interpreter exit: a close that fails (the disk full since the last
    write) is reported in one line, not as an "Exception ignored" traceback."""
    try:
        _close_store()
    except AlopexError as e:
        sys.stderr.write(f"alopex: closing the catalog's store at exit failed: {e}\n")


atexit.register(_close_store_at_exit)


def _start_over_in_child() -> None:
    """After os.fork(), in the child: the store is the parent's (dead here, see
    `Database`), and a thread of the parent, absent here, may have held the
    locks at the fork. The child gets fresh locks and opens a store of its own
    at its first Catalog call. (Descriptors the parent had yet to close stay
    open in the child until it exits or execs.)"""
    global _lock, _db, _table_locks, _closer_lock, _closer, _closing
    _lock = threading.RLock()
    _db = None
    _table_locks = {}
    _closer_lock = threading.Lock()
    _closer = None
    _closing = queue.SimpleQueue()


os.register_at_fork(after_in_child=_start_over_in_child)


def _get(txn: Any, key: str) -> Any:
    raw = txn.get(key.encode())
    return None if raw is None else json.loads(raw.decode())


def _put(txn: Any, key: str, value: Any) -> None:
    txn.put(key.encode(), json.dumps(value, sort_keys=True).encode())


def _read(key: str) -> Any:
    with _store().begin(TxnMode.READ_ONLY) as txn:
        return _get(txn, key)


def _index_add(txn: Any, key: str, name: str) -> None:
    names = _get(txn, key) or []
    if name not in names:
        names.append(name)
        names.sort()
    _put(txn, key, names)


def _index_remove(txn: Any, key: str, name: str) -> None:
    names = [n for n in (_get(txn, key) or []) if n != name]
    if names:
        _put(txn, key, names)
    else:
        txn.delete(key.encode())


def _require_catalog(txn: Any, c: str, parent: bool = False) -> Dict[str, Any]:
    """The catalog's record; a ValueError if it is missing (coded as the
    missing parent of a create_* when `parent`)."""
    v = _get(txn, f"cat/{c}")
    if v is None:
        raise _coded(ValueError(f"catalog {c!r} does not exist"),
                     _PARENT_NOT_FOUND if parent else _CATALOG_NOT_FOUND)
    return v


def _require_namespace(txn: Any, c: str, n: str, parent: bool = False) -> Dict[str, Any]:
    _require_catalog(txn, c, parent)
    v = _get(txn, f"ns/{c}/{n}")
    if v is None:
        raise _coded(ValueError(f"namespace {c}.{n} does not exist"),
                     _PARENT_NOT_FOUND if parent else _NAMESPACE_NOT_FOUND)
    return v


def _require_table(txn: Any, c: str, n: str, t: str) -> Dict[str, Any]:
    _require_namespace(txn, c, n)
    v = _get(txn, f"tbl/{c}/{n}/{t}")
    if v is None:
        raise _coded(ValueError(f"table {c}.{n}.{t} does not exist"), _TABLE_NOT_FOUND)
    return v


def _table_info(c: str, n: str, t: str, v: Mapping[str, Any]) -> TableInfo:
    cols = [ColumnInfo(x["name"], x["type_name"], x["position"], x["nullable"], x["comment"])
            for x in v["columns"]]
    return TableInfo(t, c, n, v["table_type"], v["storage_location"], v["data_source_format"],
                     cols, v["primary_key"], v["comment"])


def _columns(columns: Any) -> List[Dict[str, Any]]:
    if columns is None:
        columns = []
    out = []
    seen = set()
    for col in columns:
        if not isinstance(col, ColumnInfo):
            raise TypeError(f"columns must be ColumnInfo objects, got {type(col).__name__}")
        if col.name in seen:
            raise ValueError(f"duplicate column name {col.name!r}")
        seen.add(col.name)
        out.append({"name": col.name, "type_name": col.type_name, "position": col.position,
                    "nullable": col.nullable, "comment": col.comment})
    return out


def _create_table_txn(txn: Any, c: str, n: str, t: str, columns: List[Dict[str, Any]],
                      location: str, fmt: str, primary_key: Optional[List[str]],
                      comment: Optional[str]) -> Dict[str, Any]:
    _require_namespace(txn, c, n, parent=True)
    if _get(txn, f"tbl/{c}/{n}/{t}") is not None:
        raise AlopexError(f"table {c}.{n}.{t} already exists")
    v = {"table_type": "MANAGED", "storage_location": location, "data_source_format": fmt,
         "columns": columns, "primary_key": primary_key, "comment": comment}
    _put(txn, f"tbl/{c}/{n}/{t}", v)
    _index_add(txn, f"idx/tbl/{c}/{n}", t)
    return v


# --------------------------------------------------------------------------
# Data: polars, credentials, atomic file replacement.

def _polars() -> Any:
    try:
        import polars
    except ImportError:
        raise AlopexError(_NO_POLARS) from None
    return polars


def _frame(pl: Any, df: Any) -> Any:
    """`df` ready to write: a LazyFrame is collected; otherwise it must be a
    polars DataFrame, or (as AlopexDB accepts) an object with a `schema`
    mapping and a `write_parquet(path)` method."""
    if isinstance(df, pl.LazyFrame) or (type(df).__name__ == "LazyFrame"
                                        and hasattr(df, "collect")):
        df = df.collect()
    if not isinstance(df, pl.DataFrame) and not (hasattr(df, "schema")
                                                 and hasattr(df, "write_parquet")):
        raise TypeError(f"df must be a polars DataFrame or LazyFrame, got {type(df).__name__}")
    return df


_TYPE_NAMES = {
    "Int8": "INTEGER", "Int16": "INTEGER", "Int32": "INTEGER", "Int64": "BIGINT",
    "UInt8": "INTEGER", "UInt16": "INTEGER", "UInt32": "BIGINT", "UInt64": "BIGINT",
    "Float32": "FLOAT", "Float64": "DOUBLE", "String": "TEXT", "Utf8": "TEXT",
    "Categorical": "TEXT", "Enum": "TEXT", "Binary": "BLOB", "Boolean": "BOOLEAN",
}


def _type_name(dtype: Any) -> str:
    base = getattr(dtype, "base_type", lambda: dtype)()
    name = getattr(base, "__name__", None) or str(base)
    if name in _TYPE_NAMES:
        return _TYPE_NAMES[name]
    if getattr(dtype, "is_temporal", lambda: False)():
        return "TIMESTAMP"
    return str(dtype).upper()


def _infer_columns(df: Any) -> List[Dict[str, Any]]:
    return [{"name": name, "type_name": _type_name(dtype), "position": i, "nullable": True,
             "comment": None}
            for i, (name, dtype) in enumerate(df.schema.items())]


_ENV_CREDENTIALS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    # scheme: (environment variable, storage option) pairs read by "auto"
    "s3": (("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
           ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
           ("AWS_REGION", "aws_region")),
    "gs": (("GOOGLE_APPLICATION_CREDENTIALS", "service_account_path"),),
    "az": (("AZURE_STORAGE_ACCOUNT", "account_name"), ("AZURE_STORAGE_KEY", "account_key")),
    "abfs": (("AZURE_STORAGE_ACCOUNT", "account_name"), ("AZURE_STORAGE_KEY", "account_key")),
}


def _resolve_credentials(storage_location: str, credential_provider: Any = None,
                         storage_options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The storage options for `storage_location`: those of `credential_provider`,
    then `storage_options` over them (storage_options win on a shared key).

    credential_provider: "auto" or None read the environment by the
    location's scheme (s3, gs, az/abfs: see _ENV_CREDENTIALS; unset or empty
    variables are left out), giving {} for a local path, file:// and any other
    scheme; a dict is taken as is; a callable (a polars credential provider)
    adds nothing here, the callers hand it to polars. Anything else is an
    AlopexError naming it; storage_options other than a dict or None, a
    TypeError."""
    if not isinstance(storage_location, str):
        raise TypeError(f"storage_location must be a str, got {type(storage_location).__name__}")
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise TypeError(f"storage_options must be a dict or None, "
                        f"got {type(storage_options).__name__}")
    if credential_provider is None or (isinstance(credential_provider, str)
                                       and credential_provider == "auto"):
        pairs = _ENV_CREDENTIALS.get(_scheme(storage_location.strip()) or "", ())
        merged = {opt: os.environ[var] for var, opt in pairs if os.environ.get(var)}
    elif isinstance(credential_provider, Mapping):
        merged = dict(credential_provider)
    elif callable(credential_provider):
        merged = {}
    else:
        raise AlopexError(f"unsupported credential_provider {credential_provider!r}: "
                          f"use 'auto', None, a dict of storage options or a callable")
    merged.update(storage_options or {})
    return merged


def _io_kwargs(location: str, provider: Any, storage_options: Any) -> Dict[str, Any]:
    """Keyword arguments for a polars scan or write of `location`: the
    resolved options as `storage_options=` (none when empty), and a callable
    provider as `credential_provider=`."""
    merged = _resolve_credentials(location, provider, storage_options)
    kwargs: Dict[str, Any] = {}
    if merged:
        kwargs["storage_options"] = merged
    if callable(provider) and not isinstance(provider, Mapping):
        kwargs["credential_provider"] = provider
    return kwargs


def _as_accepted(fn: Any, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """`kwargs` (from _io_kwargs) shaped for the scan function `fn`, looked
    up on polars at call time. polars takes the options as one
    `storage_options=` dict; a function without that parameter (one put in
    polars' place for code written against AlopexDB, which passes each
    option as a keyword of its own) gets them as separate keywords."""
    opts = kwargs.get("storage_options")
    if not opts:
        return kwargs
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to read: polars' own convention
        return kwargs
    if "storage_options" in params:
        return kwargs
    loose = {k: v for k, v in kwargs.items() if k != "storage_options"}
    loose.update(opts)
    return loose


def _fsync_dir(path: str) -> None:
    """Makes the entries of directory `path` durable. A filesystem that
    cannot sync a directory (EINVAL) is let be; any other error is raised."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def _replace_file(tmp: str, target: str) -> None:
    """Moves the fully written `tmp` over `target` in one rename and makes
    the rename durable. (A separate function so that tests can pause here.)

    The file replaced is held open across the rename and closed afterwards
    by a background thread: dropping the last reference to a file frees its
    blocks, milliseconds of filesystem work (ext4) that the new file's
    durability does not need to wait for."""
    try:
        old: Optional[int] = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        old = None  # nothing there yet (or nothing we may read: the rename decides)
    try:
        os.replace(tmp, target)
        _fsync_dir(os.path.dirname(os.path.abspath(target)))
    finally:
        if old is not None:
            _close_later(old)


def _close_later(fd: int) -> None:
    """Hands `fd` to the process's closing thread (started at first use)."""
    global _closer
    with _closer_lock:
        if _closer is None:
            closer = threading.Thread(target=_close_all, args=(_closing,),
                                      name="alopex-close", daemon=True)
            try:
                closer.start()
            except RuntimeError:  # the interpreter is shutting down: no new threads
                os.close(fd)
                return
            _closer = closer
        _closing.put(fd)


def _close_all(fds: "queue.SimpleQueue[int]") -> None:
    while True:
        fd = fds.get()
        try:
            os.close(fd)
        except OSError:  # it was open only to keep the old file: nothing is lost
            pass


# Frames at least this large (polars' estimated_size, bytes) are synced while
# polars writes them (_Writeback). Below it the encoding is over in a few
# milliseconds and each background sync would only add a journal commit
# (measured on ext4: 100k rows of two 8-byte columns, 1.5 MiB, are written
# slower with it; 1M rows, 15 MiB, faster).
_WRITEBACK_MIN_BYTES = 8 << 20

# Parquet files of PARQUET tables are snappy-compressed, as Spark, Delta Lake
# and DuckDB write them by default: encoding takes about half the time of
# polars' default (zstd) for files about a third larger, and any Parquet
# reader reads them.
_PARQUET_COMPRESSION = "snappy"


def _parquet_options(df: Any) -> Dict[str, Any]:
    """write_parquet keyword arguments for `df`: the compression, for a polars
    DataFrame (a duck-typed frame gets its own writer's defaults)."""
    if type(df).__module__.split(".")[0] == "polars":
        return {"compression": _PARQUET_COMPRESSION}
    return {}


class _Writeback:
    """While the block runs, a thread fdatasyncs `fd` every few milliseconds,
    so the file's pages go to disk while polars is still encoding the rest
    and the final fdatasync has only the tail left. An error of a background
    sync is raised on exit (the kernel reports a writeback error to an fd
    once: it must not be lost)."""

    def __init__(self, fd: int, interval: float = 0.02) -> None:
        self._fd = fd
        self._interval = interval
        self._stop = threading.Event()
        self._error: Optional[OSError] = None
        self._thread = threading.Thread(target=self._run, name="alopex-writeback", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                os.fdatasync(self._fd)
            except OSError as e:
                self._error = e
                return

    def __enter__(self) -> "_Writeback":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


def _write_parquet_atomic(df: Any, path: str) -> None:
    """Writes `df` to a temporary file in the directory of `path`, fdatasyncs
    it, then renames it over `path` and fsyncs the directory: readers and
    crashes see either the old file or the new one, never a torn one, and
    the new one once this returns. The file is not read back, and `df` is
    handed to polars as it is (no copy, no schema work)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory,
                       f".{os.path.basename(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
    # Our own descriptor of the file polars writes (it truncates, keeping
    # the inode), for syncing while it writes.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        size = getattr(df, "estimated_size", lambda: 0)()
        with _Writeback(fd) if size >= _WRITEBACK_MIN_BYTES else contextlib.nullcontext():
            df.write_parquet(tmp, **_parquet_options(df))
        os.fdatasync(fd)
        _replace_file(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)


def _merge(pl: Any, old: Any, new: Any, keys: List[str]) -> Any:
    missing = [k for k in keys if k not in new.columns or (old is not None and k not in old.columns)]
    if missing:
        raise AlopexError(f"primary_key column(s) {missing} missing from the data")
    new = new.unique(subset=keys, keep="last", maintain_order=True)
    if old is None:
        return new
    kept = old.join(new.select(keys), on=keys, how="anti")
    return pl.concat([kept, new], how="vertical_relaxed")


def _table_lock(key: Tuple[str, str, str]) -> threading.Lock:
    with _lock:
        lk = _table_locks.get(key)
        if lk is None:
            lk = _table_locks[key] = threading.Lock()
        return lk


# --------------------------------------------------------------------------

class Catalog:
    """The process-wide catalog (static methods only; `Catalog()` is not
    needed). Thread-safe: metadata calls hold one module lock, and writes to
    the same table are serialised (writes to different tables run in
    parallel). A persisted catalog (`ALOPEX_CATALOG_PATH`) is held open by one
    process at a time; another process opening it meanwhile gets AlopexError.
    A child made by os.fork() is another process: its catalog starts over at
    its first call (an in-memory catalog is empty there; a persisted one is
    opened again, AlopexError while the parent holds it).

    Errors, as AlopexDB raises them: a name that is not a str is a
    TypeError, one not matching `[A-Za-z_][A-Za-z0-9_]*` a ValueError; a
    missing catalog/namespace/table is a ValueError and a duplicate catalog or
    namespace a RuntimeError, both carrying AlopexDB's code in `err.code`
    ("ALOPEX-PY001" missing catalog, "-PY002" namespace, "-PY003" table,
    "-PY004" the catalog or namespace a create_* goes into; "-PY005"
    duplicate catalog, "-PY006" duplicate namespace). A duplicate table, an
    unsupported format or delta_mode, a write that needs a primary key or a
    storage location it lacks, a bad credential_provider, and a data call
    without polars are AlopexErrors.
    """

    # ---- catalogs ------------------------------------------------------------

    @staticmethod
    def create_catalog(name: str, comment: Optional[str] = None,
                       storage_root: Optional[str] = None) -> CatalogInfo:
        """Creates catalog `name`; RuntimeError if it exists."""
        _check_name(name, "catalog")
        _opt_str(comment, "comment")
        root = None if storage_root is None else _check_location(storage_root, "storage_root")
        with _lock, _store().begin(TxnMode.READ_WRITE) as txn:
            if _get(txn, f"cat/{name}") is not None:
                raise _coded(RuntimeError(f"catalog {name!r} already exists"), _CATALOG_EXISTS)
            _put(txn, f"cat/{name}", {"comment": comment, "storage_root": root})
            _index_add(txn, "idx/cat", name)
            txn.commit()
        return CatalogInfo(name, comment, root)

    @staticmethod
    def get_catalog(name: str) -> CatalogInfo:
        """The catalog `name`; ValueError if missing."""
        _check_name(name, "catalog")
        with _lock, _store().begin(TxnMode.READ_ONLY) as txn:
            v = _require_catalog(txn, name)
        return CatalogInfo(name, v["comment"], v["storage_root"])

    @staticmethod
    def list_catalogs() -> List[CatalogInfo]:
        """Every catalog, sorted by name."""
        with _lock, _store().begin(TxnMode.READ_ONLY) as txn:
            out = []
            for name in _get(txn, "idx/cat") or []:
                v = _get(txn, f"cat/{name}")
                out.append(CatalogInfo(name, v["comment"], v["storage_root"]))
        return out

    @staticmethod
    def delete_catalog(name: str) -> None:
        """Deletes catalog `name` with its namespaces and tables (metadata
        only: data files are left where they are). ValueError if missing."""
        _check_name(name, "catalog")
        with _lock, _store().begin(TxnMode.READ_WRITE) as txn:
            _require_catalog(txn, name)
            for ns in _get(txn, f"idx/ns/{name}") or []:
                _delete_namespace_txn(txn, name, ns)
            txn.delete(f"idx/ns/{name}".encode())
            txn.delete(f"cat/{name}".encode())
            _index_remove(txn, "idx/cat", name)
            txn.commit()

    # ---- namespaces ----------------------------------------------------------

    @staticmethod
    def create_namespace(catalog_name: str, namespace: str, comment: Optional[str] = None,
                         storage_root: Optional[str] = None) -> NamespaceInfo:
        """Creates namespace `catalog_name.namespace`; ValueError if the
        catalog is missing, RuntimeError if the namespace exists."""
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        _opt_str(comment, "comment")
        root = None if storage_root is None else _check_location(storage_root, "storage_root")
        with _lock, _store().begin(TxnMode.READ_WRITE) as txn:
            _require_catalog(txn, catalog_name, parent=True)
            key = f"ns/{catalog_name}/{namespace}"
            if _get(txn, key) is not None:
                raise _coded(RuntimeError(f"namespace {catalog_name}.{namespace} already exists"),
                             _NAMESPACE_EXISTS)
            _put(txn, key, {"comment": comment, "storage_root": root})
            _index_add(txn, f"idx/ns/{catalog_name}", namespace)
            txn.commit()
        return NamespaceInfo(namespace, catalog_name, comment, root)

    @staticmethod
    def get_namespace(catalog_name: str, namespace: str) -> NamespaceInfo:
        """The namespace; ValueError if it or its catalog is missing."""
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        with _lock, _store().begin(TxnMode.READ_ONLY) as txn:
            v = _require_namespace(txn, catalog_name, namespace)
        return NamespaceInfo(namespace, catalog_name, v["comment"], v["storage_root"])

    @staticmethod
    def list_namespaces(catalog_name: str) -> List[NamespaceInfo]:
        """The namespaces of a catalog, sorted by name; ValueError if it is missing."""
        _check_name(catalog_name, "catalog")
        with _lock, _store().begin(TxnMode.READ_ONLY) as txn:
            _require_catalog(txn, catalog_name)
            out = []
            for name in _get(txn, f"idx/ns/{catalog_name}") or []:
                v = _get(txn, f"ns/{catalog_name}/{name}")
                out.append(NamespaceInfo(name, catalog_name, v["comment"], v["storage_root"]))
        return out

    @staticmethod
    def delete_namespace(catalog_name: str, namespace: str) -> None:
        """Deletes a namespace with its tables (metadata only); ValueError if missing."""
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        with _lock, _store().begin(TxnMode.READ_WRITE) as txn:
            _require_namespace(txn, catalog_name, namespace)
            _delete_namespace_txn(txn, catalog_name, namespace)
            _index_remove(txn, f"idx/ns/{catalog_name}", namespace)
            txn.commit()

    # ---- tables --------------------------------------------------------------

    @staticmethod
    def create_table(catalog_name: str, namespace: str, table_name: str,
                     columns: Optional[Sequence[ColumnInfo]], storage_location: str,
                     data_source_format: str = "PARQUET",
                     primary_key: Union[str, Sequence[str], None] = None,
                     comment: Optional[str] = None) -> TableInfo:
        """Registers a table whose data lives at `storage_location` (a local
        path, or a file/s3/gs/az/abfs URI; other schemes: ValueError) in
        `data_source_format` PARQUET or DELTA (DELTA needs the deltalake
        package; anything else: AlopexError). Writes no data. A duplicate
        table is an AlopexError."""
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        _check_name(table_name, "table")
        location = _check_location(storage_location)
        _local_path(location)  # validates file:// URIs
        cols = _columns(columns)
        pk = _check_primary_key(primary_key)
        _opt_str(comment, "comment")
        fmt = _check_format(data_source_format)
        with _lock, _store().begin(TxnMode.READ_WRITE) as txn:
            v = _create_table_txn(txn, catalog_name, namespace, table_name, cols, location,
                                  fmt, pk, comment)
            txn.commit()
        return _table_info(catalog_name, namespace, table_name, v)

    @staticmethod
    def get_table_info(catalog_name: str, namespace: str, table_name: str) -> TableInfo:
        """The table's metadata; ValueError if it (or its namespace/catalog) is missing."""
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        _check_name(table_name, "table")
        with _lock, _store().begin(TxnMode.READ_ONLY) as txn:
            v = _require_table(txn, catalog_name, namespace, table_name)
        return _table_info(catalog_name, namespace, table_name, v)

    get_table = get_table_info

    @staticmethod
    def list_tables(catalog_name: str, namespace: str) -> List[TableInfo]:
        """The tables of a namespace, sorted by name; ValueError if it is missing."""
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        with _lock, _store().begin(TxnMode.READ_ONLY) as txn:
            _require_namespace(txn, catalog_name, namespace)
            out = []
            for name in _get(txn, f"idx/tbl/{catalog_name}/{namespace}") or []:
                v = _get(txn, f"tbl/{catalog_name}/{namespace}/{name}")
                out.append(_table_info(catalog_name, namespace, name, v))
        return out

    @staticmethod
    def delete_table(catalog_name: str, namespace: str, table_name: str) -> None:
        """Unregisters a table (its data files are left in place); ValueError if missing."""
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        _check_name(table_name, "table")
        with _lock, _store().begin(TxnMode.READ_WRITE) as txn:
            _require_table(txn, catalog_name, namespace, table_name)
            txn.delete(f"tbl/{catalog_name}/{namespace}/{table_name}".encode())
            _index_remove(txn, f"idx/tbl/{catalog_name}/{namespace}", table_name)
            txn.commit()

    # ---- data ----------------------------------------------------------------

    @staticmethod
    def write_table(df: Any, catalog_name: str, namespace: str, table_name: str,
                    delta_mode: str = "error", storage_location: Optional[str] = None,
                    credential_provider: Any = "auto",
                    storage_options: Optional[Mapping[str, Any]] = None,
                    primary_key: Union[str, Sequence[str], None] = None) -> None:
        """Writes a polars DataFrame (a LazyFrame is collected first) to a table.

        `delta_mode`: "error" (data already at the location: AlopexError),
        "ignore" (data already there: no-op), "append", "overwrite", "merge"
        (upsert by `primary_key`, or the table's own; AlopexError if neither);
        any other mode is an AlopexError. A missing table is created from the
        frame's schema for append/overwrite/merge, and then needs
        `storage_location` (AlopexError without it); for error/ignore it is an
        AlopexError. For an existing table a `storage_location` other than its
        own is an AlopexError. `credential_provider` and `storage_options`: see
        `scan_table`.

        PARQUET tables are written snappy-compressed (Spark's and Delta
        Lake's default). Local paths and file:// URIs are written atomically and durably: the
        new contents go to a temporary file in the same directory, fdatasynced,
        then renamed over the old file and the directory fsynced before the
        call returns, so a crash leaves the previous data or the new, never a
        mix. Remote locations (s3, gs, az, abfs) are written by polars with the
        merged credential/storage options, with no atomicity guarantee.
        Concurrent writers of one table in one process are serialised; other
        processes writing the same table are not coordinated.
        """
        pl = _polars()
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        _check_name(table_name, "table")
        mode = _check_mode(delta_mode)
        pk = _check_primary_key(primary_key)
        loc_arg = None if storage_location is None else _check_location(storage_location)
        df = _frame(pl, df)
        if pk is not None and any(k not in df.schema for k in pk):
            raise AlopexError(f"primary_key column(s) {[k for k in pk if k not in df.schema]} "
                              f"missing from the data")

        c, n, t = catalog_name, namespace, table_name
        with _lock, _store().begin(TxnMode.READ_WRITE) as txn:
            _require_namespace(txn, c, n)
            v = _get(txn, f"tbl/{c}/{n}/{t}")
            if v is None:
                if mode in ("error", "ignore"):
                    raise AlopexError(f"table {c}.{n}.{t} does not exist (delta_mode "
                                      f"{mode!r} writes only registered tables)")
                if loc_arg is None:
                    raise AlopexError(f"table {c}.{n}.{t} does not exist: storage_location "
                                      f"is needed to create it")
                _local_path(loc_arg)  # a file:// URI with a host: ValueError
            elif loc_arg is not None and loc_arg != v["storage_location"]:
                raise AlopexError(f"table {c}.{n}.{t} is stored at {v['storage_location']!r}, "
                                  f"not {loc_arg!r}")
            if mode == "merge" and pk is None:
                pk = None if v is None else v["primary_key"]
                if pk is None:
                    raise AlopexError("delta_mode 'merge' needs primary_key (none given, and "
                                      "the table has none)")
            location = loc_arg if v is None else v["storage_location"]
            kwargs = _io_kwargs(location, credential_provider, storage_options)
            if v is None:  # every check passed: register the table
                v = _create_table_txn(txn, c, n, t, _infer_columns(df), location, "PARQUET",
                                      pk, None)
                txn.commit()

        try:
            with _table_lock((c, n, t)):
                if v["data_source_format"] == "DELTA":
                    _write_delta(pl, df, location, mode, pk, kwargs)
                else:
                    _write_parquet(pl, df, location, mode, pk, kwargs)
        except (AlopexError, ValueError, TypeError, OSError):
            raise
        except Exception as e:  # a polars error: report it as ours
            raise AlopexError(f"write_table {c}.{n}.{t}: {e}") from e

    @staticmethod
    def scan_table(catalog_name: str, namespace: str, table_name: str,
                   credential_provider: Any = "auto",
                   storage_options: Optional[Mapping[str, Any]] = None) -> Any:
        """A polars LazyFrame over the table's data: `polars.scan_parquet`
        (or `scan_delta` for DELTA) of its storage location, looked up at call
        time.

        `credential_provider`: "auto" (or None) reads credentials from the
        environment by the location's scheme (s3: AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY, AWS_REGION; gs: GOOGLE_APPLICATION_CREDENTIALS;
        az/abfs: AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY; nothing for local
        paths), a dict is used as is, a callable is passed to polars as
        `credential_provider=`; anything else is an AlopexError. The options,
        with `storage_options` over them (they win on a shared key), go to
        polars as `storage_options=` (left out when empty); a scan function
        put in polars' place that has no `storage_options` parameter gets
        them as separate keywords, as AlopexDB passes them."""
        pl = _polars()
        _check_name(catalog_name, "catalog")
        _check_name(namespace, "namespace")
        _check_name(table_name, "table")
        with _lock, _store().begin(TxnMode.READ_ONLY) as txn:
            v = _require_table(txn, catalog_name, namespace, table_name)
        location = v["storage_location"]
        kwargs = _io_kwargs(location, credential_provider, storage_options)
        local = _local_path(location)
        target = local if local is not None else location
        scan = pl.scan_delta if v["data_source_format"] == "DELTA" else pl.scan_parquet
        return scan(target, **_as_accepted(scan, kwargs))


def _delete_namespace_txn(txn: Any, c: str, n: str) -> None:
    for t in _get(txn, f"idx/tbl/{c}/{n}") or []:
        txn.delete(f"tbl/{c}/{n}/{t}".encode())
    txn.delete(f"idx/tbl/{c}/{n}".encode())
    txn.delete(f"ns/{c}/{n}".encode())


def _write_parquet(pl: Any, df: Any, location: str, mode: str, pk: Optional[List[str]],
                   kwargs: Dict[str, Any]) -> None:
    local = _local_path(location)
    if local is not None:
        exists = os.path.exists(local)
        if mode == "error" and exists:
            raise AlopexError(f"data already exists at {location!r} (delta_mode 'error')")
        if mode == "ignore" and exists:
            return
        old = pl.read_parquet(local) if exists and mode in ("append", "merge") else None
        if mode == "append" and old is not None:
            df = pl.concat([old, df], how="vertical_relaxed")
        elif mode == "merge":
            df = _merge(pl, old, df, pk or [])
        _write_parquet_atomic(df, local)
        return
    # Remote: polars writes through its object-store support (not atomic).
    opts = kwargs.get("storage_options")

    def _remote_old() -> Any:
        try:
            return pl.read_parquet(location, **kwargs)
        except Exception:
            return None

    if mode in ("error", "ignore", "append", "merge"):
        old = _remote_old()
        if old is not None and mode == "error":
            raise AlopexError(f"data already exists at {location!r} (delta_mode 'error')")
        if old is not None and mode == "ignore":
            return
        if mode == "append" and old is not None:
            df = pl.concat([old, df], how="vertical_relaxed")
        elif mode == "merge":
            df = _merge(pl, old, df, pk or [])
    df.write_parquet(location, storage_options=opts, **_parquet_options(df))


def _write_delta(pl: Any, df: Any, location: str, mode: str, pk: Optional[List[str]],
                 kwargs: Dict[str, Any]) -> None:
    local = _local_path(location)
    target = local if local is not None else location
    opts = kwargs.get("storage_options")
    if mode == "merge":
        predicate = " AND ".join(f"s.{k} = t.{k}" for k in pk or [])
        try:
            (df.write_delta(target, mode="merge", storage_options=opts,
                            delta_merge_options={"predicate": predicate, "source_alias": "s",
                                                 "target_alias": "t"})
             .when_matched_update_all().when_not_matched_insert_all().execute())
            return
        except Exception as e:
            if "not a Delta table" not in str(e) and "TableNotFound" not in type(e).__name__:
                raise
        mode = "overwrite"
    df.write_delta(target, mode=mode, storage_options=opts)
