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

    def put_batch(self, ids: IdsLike, vectors: VectorsLike,
                  metadata: Optional[Sequence[Optional[bytes]]] = None) -> None:
        """See `pomaidb.put_batch`."""
        put_batch(self, ids, vectors, metadata)

    def delete(self, ids: IdsLike) -> None:
        """See `pomaidb.delete`."""
        delete(self, ids)

    def get(self, id: int) -> Optional[Tuple["npt.NDArray[np.float32]", bytes]]:
        """See `pomaidb.get`."""
        return get(self, id)

    def exists(self, id: int) -> bool:
        """See `pomaidb.exists`."""
        return exists(self, id)

    def count(self) -> int:
        """See `pomaidb.count`."""
        return count(self)

    def __len__(self) -> int:
        return count(self)

    def freeze(self, progress: ProgressLike = None) -> None:
        """See `pomaidb.freeze`."""
        freeze(self, progress)

    def compact(self, progress: ProgressLike = None) -> None:
        """See `pomaidb.compact`."""
        compact(self, progress)

    def stats(self) -> Dict[str, Any]:
        """See `pomaidb.stats`."""
        return stats(self)

    def search(self, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None
               ) -> Tuple["npt.NDArray[np.uint64]", "npt.NDArray[np.float32]"]:
        """See `pomaidb.search`."""
        return search(self, queries, topk, ef_search)

    def search_batch(self, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None
                     ) -> List[Tuple[List[int], List[float]]]:
        """See `pomaidb.search_batch`."""
        return search_batch(self, queries, topk, ef_search)

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


def put_batch(db: Database, ids: IdsLike, vectors: VectorsLike,
              metadata: Optional[Sequence[Optional[bytes]]] = None) -> None:
    """Inserts or replaces len(ids) vectors, atomically (all or nothing).
    An id repeated in the batch keeps its last row (and metadata). No rows
    (ids and vectors both empty) is a no-op.

    ids: n ints in [0, 2**64), or an integer array of shape (n,).
    vectors: float array of shape (n, dim) (a list of lists or any numpy
      array; C-contiguous float32 passes without a copy, anything else is
      converted to that).
    metadata: None, or n items each bytes-like or None (no metadata). This
      path builds one pomai_upsert_t per row in Python (a loop over rows to
      fill the C structs, pointing into the converted vector buffer); without
      metadata the batch goes to C as two flat buffers with no Python loop.
    Raises InvalidArgumentError (a PomaiDBError and a ValueError, code 1) for
    a length mismatch, a wrong dim, a non 2-D input, NaN or infinity; nothing
    is stored then.
    """
    handle = _handle(db)
    ids_arr = _ids_array(ids)
    n = ids_arr.shape[0]
    if n == 0 and np.size(vectors) == 0 and not metadata:
        return
    vec = _matrix(vectors, "vectors", allow_1d=False)
    if vec.shape[0] != n:
        raise InvalidArgumentError(f"len(ids) = {n} but vectors has {vec.shape[0]} rows")
    dim = vec.shape[1]
    if dim != db.dim:
        raise InvalidArgumentError(f"vectors has shape {vec.shape}: dim is {dim} but the database's dim is {db.dim}")
    vec_ptr = ffi.cast("const float *", ffi.from_buffer(vec))

    if metadata is None:
        ids_ptr = ffi.cast("const uint64_t *", ffi.from_buffer(ids_arr))
        _check(lib.pomai_put_array(handle, ids_ptr, vec_ptr, n, dim))
        return

    if isinstance(metadata, (bytes, bytearray, memoryview, str)):
        raise TypeError("metadata must be a sequence with one bytes (or None) per row")
    metadata = list(metadata)
    if len(metadata) != n:
        raise InvalidArgumentError(f"len(ids) = {n} but len(metadata) = {len(metadata)}")
    items = ffi.new("pomai_upsert_t[]", n)
    size = ffi.sizeof("pomai_upsert_t")
    keep_alive = []
    for i in range(n):
        item = items[i]
        item.struct_size = size
        item.id = int(ids_arr[i])
        item.vector = vec_ptr + i * dim
        item.dim = dim
        m = metadata[i]
        if m is None:
            continue
        if isinstance(m, str) or not isinstance(m, (bytes, bytearray, memoryview)):
            raise TypeError(f"metadata[{i}] must be bytes or None, got {type(m).__name__}")
        if len(m) > _U32_MAX:
            raise InvalidArgumentError(f"metadata[{i}] has {len(m)} bytes; at most {_U32_MAX}")
        if len(m):
            buf = ffi.from_buffer(m)
            keep_alive.append(buf)
            item.metadata = ffi.cast("const uint8_t *", buf)
            item.metadata_len = len(m)
    _check(lib.pomai_put_batch(handle, items, n))


def delete(db: Database, ids: IdsLike) -> None:
    """Deletes one id (an int) or many (a sequence or integer array),
    atomically. Deleting a missing id is not an error."""
    handle = _handle(db)
    ids_arr = _ids_array(ids)
    if ids_arr.shape[0] == 0:
        return
    _check(lib.pomai_delete_batch(handle, ffi.cast("const uint64_t *", ffi.from_buffer(ids_arr)),
                                  ids_arr.shape[0]))


def get(db: Database, id: int) -> Optional[Tuple["npt.NDArray[np.float32]", bytes]]:
    """Returns (vector: float32 array of shape (dim,), metadata: bytes) of the
    live row `id`, or None when there is none. Both are copies."""
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


def exists(db: Database, id: int) -> bool:
    """Whether a live (not deleted) row `id` exists."""
    handle = _handle(db)
    id = _uint(id, "id", _U64_MAX)
    out = ffi.new("bool *")
    _check(lib.pomai_exists(handle, id, out))
    return bool(out[0])


def count(db: Database) -> int:
    """The number of live rows."""
    handle = _handle(db)
    out = ffi.new("uint64_t *")
    _check(lib.pomai_count(handle, out))
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


def _search_arrays(db: Database, queries: VectorsLike, topk: int, ef_search: Optional[int]
                   ) -> Tuple["npt.NDArray[np.uint64]", "npt.NDArray[np.float32]", "npt.NDArray[np.uint32]"]:
    handle = _handle(db)
    topk = _uint(topk, "topk", _U32_MAX)
    if topk > _BIG_TOPK:
        # The outputs are preallocated (n, topk): a huge topk ("give me
        # everything") is capped at the live count, which is all it can return.
        topk = min(topk, count(db))
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
    _check(lib.pomai_search_array(
        handle, ffi.cast("const float *", ffi.from_buffer(q)), n, dim, topk, ef,
        ffi.cast("uint64_t *", ffi.from_buffer(ids, require_writable=True)),
        ffi.cast("float *", ffi.from_buffer(scores, require_writable=True)),
        ffi.cast("uint32_t *", ffi.from_buffer(counts, require_writable=True))))
    return ids, scores, counts


def search(db: Database, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None
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
    """
    ids, scores, _ = _search_arrays(db, queries, topk, ef_search)
    return ids, scores


def search_batch(db: Database, queries: VectorsLike, topk: int = 10, ef_search: Optional[int] = None
                 ) -> List[Tuple[List[int], List[float]]]:
    """Top-k search of any number of queries (see `search` for exact vs HNSW
    and `ef_search`).

    queries: a list of lists or a float array of shape (n, dim) (or (dim,)
    for one query; [] is zero queries). Returns one (ids: list[int], scores: list[float]) per
    query, in order, each best first and at most topk long.
    """
    ids, scores, counts = _search_arrays(db, queries, topk, ef_search)
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
