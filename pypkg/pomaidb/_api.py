"""The pomaidb functions: convert arguments, call the C ABI once, map errors.

Vectors cross into C as one dense float32 buffer and ids as one uint64
buffer (`ffi.from_buffer`, no copy when the numpy array is already
C-contiguous with the right dtype); nothing loops over vectors in Python.
Every C call releases the GIL.
"""

from __future__ import annotations

import enum
import json
import operator
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _columns
from ._ffi import ffi, lib, LIBRARY_PATH
from ._progress import ProgressLike, call_with_progress

__all__ = [
    "Database",
    "PomaiDBError",
    "InvalidArgumentError",
    "StatusCode",
    "open_db",
    "close",
    "put_batch",
    "delete",
    "get",
    "exists",
    "count",
    "freeze",
    "compact",
    "stats",
    "verify",
    "search",
    "search_batch",
    "update_attributes",
    "schema",
    "scan",
    "Scan",
    "simd_target",
    "version",
    "abi_version",
    "library_path",
]

PathLike = Union[str, "os.PathLike[str]"]
IdsLike = Union[int, Sequence[int], "npt.NDArray[np.integer[Any]]"]
VectorsLike = Union[Sequence[Sequence[float]], "npt.NDArray[np.floating[Any]]"]

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_BIG_TOPK = 4096


class StatusCode(enum.IntEnum):
    """Status codes of the C ABI (`POMAI_STATUS_*`)."""

    OK = 0
    INVALID_ARGUMENT = 1
    NOT_FOUND = 2
    ALREADY_EXISTS = 3
    IO_ERROR = 4
    CORRUPTION = 5
    RESOURCE_EXHAUSTED = 6
    DEADLINE_EXCEEDED = 7
    INTERNAL = 8
    UNIMPLEMENTED = 9
    PARTIAL_FAILURE = 10
    CONFLICT = 11
    CLOSED = 12
    READ_ONLY = 13


class PomaiDBError(Exception):
    """A failed pomaidb call. `.code` is the C status code (see `StatusCode`),
    `.message` the C message (or the Python-side reason)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = int(code)
        self.message = message
        try:
            name = StatusCode(self.code).name
        except ValueError:
            name = f"status {self.code}"
        super().__init__(f"{name}: {message}")

    def __reduce__(self) -> Any:
        return (_rebuild_error, (type(self), self.code, self.message))


class InvalidArgumentError(PomaiDBError, ValueError):
    """A bad argument (code 1, INVALID_ARGUMENT): also a ValueError."""

    def __init__(self, message: str, code: int = StatusCode.INVALID_ARGUMENT) -> None:
        super().__init__(code, message)


def _rebuild_error(cls: type, code: int, message: str) -> PomaiDBError:
    err: PomaiDBError = Exception.__new__(cls)
    PomaiDBError.__init__(err, code, message)
    return err


def _error(code: int, message: str) -> PomaiDBError:
    if code == StatusCode.INVALID_ARGUMENT:
        return InvalidArgumentError(message)
    return PomaiDBError(code, message)


def _check(status: Any) -> None:
    """Raises the error a non-NULL status carries; always frees it."""
    if status == ffi.NULL:
        return
    try:
        code = lib.pomai_status_code(status)
        message = ffi.string(lib.pomai_status_message(status)).decode("utf-8", "replace")
    finally:
        lib.pomai_status_free(status)
    raise _error(code, message)


# ---- argument conversion ------------------------------------------------


def _uint(value: Any, name: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    v = int(value)
    if v < 0 or v > maximum:
        raise InvalidArgumentError(f"{name} = {v} is out of range [0, {maximum}]")
    return v


def _ids_array(ids: Any, name: str = "ids") -> "npt.NDArray[np.uint64]":
    """ids (an int, a sequence of ints or an integer array) as a C-contiguous
    uint64 array of shape (n,)."""
    if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
        return np.array([_uint(ids, name, _U64_MAX)], dtype=np.uint64)
    if ids is None or isinstance(ids, (str, bytes, float)):
        raise TypeError(f"{name} must be an int, a sequence of ints or an integer array, "
                        f"got {type(ids).__name__} {ids!r}")
    if not isinstance(ids, np.ndarray) and not hasattr(ids, "__len__"):
        try:
            ids = list(ids)  # an iterator or generator
        except TypeError:
            raise TypeError(f"{name} must be an int, a sequence of ints or an integer array, "
                            f"got {type(ids).__name__} {ids!r}") from None
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype=np.uint64)
    if arr.dtype.kind == "u":
        return np.ascontiguousarray(arr, dtype=np.uint64)
    if arr.dtype.kind == "i":
        negative = np.flatnonzero(arr < 0)
        if negative.size:
            i = int(negative[0])
            raise InvalidArgumentError(f"{name}[{i}] = {int(arr[i])} is negative; ids are in [0, 2**64)")
        return np.ascontiguousarray(arr, dtype=np.uint64)
    if isinstance(ids, np.ndarray) or arr.dtype.kind == "b":
        raise TypeError(f"{name} must be integers, got an array of {arr.dtype}")
    # A Python sequence numpy could not hold as int64 (ids >= 2**63, or not
    # ints at all): convert exactly, id by id (ids only, never vectors).
    seq = list(ids)
    out = np.empty(len(seq), dtype=np.uint64)
    for i, v in enumerate(seq):
        out[i] = _uint(v, f"{name}[{i}]", _U64_MAX)
    return out


def _matrix(x: Any, name: str, allow_1d: bool) -> "npt.NDArray[np.float32]":
    """x as a C-contiguous float32 matrix (no copy when it already is one).
    With allow_1d a 1-D x is one row, or no rows when it is empty."""
    if x is None:
        raise TypeError(f"{name} must be a 2-D array of numbers, got None")
    try:
        # asarray first: ascontiguousarray would turn a 0-d scalar into shape (1,).
        arr = np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(f"{name} must be a 2-D array of numbers: {e}") from None
    if arr.ndim == 1 and allow_1d:
        arr = arr.reshape(1, -1) if arr.size else arr.reshape(0, 0)
    if arr.ndim != 2:
        raise InvalidArgumentError(f"{name} must be 2-D (n, dim), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


# ---- the database handle ------------------------------------------------


class Database:
    """An open pomai database (one `pomai_db_t*`).

    Thread-safe: calls from several threads run concurrently (the GIL is
    released inside every C call). Usable as a context manager, which closes
    it; it is also closed when garbage-collected. Every method mirrors the
    module-level function of the same name.

    A database does not cross os.fork(): in the child every call raises
    PomaiDBError with code CLOSED, and close (explicit, or at garbage
    collection and interpreter exit) does nothing, leaving the parent's
    database as it is. Open it again in the child.
    """

    __slots__ = ("_handle", "_closed", "_lock", "_pid", "path", "dim", "metric", "__weakref__")

    def __init__(self, handle: Any, path: str, dim: int, metric: str) -> None:
        self._handle = handle
        self._closed = False
        self._lock = threading.Lock()
        self._pid = os.getpid()  # the process that opened it
        self.path = path
        self.dim = dim
        self.metric = metric

    def _h(self) -> Any:
        if self._closed:
            raise PomaiDBError(StatusCode.CLOSED, f"database {self.path!r} is closed")
        return self._handle

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        return self._closed

    def close(self) -> None:
        """Closes the database; a second close is a no-op. In a process
        forked after the open it only marks this object closed."""
        if self._pid != os.getpid():
            # The parent's database, which the C library leaves alone here; and
            # a thread of the parent, absent here, may have held _lock at the fork.
            self._closed = True
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handle = self._handle
        _check(lib.pomai_close(handle))

    def __enter__(self) -> "Database":
        self._h()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<pomaidb.Database {self.path!r} dim={self.dim} metric={self.metric!r} {state}>"

    def put_batch(self, ids: IdsLike, vectors: VectorsLike, metadata: Any = None, attributes: Any = None) -> None:
        """See `pomaidb.put_batch`."""
        put_batch(self, ids, vectors, metadata, attributes)

    def update_attributes(self, ids: IdsLike, attributes: Any) -> None:
        """See `pomaidb.update_attributes`."""
        update_attributes(self, ids, attributes)

    def schema(self) -> Dict[str, str]:
        """See `pomaidb.schema`."""
        return schema(self)

    def delete(self, ids: Optional[IdsLike] = None, where: Optional[str] = None) -> Optional[int]:
        """See `pomaidb.delete`."""
        return delete(self, ids, where)

    def get(self, id: Any, columns: Optional[Sequence[str]] = None) -> Any:
        """See `pomaidb.get`."""
        return get(self, id, columns)

    def __getitem__(self, id: int) -> Tuple["npt.NDArray[np.float32]", bytes]:
        """db[id]: (vector, metadata) of the live row `id`; KeyError when there is none."""
        if not isinstance(id, (int, np.integer)):
            raise TypeError(f"db[id] takes one int id, got {type(id).__name__} (use pomaidb.get for many)")
        row = get(self, id)
        if row is None:
            raise KeyError(id)
        return row

    def __contains__(self, id: object) -> bool:
        """`id in db`: whether a live row `id` exists (False for a non-int)."""
        if not isinstance(id, (int, np.integer)) or isinstance(id, bool) or not 0 <= int(id) <= _U64_MAX:
            return False
        return exists(self, int(id))

    def exists(self, id: int) -> bool:
        """See `pomaidb.exists`."""
        return exists(self, id)

    def count(self, where: Optional[str] = None, where_ids: Optional[IdsLike] = None) -> int:
        """See `pomaidb.count`."""
        return count(self, where, where_ids)

    def __len__(self) -> int:
        return count(self)

    def scan(self, where: Optional[str] = None, columns: Optional[Sequence[str]] = None, batch_size: int = 65536,
             vectors: bool = True, metadata: bool = True, where_ids: Optional[IdsLike] = None) -> "Scan":
        """See `pomaidb.scan`."""
        return scan(self, where, columns, batch_size, vectors, metadata, where_ids)

    def freeze(self, progress: ProgressLike = None) -> None:
        """See `pomaidb.freeze`."""
        freeze(self, progress)

    def compact(self, progress: ProgressLike = None) -> None:
        """See `pomaidb.compact`."""
        compact(self, progress)

    def stats(self) -> Dict[str, Any]:
        """See `pomaidb.stats`."""
        return stats(self)

    def search(self, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None,
               where: Optional[str] = None, where_ids: Optional[IdsLike] = None
               ) -> Tuple["npt.NDArray[np.uint64]", "npt.NDArray[np.float32]"]:
        """See `pomaidb.search`."""
        return search(self, queries, topk, ef_search, where, where_ids)

    def search_batch(self, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None,
                     where: Optional[str] = None, where_ids: Optional[IdsLike] = None
                     ) -> List[Tuple[List[int], List[float]]]:
        """See `pomaidb.search_batch`."""
        return search_batch(self, queries, topk, ef_search, where, where_ids)

    def verify(self) -> Dict[str, Any]:
        """See `pomaidb.verify`."""
        return verify(self)


def _handle(db: Database) -> Any:
    if not isinstance(db, Database):
        raise TypeError(f"db must be a pomaidb.Database (from open_db), got {type(db).__name__}")
    return db._h()


# ---- functions ----------------------------------------------------------

_METRICS = {"l2": lib.POMAI_METRIC_L2, "ip": lib.POMAI_METRIC_IP, "cosine": lib.POMAI_METRIC_COSINE}
_HNSW_VECTORS = {"sq8": lib.POMAI_HNSW_VECTORS_SQ8, "float32": lib.POMAI_HNSW_VECTORS_FLOAT32}
_UINT32_OPTIONS = ("shards", "search_threads", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search",
                   "adaptive_threshold", "deadline_ms")


def open_db(path: PathLike, dim: int, **opts: Any) -> Database:
    """Opens (creating if missing) the database directory `path` (an alopex
    directory too: its keys and indexes stay, the rows are added beside them).

    dim: vector dimension (fixed when the database is created).
    Options: shards (1), search_threads (0 = all cores), fsync (False; True =
    fsync every write batch), metric ("ip", "l2" or "cosine"; fixed at
    creation), hnsw_m (32), hnsw_ef_construction (200), hnsw_ef_search (64),
    adaptive_threshold (0 = always build HNSW), deadline_ms (0 = none),
    memory_budget_bytes (0 = library default), hnsw_vectors ("sq8": graph
    searches walk an 8-bit copy of the vectors and re-score the best exactly,
    the default; "float32": they walk the float32 vectors, no copy; applies
    to segments built after this open).
    Raises TypeError for an unknown option, ValueError (InvalidArgumentError)
    for a bad value, PomaiDBError when the database cannot be opened (e.g.
    IO_ERROR when another process holds it, or INVALID_ARGUMENT when dim,
    metric or shards differ from the stored ones, dim is above 65535, or the
    directory was written before the one engine's format).
    """
    values = {"shards": 1, "search_threads": 0, "fsync": False, "metric": "ip", "hnsw_m": 32,
              "hnsw_ef_construction": 200, "hnsw_ef_search": 64, "adaptive_threshold": 0,
              "deadline_ms": 0, "memory_budget_bytes": 0, "hnsw_vectors": "sq8"}
    for key, value in opts.items():
        if key not in values:
            raise TypeError(f"open_db() got an unexpected option {key!r}; "
                            f"options are {', '.join(sorted(values))}")
        values[key] = value

    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path_str = os.fspath(path)
    path_bytes = os.fsencode(path_str)
    if not path_bytes or b"\0" in path_bytes:
        raise InvalidArgumentError(f"path = {path_str!r} must be a non-empty path without NUL bytes")
    dim = _uint(dim, "dim", _U32_MAX)
    if dim == 0:
        raise InvalidArgumentError("dim = 0; dim must be at least 1")

    metric = values["metric"]
    metric_key = metric.lower() if isinstance(metric, str) else None
    if metric_key not in _METRICS:
        raise InvalidArgumentError(f"metric = {metric!r}; expected 'ip', 'l2' or 'cosine'")
    hnsw_vectors = values["hnsw_vectors"]
    if hnsw_vectors not in _HNSW_VECTORS:
        raise InvalidArgumentError(f"hnsw_vectors = {hnsw_vectors!r}; expected 'sq8' or 'float32'")
    fsync = values["fsync"]
    if not isinstance(fsync, (bool, np.bool_)) and fsync not in (0, 1):
        raise TypeError(f"fsync must be a bool, got {fsync!r}")

    c_opts = ffi.new("pomai_options_t *")
    lib.pomai_options_init(c_opts)
    c_path = ffi.new("char[]", path_bytes)
    c_opts.path = c_path
    c_opts.dim = dim
    for key in _UINT32_OPTIONS:
        setattr(c_opts, key, _uint(values[key], key, _U32_MAX))
    c_opts.memory_budget_bytes = _uint(values["memory_budget_bytes"], "memory_budget_bytes", _U64_MAX)
    c_opts.fsync_policy = lib.POMAI_FSYNC_POLICY_ALWAYS if fsync else lib.POMAI_FSYNC_POLICY_NEVER
    c_opts.index_type = lib.POMAI_INDEX_TYPE_HNSW
    c_opts.metric = _METRICS[metric_key]
    c_opts.hnsw_vectors = _HNSW_VECTORS[hnsw_vectors]

    out = ffi.new("pomai_db_t **")
    _check(lib.pomai_open(c_opts, out))
    return Database(out[0], path_str if isinstance(path_str, str) else os.fsdecode(path_str),
                    dim, metric_key)


def close(db: Database) -> None:
    """Closes `db`, making its writes durable per its fsync policy and
    releasing its lock. A second close is a no-op; any other call on a closed
    database raises PomaiDBError with code CLOSED (12). In a process forked
    after `open_db`, `db` is the parent's: close does nothing to it, and every
    other call raises PomaiDBError with code CLOSED."""
    if not isinstance(db, Database):
        raise TypeError(f"db must be a pomaidb.Database (from open_db), got {type(db).__name__}")
    db.close()


def put_batch(db: Database, ids: IdsLike, vectors: VectorsLike, metadata: Any = None,
              attributes: Any = None) -> None:
    """Inserts or replaces len(ids) rows, atomically (all or nothing). An id
    repeated in the batch keeps its last row. No rows (ids and vectors both
    empty) is a no-op.

    ids: n ints in [0, 2**64), or an integer array of shape (n,).
    vectors: float array of shape (n, dim) (a list of lists or any numpy
      array; C-contiguous float32 passes without a copy, anything else is
      converted to that).
    metadata: None, or n items each bytes-like or None (no metadata): a list,
      tuple, numpy object array, pyarrow binary array or polars Binary Series.
    attributes: None, or typed attribute columns (docs/FILTERS.md): a dict of
      column name -> n values (numpy array, list with None for nulls, pyarrow
      Array, polars Series), a polars DataFrame or a pyarrow Table. Types:
      integers -> int64, floats -> float64, bool, str -> string, lists of str
      -> tags. A column's type is fixed by its first write; columns the batch
      does not name are null in its rows.
    Metadata and attributes are converted column by column (numpy and pyarrow
    do the per-row work); nothing loops over rows in Python.
    Raises InvalidArgumentError (a PomaiDBError and a ValueError, code 1) for
    a length mismatch, a wrong dim, a non 2-D input, NaN or infinity in a
    vector, NaN in a float attribute, a column given another type than it
    has; TypeError for an unsupported attribute type. Nothing is stored then.
    """
    handle = _handle(db)
    ids_arr = _ids_array(ids)
    n = ids_arr.shape[0]
    if n == 0 and np.size(vectors) == 0:
        _columns.to_columns(attributes, 0)  # bad arguments are errors even with no rows
        _columns.metadata_to_buffers(metadata, 0)
        return
    vec = _matrix(vectors, "vectors", allow_1d=False)
    if vec.shape[0] != n:
        raise InvalidArgumentError(f"len(ids) = {n} but vectors has {vec.shape[0]} rows")
    dim = vec.shape[1]
    if dim != db.dim:
        raise InvalidArgumentError(f"vectors has shape {vec.shape}: dim is {dim} but the database's dim is {db.dim}")
    vec_ptr = ffi.cast("const float *", ffi.from_buffer(vec))
    ids_ptr = ffi.cast("const uint64_t *", ffi.from_buffer(ids_arr))
    if metadata is None and attributes is None:
        _check(lib.pomai_put_array(handle, ids_ptr, vec_ptr, n, dim))
        return
    meta = _columns.metadata_to_buffers(metadata, n)
    cols = _columns.to_columns(attributes, n)
    rows = ffi.new("pomai_rows_t *")
    rows.struct_size = ffi.sizeof("pomai_rows_t")
    rows.dim = dim
    rows.n = n
    rows.ids = ids_ptr
    rows.vectors = vec_ptr
    keep = []
    if meta is not None:
        offsets, data = meta
        keep += [offsets, data]
        rows.metadata_offsets = ffi.cast("const int64_t *", ffi.from_buffer(offsets))
        rows.metadata = ffi.cast("const uint8_t *", ffi.from_buffer(data)) if data.size else ffi.NULL
    c_cols, keep_cols = _c_columns(cols)
    rows.columns = c_cols
    rows.column_count = len(cols)
    _check(lib.pomai_put_rows(handle, rows))
    del keep, keep_cols


def _c_columns(cols: List[Any]) -> Tuple[Any, List[Any]]:
    """The pomai_column_t array of `cols` (_columns.Column), and what keeps its
    buffers alive."""
    if not cols:
        return ffi.NULL, []
    arr = ffi.new("pomai_column_t[]", len(cols))
    keep: List[Any] = [arr]
    size = ffi.sizeof("pomai_column_t")

    def ptr(a: Any, ctype: str) -> Any:
        if a is None:
            return ffi.NULL
        if a.size == 0:
            a = np.zeros(1, dtype=a.dtype)  # a valid address for an empty buffer
        buf = ffi.from_buffer(a)
        keep.append(buf)
        return ffi.cast(ctype, buf)

    for i, c in enumerate(cols):
        name = ffi.new("char[]", c.name)
        keep.append(name)
        arr[i].struct_size = size
        arr[i].type = c.type
        arr[i].name = name
        arr[i].validity = ptr(c.validity, "const uint8_t *")
        arr[i].values = ptr(c.values, "const void *")
        arr[i].offsets = ptr(c.offsets, "const int64_t *")
        arr[i].tag_offsets = ptr(c.tag_offsets, "const int64_t *")
    return arr, keep


def update_attributes(db: Database, ids: IdsLike, attributes: Any) -> None:
    """Sets the given attribute columns of the live rows `ids` (len(ids) values
    per column, in the forms put_batch takes), keeping their vectors,
    metadata and other columns, atomically. Raises PomaiDBError (code
    NOT_FOUND) naming the first id without a live row, and nothing changes."""
    handle = _handle(db)
    ids_arr = _ids_array(ids)
    n = ids_arr.shape[0]
    cols = _columns.to_columns(attributes, n)
    if n == 0:
        return
    c_cols, keep = _c_columns(cols)
    _check(lib.pomai_update_attributes(handle, ffi.cast("const uint64_t *", ffi.from_buffer(ids_arr)), n,
                                       c_cols, len(cols)))
    del keep


def schema(db: Database) -> Dict[str, str]:
    """The database's attribute columns: {name: type} with type "int64",
    "float64", "bool", "string" or "tags", in name order."""
    result = _json_result(lib.pomai_schema_json, db)
    return {c["name"]: c["type"] for c in result["columns"]}


def _filter(where: Optional[str], where_ids: Any) -> Tuple[Any, List[Any]]:
    """A pomai_filter_t for `where` (an expression, docs/FILTERS.md) and
    `where_ids` (an id allow-list), or NULL when both are None; and what keeps
    it alive."""
    if where is None and where_ids is None:
        return ffi.NULL, []
    f = ffi.new("pomai_filter_t *")
    f.struct_size = ffi.sizeof("pomai_filter_t")
    keep: List[Any] = [f]
    if where is not None:
        if not isinstance(where, str):
            raise TypeError(f"where must be a str (a filter expression), got {type(where).__name__}")
        text = where.encode("utf-8")
        if b"\0" in text:
            raise InvalidArgumentError("where contains a NUL character")
        expr = ffi.new("char[]", text)
        keep.append(expr)
        f.expression = expr
    if where_ids is not None:
        ids_arr = _ids_array(where_ids, "where_ids")
        keep.append(ids_arr)
        f.ids = ffi.cast("const uint64_t *", ffi.from_buffer(ids_arr)) if ids_arr.size else \
            ffi.cast("const uint64_t *", ffi.from_buffer(np.zeros(1, dtype=np.uint64)))
        f.id_count = ids_arr.shape[0]
    return f, keep


def delete(db: Database, ids: Optional[IdsLike] = None, where: Optional[str] = None) -> Optional[int]:
    """Deletes one id (an int) or many (a sequence or integer array),
    atomically. Deleting a missing id is not an error.

    With `where` (a filter expression, docs/FILTERS.md) it deletes, as one
    atomic batch, the live rows that pass it at one snapshot (among `ids`
    when they are given too) and returns how many it deleted."""
    handle = _handle(db)
    if where is not None:
        f, keep = _filter(where, ids)
        out = ffi.new("uint64_t *")
        _check(lib.pomai_delete_where(handle, f, out))
        del keep
        return int(out[0])
    if ids is None:
        raise TypeError("ids is None: delete needs ids, or a filter as where=")
    ids_arr = _ids_array(ids)
    if ids_arr.shape[0] == 0:
        return None
    _check(lib.pomai_delete_batch(handle, ffi.cast("const uint64_t *", ffi.from_buffer(ids_arr)),
                                  ids_arr.shape[0]))
    return None


def get(db: Database, id: Any, columns: Optional[Sequence[str]] = None) -> Any:
    """One id (an int): returns (vector: float32 array of shape (dim,),
    metadata: bytes) of the live row `id`, or None when there is none. Both
    are copies.

    Many ids (a sequence or integer array): returns a dict of numpy arrays in
    the order of the ids, with "found" (bool) and the rows' vectors,
    metadata and attribute columns (all, or `columns`); see the README's
    "Attributes and filters"."""
    if not isinstance(id, (int, np.integer)):
        return _get_many(db, id, columns)
    handle = _handle(db)
    id = _uint(id, "id", _U64_MAX)
    out = ffi.new("pomai_record_t **")
    status = lib.pomai_get(handle, id, out)
    if status != ffi.NULL and lib.pomai_status_code(status) == StatusCode.NOT_FOUND:
        lib.pomai_status_free(status)
        return None
    _check(status)
    record = out[0]
    try:
        dim = record.dim
        vector = np.frombuffer(ffi.buffer(record.vector, dim * 4), dtype=np.float32).copy() \
            if dim else np.empty(0, dtype=np.float32)
        meta = bytes(ffi.buffer(record.metadata, record.metadata_len)) if record.metadata_len else b""
    finally:
        lib.pomai_record_free(record)
    return vector, meta


class Scan:
    """The rows of one `scan`, at the snapshot it was opened at: an iterator of
    pyarrow RecordBatches (columns "id" uint64, "vector"
    fixed_size_list<float32>[dim], "metadata" large_binary, then the
    attribute columns), in ascending id order. It holds the snapshot's files
    until it is exhausted or closed. `to_arrow()`, `to_polars()` and
    `to_numpy()` read the rest of it at once."""

    __slots__ = ("_reader", "schema")

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.schema = reader.schema

    def __iter__(self) -> "Scan":
        return self

    def __next__(self) -> Any:
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            raise
        except OSError as e:
            raise _stream_error(e) from None

    def __enter__(self) -> "Scan":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Releases the snapshot (the rest of the rows are not read)."""
        self._reader.close()

    def _all(self, convert: Any) -> Any:
        try:
            return convert(self._reader, self.schema)
        except OSError as e:
            raise _stream_error(e) from None

    def to_arrow(self) -> Any:
        """The rest of the rows as one pyarrow Table (the batches' buffers, not copies)."""
        return self._all(_columns.batches_to_arrow)

    def to_polars(self) -> Any:
        """The rest of the rows as a polars DataFrame."""
        return self._all(_columns.batches_to_polars)

    def to_numpy(self) -> Dict[str, Any]:
        """The rest of the rows as {column: numpy array}: "id" uint64, "vector"
        float32 (rows, dim), attributes as numpy (masked where null; strings
        and tags as object arrays)."""
        return self._all(_columns.batches_to_numpy)


def _stream_error(e: Exception) -> PomaiDBError:
    """The PomaiDBError of a failed scan batch (its message "pomai status N: ...")."""
    import re
    m = re.search(r"pomai status (\d+): (.*)", str(e), re.S)
    if m is None:
        return PomaiDBError(StatusCode.INTERNAL, str(e))
    return _error(int(m.group(1)), m.group(2).strip())


def scan(db: Database, where: Optional[str] = None, columns: Optional[Sequence[str]] = None,
         batch_size: int = 65536, vectors: bool = True, metadata: bool = True,
         where_ids: Optional[IdsLike] = None) -> Scan:
    """Reads the live rows passing `where` (and `where_ids`) at one snapshot,
    in ascending id order, as a `Scan`: an iterator of pyarrow RecordBatches of
    at most batch_size rows, with to_arrow() / to_polars() / to_numpy().

    columns: the attribute columns to return, in this order (None: all of
    them; [] none); vectors, metadata: whether to return those columns.
    Batches come from C through the Arrow C stream interface (no copy into
    Python objects). Writes after the scan began are not in it."""
    pa = _columns._pyarrow("scan()")
    handle = _handle(db)
    batch = _uint(batch_size, "batch_size", _U64_MAX)
    if batch == 0:
        raise InvalidArgumentError("batch_size is 0; it must be at least 1")
    f, keep = _filter(where, where_ids)
    opts = ffi.new("pomai_scan_options_t *")
    opts.struct_size = ffi.sizeof("pomai_scan_options_t")
    opts.flags = (lib.POMAI_SCAN_VECTORS if vectors else 0) | (lib.POMAI_SCAN_METADATA if metadata else 0)
    opts.filter = f
    opts.batch_rows = batch
    if columns is not None:
        if isinstance(columns, (str, bytes)):
            raise TypeError("columns must be a sequence of column names, not one string")
        names = []
        for c in columns:
            if not isinstance(c, str):
                raise TypeError(f"columns must hold str names, got {type(c).__name__}")
            names.append(ffi.new("char[]", c.encode("utf-8")))
        arr = ffi.new("const char *[]", names) if names else ffi.new("const char *[]", 1)
        keep += [names, arr]
        opts.columns = arr
        opts.column_count = len(names)
    stream = ffi.new("struct ArrowArrayStream *")
    _check(lib.pomai_scan(handle, opts, stream))
    reader = pa.RecordBatchReader._import_from_c(int(ffi.cast("uintptr_t", stream)))
    del keep
    return Scan(reader)


def _get_many(db: Database, ids: IdsLike, columns: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The live rows `ids` (any order, repeats allowed) at one snapshot, as
    numpy arrays in the order of `ids`: {"id": uint64 (n,), "found": bool (n,),
    "vector": float32 (n, dim) (zeros where not found), "metadata": object
    array of bytes (None where not found), then each attribute column (all
    of them, or `columns`): numbers and bools as numpy masked arrays (masked
    where null or not found), strings and tags as object arrays (None)}.
    One scan reads the rows (by an id allow-list); numpy puts them in order."""
    ids_arr = _ids_array(ids)
    n = ids_arr.shape[0]
    data = scan(db, columns=columns, where_ids=ids_arr).to_numpy()
    have = data.pop("id")
    if have.size:
        pos = np.minimum(np.searchsorted(have, ids_arr), have.size - 1)
        found = have[pos] == ids_arr
    else:
        pos = np.zeros(n, dtype=np.int64)
        found = np.zeros(n, dtype=bool)
    out: Dict[str, Any] = {"id": ids_arr.copy(), "found": found}
    for name, col in data.items():
        if name == "vector":
            vec = np.zeros((n, db.dim), dtype=np.float32)
            if have.size:
                vec[found] = col[pos[found]]
            out[name] = vec
        elif isinstance(col, np.ma.MaskedArray) or col.dtype != object:
            picked = np.ma.array(col[pos] if have.size else np.zeros(n, dtype=col.dtype))
            out[name] = np.ma.array(picked.data, mask=np.ma.getmaskarray(picked) | ~found)
        else:
            picked = col[pos].copy() if have.size else np.empty(n, dtype=object)
            picked[~found] = None
            out[name] = picked
    return out


def exists(db: Database, id: int) -> bool:
    """Whether a live (not deleted) row `id` exists."""
    handle = _handle(db)
    id = _uint(id, "id", _U64_MAX)
    out = ffi.new("bool *")
    _check(lib.pomai_exists(handle, id, out))
    return bool(out[0])


def count(db: Database, where: Optional[str] = None, where_ids: Optional[IdsLike] = None) -> int:
    """The number of live rows (those passing the filter `where` and whose id
    is in `where_ids`, when given)."""
    handle = _handle(db)
    out = ffi.new("uint64_t *")
    f, keep = _filter(where, where_ids)
    if f == ffi.NULL:
        _check(lib.pomai_count(handle, out))
    else:
        _check(lib.pomai_count_where(handle, f, out))
    del keep
    return int(out[0])


def freeze(db: Database, progress: ProgressLike = None) -> None:
    """Turns the memtable into indexed segments and returns when they are
    durable. Not needed for visibility: writes are searchable at once.
    progress: True shows a tqdm bar (when tqdm is installed) of the rows
    indexed into HNSW graphs; a callable gets (done, total)."""
    call_with_progress(ffi, lib.pomai_freeze_with_progress, (_handle(db),), progress, "freeze", _check)


def compact(db: Database, progress: ProgressLike = None) -> None:
    """Merges every segment into one (dropping overwritten and deleted rows,
    starting the HNSW graph from the largest input's) and returns when the result is
    durable. Searches keep running meanwhile. A background policy merges
    segments on its own after freezes; this forces a full merge.
    progress: as for `freeze`."""
    call_with_progress(ffi, lib.pomai_compact_with_progress, (_handle(db),), progress, "compact", _check)


def _json_result(call: Any, db: Database) -> Dict[str, Any]:
    """The JSON object a C call of the form call(db, char** out) writes,
    decoded (the string is freed with pomai_free)."""
    out = ffi.new("char **")
    _check(call(_handle(db), out))
    try:
        text = ffi.string(out[0]).decode()
    finally:
        lib.pomai_free(out[0])
    result: Dict[str, Any] = json.loads(text)
    return result


def stats(db: Database) -> Dict[str, Any]:
    """Statistics: {"segments", "segment_rows", "segment_tombstones",
    "segment_bytes", "memtable_rows", "live_rows", "dead_rows", "dim",
    "shards": [{"shard", "memtable_rows"}], "segment_files": [{"file",
    "rows", "tombstones", "bytes", "graph": {"m", "ef_construction",
    "max_level", "avg_degree0", "bytes", "vectors" ("sq8" or "float32"),
    "reused_rows" (rows whose links a compaction carried over from an
    input's graph)} or None}], "graph_reused_rows" (their sum)}. A segment
    file holds the rows of every shard."""
    return _json_result(lib.pomai_stats_json, db)


def verify(db: Database) -> Dict[str, Any]:
    """Checks the files of the open database `db`, with the checks of
    `pomai-inspect verify DIR` (docs/FORMAT.md, "pomai-inspect"): CURRENT
    names a manifest log whose edits decode and replay; every segment it
    names exists, has the size it gives, matches every checksum, has sorted
    ids and tombstones, valid metadata offsets and graphs whose links are
    all in range; every live WAL file reads to its end, its records decode
    and their sequence numbers increase. It reads
    every byte of every file (time in proportion to the database's size).
    Writes and searches go on meanwhile; freezes and compactions wait until it
    returns, so the files it checks are the database's current ones.

    Finding damage is not an error: it is in the result, a dict with
    "ok" (bool: no problem found), "problems" (a list of {"file", "offset"
    (byte offset in the file, or None), "code" (a `StatusCode`, e.g. 5
    CORRUPTION), "message"}), "error" (the first problem, or None), "notes"
    (a list of {"file", "offset", "message"}: a torn WAL tail, a file the
    manifest does not need), "checked" (a list of {"file", "kind"
    ("current", "manifest", "segment", "wal"), "ok", "detail"}), "counts" ({"checked",
    "problems", "notes"}) and "path" (the database directory).
    Raises PomaiDBError (code CLOSED) when `db` is closed."""
    return _json_result(lib.pomai_verify, db)


def _search_arrays(db: Database, queries: VectorsLike, topk: int, ef_search: Optional[int],
                   where: Optional[str] = None, where_ids: Optional[IdsLike] = None
                   ) -> Tuple["npt.NDArray[np.uint64]", "npt.NDArray[np.float32]", "npt.NDArray[np.uint32]"]:
    handle = _handle(db)
    topk = _uint(topk, "topk", _U32_MAX)
    f, keep = _filter(where, where_ids)
    if topk > _BIG_TOPK:
        # The outputs are preallocated (n, topk): a huge topk ("give me
        # everything") is capped at the live count, which is all it can return.
        topk = min(topk, count(db, where, where_ids))
    ef = 0 if ef_search is None else _uint(ef_search, "ef_search", _U32_MAX)
    if ef_search is not None and ef == 0:
        raise InvalidArgumentError("ef_search is 0; it must be at least 1 (or None for the database's default)")
    q = _matrix(queries, "queries", allow_1d=True)
    n, dim = q.shape
    if n and dim != db.dim:
        raise InvalidArgumentError(f"queries has shape {q.shape}: dim is {dim} but the database's dim is {db.dim}")
    ids = np.empty((n, topk), dtype=np.uint64)
    scores = np.empty((n, topk), dtype=np.float32)
    counts = np.zeros(n, dtype=np.uint32)
    _check(lib.pomai_search_array_filtered(
        handle, ffi.cast("const float *", ffi.from_buffer(q)), n, dim, topk, ef, f,
        ffi.cast("uint64_t *", ffi.from_buffer(ids, require_writable=True)),
        ffi.cast("float *", ffi.from_buffer(scores, require_writable=True)),
        ffi.cast("uint32_t *", ffi.from_buffer(counts, require_writable=True))))
    del keep
    return ids, scores, counts


def search(db: Database, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None,
           where: Optional[str] = None, where_ids: Optional[IdsLike] = None
           ) -> Tuple["npt.NDArray[np.uint64]", "npt.NDArray[np.float32]"]:
    """Top-k search of n queries in one C call, into numpy arrays.

    The memtable and segments below `adaptive_threshold` rows are searched
    exactly; larger segments through their HNSW graph with ef =
    max(topk, ef_search) (ef_search None: the open's `hnsw_ef_search`).

    queries: float array of shape (n, dim), or (dim,) for one query ([] or
    an empty 1-D array is zero queries).
    Returns (ids: uint64 array of shape (n, topk), scores: float32 array of
    shape (n, topk)); row i holds query i's results, best (highest score)
    first, ties by id ascending. When fewer than topk live rows exist, the
    rest of each row is padding: id 2**64 - 1 and score -inf (use
    search_batch for exact per-query counts). A topk above 4096 is capped at
    the live count (the arrays are then (n, min(topk, count)) wide), so a
    huge topk means "every row" and never allocates n * topk cells.
    Scores: "ip" dot product, "l2" negative squared distance, "cosine"
    cosine similarity.
    where: a filter expression (docs/FILTERS.md), e.g. "lang = 'en' AND year >= 2020";
    where_ids: an id allow-list (any integer sequence or array). Only rows
    passing both come back, and topk of them whenever topk pass.
    """
    ids, scores, _ = _search_arrays(db, queries, topk, ef_search, where, where_ids)
    return ids, scores


def search_batch(db: Database, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None,
                 where: Optional[str] = None, where_ids: Optional[IdsLike] = None
                 ) -> List[Tuple[List[int], List[float]]]:
    """Top-k search of any number of queries (see `search` for exact vs HNSW
    and `ef_search`).

    queries: a list of lists or a float array of shape (n, dim) (or (dim,)
    for one query; [] is zero queries). where, where_ids: as for `search`. Returns one (ids: list[int], scores: list[float]) per
    query, in order, each best first and at most topk long.
    """
    ids, scores, counts = _search_arrays(db, queries, topk, ef_search, where, where_ids)
    return [(ids[i, :c].tolist(), scores[i, :c].tolist()) for i, c in enumerate(counts.tolist())]


def simd_target() -> str:
    """Name of the SIMD target the distance kernels use on this CPU (e.g. "AVX2")."""
    return str(ffi.string(lib.pomai_simd_target()).decode())


def version() -> str:
    """Version of the loaded C library, e.g. "0.1.0"."""
    return str(ffi.string(lib.pomai_version_string()).decode())


def abi_version() -> int:
    """ABI version of the loaded C library."""
    return int(lib.pomai_abi_version())


def library_path() -> str:
    """Path of the libpomai_c.so in use (the one in the package, or the one
    POMAI_C_LIB names), e.g. for `ctypes.CDLL(pomaidb.library_path())`."""
    return LIBRARY_PATH
