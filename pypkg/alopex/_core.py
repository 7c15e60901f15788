"""`Database` and `Transaction`: argument conversion and error mapping over
the pomai keyspace C ABI (`include/pomai/kv.h`), nothing else.

Every method makes one C call (two for a value larger than 1 KiB); the C
library does the storage, the search and the validation of values. Vectors
cross as `ffi.from_buffer` over a C-contiguous float32 numpy array, so such an
array is never copied; other array-likes are converted once by numpy. No
Python code loops over vectors or rows. The GIL is released during every cffi
call, so searches from several threads run in parallel.

The per-key calls (`begin`, `get`, `put`, `delete`, `commit`, `rollback`) and
the iterator of `scan_prefix` / `scan_range` are in `_txn_calls.c`, written
against the CPython API: a cffi call plus a Python method costs several times
the C library's own get or put. That module calls the same library
functions, whose addresses it gets from `ffi` here.
"""

from __future__ import annotations

import json
import math
import operator
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _txn_calls
from ._ffi import ffi, lib, load_pomaidb_module, missing_symbols
from ._types import (
    AlopexError,
    EmbeddedConfig,
    HnswConfig,
    HnswStats,
    MemoryStats,
    Metric,
    SearchResult,
    StorageMode,
    TxnMode,
)

__all__ = ["Database", "Transaction"]

VectorLike = Any  # a 1-D numpy array or any 1-D sequence of numbers
# An attribute value of an HNSW index entry (upsert_to_hnsw's attributes=):
# None (left out), bool, int (int64), float (float64), str, or a list or
# tuple of str (tags); numpy bool, integer and floating scalars too.
AttributeValue = Union[None, bool, int, float, str, Sequence[str]]
PathLike = Union[str, "os.PathLike[str]"]

_NULL = ffi.NULL
_READ_ONLY = TxnMode.READ_ONLY
_U32_MAX = 2**32 - 1

# C status codes (pomai/c_types.h) by number, for AlopexError.code.
_CODE_NAMES = {
    1: "INVALID_ARGUMENT", 2: "NOT_FOUND", 3: "ALREADY_EXISTS", 4: "IO_ERROR", 5: "CORRUPTION",
    6: "RESOURCE_EXHAUSTED", 7: "DEADLINE_EXCEEDED", 8: "INTERNAL", 9: "UNIMPLEMENTED",
    10: "PARTIAL_FAILURE", 11: "CONFLICT", 12: "CLOSED", 13: "READ_ONLY",
}


# ---- the C functions, bound once ---------------------------------------

def _bind(name: str) -> Any:
    try:
        return getattr(lib, name)
    except AttributeError:
        def missing(*_args: Any) -> Any:
            raise AlopexError(
                f"the pomai C library in use lacks {name} (missing: "
                f"{', '.join(missing_symbols(lib))}); rebuild the package", "UNIMPLEMENTED")
        return missing


# pomaidb's progress= helper, shared by both packages (numpy-free).
_progress = load_pomaidb_module("_progress")

_status_code = _bind("pomai_status_code")
_status_message = _bind("pomai_status_message")
_status_free = _bind("pomai_status_free")
_db_open_ex = _bind("pomai_db_open_ex")
_db_options_init = _bind("pomai_db_options_ex_init")
_db_close = _bind("pomai_close")
_db_flush = _bind("pomai_db_flush")
_db_memory_usage = _bind("pomai_db_memory_usage")
_verify = _bind("pomai_verify")
_free = _bind("pomai_free")
_txn_upsert_vector = _bind("pomai_txn_upsert_vector")
_txn_get_vector = _bind("pomai_txn_get_vector")
_txn_search_similar = _bind("pomai_txn_search_similar")
_hits_free = _bind("pomai_kv_hits_free")
_index_create = _bind("pomai_index_create")
_index_drop = _bind("pomai_index_drop")
_index_stats = _bind("pomai_index_stats")
_index_search_where = _bind("pomai_index_search_where")
_index_prepare = _bind("pomai_index_prepare")
_txn_index_upsert_attrs = _bind("pomai_txn_index_upsert_attrs")
_txn_index_delete = _bind("pomai_txn_index_delete")


def _ctype(decl: str) -> Any:
    try:
        return ffi.typeof(decl)
    except Exception:  # the library in use has no kv.h declarations
        return None


_DB_PP = _ctype("pomai_db_t*[1]")
_HITS_PP = _ctype("pomai_kv_hits_t*[1]")
_U32_1 = _ctype("uint32_t[1]")
_STATS_P = _ctype("pomai_hnsw_stats_t*")
_COLUMNS = _ctype("pomai_column_t[]")
_COLUMN_SIZE = ffi.sizeof(_COLUMNS.item) if _COLUMNS is not None else 0


# What one C call of a scan iterator fetches at most (pomai_txn_scan's
# max_entries and max_bytes; an entry larger than the byte limit comes alone).
_SCAN_BATCH_ENTRIES = 1024
_SCAN_BATCH_BYTES = 1 << 20


def _prefix_end(prefix: bytes) -> Optional[bytes]:
    """The smallest key above every key starting with `prefix`: the prefix
    without its trailing 0xFF bytes, its last byte incremented; None (no
    bound) when the prefix is empty or all 0xFF."""
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes((p[-1] + 1,))


# ---- errors --------------------------------------------------------------

def _status_error(status: Any) -> AlopexError:
    """The AlopexError a non-NULL status carries; frees the status."""
    try:
        code = _status_code(status)
        message = ffi.string(_status_message(status)).decode("utf-8", "replace")
    finally:
        _status_free(status)
    return AlopexError(message, _CODE_NAMES.get(code, f"STATUS_{code}"))


def _check(status: Any) -> None:
    if status:
        raise _status_error(status)


def _db_closed() -> AlopexError:
    return AlopexError("database is closed", "CLOSED")


def _txn_closed() -> AlopexError:
    return AlopexError("transaction is closed", "CLOSED")


def _not_bytes(value: Any, name: str) -> TypeError:
    return TypeError(f"{name} must be bytes, got {type(value).__name__}")


def _u32_param(value: Any, name: str) -> int:
    """An int argument for a uint32 C field; out-of-range values give the
    engine's "invalid parameter" wording instead of an OverflowError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if v < 0 or v > _U32_MAX:
        raise AlopexError(f"invalid parameter {name}: out of range (got {v})", "INVALID_ARGUMENT")
    return v


def _count_param(value: Any, name: str) -> int:
    """k and ef_search: non-negative ints; values past uint32 are clamped."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if v < 0:
        raise AlopexError(f"invalid parameter {name}: must be >= 0 (got {v})", "INVALID_ARGUMENT")
    return v if v <= _U32_MAX else _U32_MAX


def _metric(metric: Any) -> int:
    if type(metric) is not Metric:
        raise TypeError(f"metric must be an alopex.Metric, got {type(metric).__name__} {metric!r}")
    return metric._value_  # (Enum.value is a slow descriptor)


def _index_name(name: Any) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if "\0" in name:  # the C call takes a NUL-terminated name: it would be cut there
        raise AlopexError(f"index name {name!r} contains a NUL byte", "INVALID_ARGUMENT")
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate
        raise AlopexError(f"index name {name!r} cannot be encoded as UTF-8 ({e.reason})", "INVALID_ARGUMENT") from None


def _metadata(metadata: Any) -> Tuple[bool, Any, int]:
    if metadata is None:
        return False, _NULL, 0
    if type(metadata) is not bytes and not isinstance(metadata, bytes):
        raise TypeError(f"metadata must be bytes or None, got {type(metadata).__name__}")
    return True, metadata, len(metadata)


# ---- attributes of index entries and filters -----------------------------

# The C ABI's attribute types (POMAI_ATTR_*, pomai/c_types.h).
_ATTR_INT64, _ATTR_FLOAT64, _ATTR_BOOL, _ATTR_STRING, _ATTR_TAGS = 1, 2, 3, 4, 5
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ATTR_TYPES = "None, bool, int, float, str or a list or tuple of str (tags)"


def _attr_name(name: Any) -> bytes:
    """An attribute name as UTF-8; the engine checks the rest of its rules
    (1..255 bytes, not "id") and names the attribute when one is broken."""
    if not isinstance(name, str):
        raise TypeError(f"attributes: an attribute name must be a str, got {type(name).__name__} {name!r}")
    if "\0" in name:  # the C name is NUL-terminated: it would be cut there
        raise AlopexError(f"attribute name {name!r} contains a NUL character", "INVALID_ARGUMENT")
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate
        raise AlopexError(f"attribute name {name!r} cannot be encoded as UTF-8 ({e.reason})",
                          "INVALID_ARGUMENT") from None


def _attr_utf8(name: str, value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise AlopexError(f"attribute {name!r}: {what} {value!r} cannot be encoded as UTF-8 ({e.reason})",
                          "INVALID_ARGUMENT") from None


def _numpy_scalar(value: Any) -> Any:
    """A numpy bool, integer or floating scalar as the Python bool, int or
    float; anything else unchanged. numpy is not imported for it: a numpy
    scalar exists only when something imported numpy already."""
    np = sys.modules.get("numpy")
    if np is None or not isinstance(value, np.generic) or isinstance(value, str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _column(name: str, cname: Any, value: Any, keep: List[Any]) -> Tuple[Any, ...]:
    """The pomai_column_t, as the tuple of its fields, holding the one row
    `value` of attribute `name` (`cname`: its NUL-terminated name); the
    buffers it points into go to `keep`."""
    value = _numpy_scalar(value)
    new = ffi.new
    if value is None:  # left out: a null of any type (its validity bit is 0)
        validity, values = new("uint8_t[1]"), new("int64_t[1]")
        keep += (validity, values)
        return (_COLUMN_SIZE, _ATTR_INT64, cname, validity, values, _NULL, _NULL)
    if isinstance(value, bool):
        values = new("uint8_t[1]", [1 if value else 0])
        keep.append(values)
        return (_COLUMN_SIZE, _ATTR_BOOL, cname, _NULL, values, _NULL, _NULL)
    if isinstance(value, int):
        v = int(value)
        if v < _INT64_MIN or v > _INT64_MAX:
            raise AlopexError(f"attribute {name!r}: {v} is outside the int64 range "
                              f"[{_INT64_MIN}, {_INT64_MAX}]", "INVALID_ARGUMENT")
        values = new("int64_t[1]", [v])
        keep.append(values)
        return (_COLUMN_SIZE, _ATTR_INT64, cname, _NULL, values, _NULL, _NULL)
    if isinstance(value, float):
        if math.isnan(value):
            raise AlopexError(f"attribute {name!r} is NaN (use None to leave it out)", "INVALID_ARGUMENT")
        values = new("double[1]", [value])
        keep.append(values)
        return (_COLUMN_SIZE, _ATTR_FLOAT64, cname, _NULL, values, _NULL, _NULL)
    if isinstance(value, str):
        data = _attr_utf8(name, value, "string")
        values, offsets = ffi.from_buffer(data), new("int64_t[2]", [0, len(data)])
        keep += (values, offsets)
        return (_COLUMN_SIZE, _ATTR_STRING, cname, _NULL, values, offsets, _NULL)
    if isinstance(value, (list, tuple)):
        tags = []
        ends = [0]
        for j, tag in enumerate(value):
            if not isinstance(tag, str):
                raise TypeError(f"attribute {name!r}: tag {j} must be a str, got {type(tag).__name__}")
            t = _attr_utf8(name, tag, f"tag {j}")
            tags.append(t)
            ends.append(ends[-1] + len(t))
        values = ffi.from_buffer(b"".join(tags))
        offsets, tag_offsets = new("int64_t[2]", [0, len(tags)]), new("int64_t[]", ends)
        keep += (values, offsets, tag_offsets)
        return (_COLUMN_SIZE, _ATTR_TAGS, cname, _NULL, values, offsets, tag_offsets)
    raise TypeError(f"attribute {name!r} must be {_ATTR_TYPES}, got {type(value).__name__}")


def _attribute_columns(attributes: Any) -> Tuple[Any, int, List[Any]]:
    """upsert_to_hnsw's `attributes` as a pomai_column_t array of one row
    per attribute and its length ((NULL, 0) for None or an empty dict), with
    the objects its pointers point into (alive through the C call). Built
    with cffi alone: numpy is not needed."""
    if attributes is None:
        return _NULL, 0, []
    if not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a dict of attribute name -> value or None, "
                        f"got {type(attributes).__name__}")
    if not attributes:
        return _NULL, 0, []
    keep: List[Any] = []
    rows = []
    for name, value in attributes.items():
        cname = ffi.new("char[]", _attr_name(name))
        keep.append(cname)
        rows.append(_column(name, cname, value, keep))
    return ffi.new(_COLUMNS, rows), len(rows), keep


def _where(where: Any) -> Any:
    """search_hnsw's `where` as a NUL-terminated UTF-8 string (NULL for None)."""
    if where is None:
        return _NULL
    if not isinstance(where, str):
        raise TypeError(f"where must be a str or None, got {type(where).__name__}")
    if "\0" in where:  # the C string is NUL-terminated: it would be cut there
        at = len(where[:where.index("\0")].encode("utf-8", "surrogatepass"))
        raise AlopexError(f"invalid parameter where: a NUL character at byte {at}", "INVALID_ARGUMENT")
    try:
        return where.encode("utf-8")
    except UnicodeEncodeError as e:
        raise AlopexError(f"invalid parameter where: cannot be encoded as UTF-8 ({e.reason} at "
                          f"character {e.start})", "INVALID_ARGUMENT") from None


# ---- numpy ---------------------------------------------------------------

_np: Any = None
_F32: Any = None


def _numpy() -> Any:
    """numpy, imported on first use: only the vector methods need it."""
    global _np, _F32
    if _np is None:
        try:
            import numpy
        except ImportError:
            raise AlopexError(
                "numpy is required for vector operations but is not installed: "
                "run `pip install numpy`", "PYTHON") from None
        _F32 = numpy.dtype(numpy.float32)
        _np = numpy
    return _np


def _as_f32(x: Any, name: str = "vector") -> Any:
    """x as a 1-D C-contiguous float32 ndarray: `x` itself when it already is
    one (no copy), else one conversion (float64, strided, lists...).
    TypeError for anything not 1-D; AlopexError when empty."""
    np = _np if _np is not None else _numpy()
    if x is None:
        raise TypeError(f"{name} must be a 1-D array of numbers, got None")
    if type(x) is np.ndarray and x.dtype is _F32 and x.ndim == 1 and x.flags.c_contiguous:
        arr = x
    else:
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a 1-D array of numbers: {e}") from None
        if arr.ndim != 1:
            raise TypeError(f"{name} must be 1-D, got an array of shape {arr.shape}")
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
    if arr.shape[0] == 0:
        raise AlopexError(f"invalid parameter {name}: must not be empty", "INVALID_ARGUMENT")
    return arr


def _hits_to_results(hits: Any, with_vectors: bool, zero_copy: bool) -> List[SearchResult]:
    """SearchResults from a C hits array (which the caller frees)."""
    n = hits.count
    if n == 0:
        return []
    arr = hits.hits
    buffer = ffi.buffer
    out: List[SearchResult] = []
    block: Any = None
    block_ptr: Any = None
    dim = 0
    if with_vectors:
        np = _np if _np is not None else _numpy()
        dim = arr[0].dim
        if zero_copy:
            # One Python-owned block; each result's vector is a row view of it.
            block = np.empty((n, dim), dtype=np.float32)
            block_ptr = ffi.from_buffer("float[]", block)
    for i in range(n):
        h = arr[i]
        metadata = buffer(h.metadata, h.metadata_len)[:] if h.has_metadata else None
        vector = None
        if with_vectors and h.vector != _NULL:
            d = h.dim
            if block is not None and d == dim:
                ffi.memmove(block_ptr + i * dim, h.vector, d * 4)
                vector = block[i]
            else:
                vector = np.frombuffer(buffer(h.vector, d * 4), dtype=np.float32).copy()
        out.append(SearchResult(buffer(h.key, h.key_len)[:], h.score, metadata, vector))
    return out


def _stats(c: Any) -> HnswStats:
    levels = min(c.level_count, 32)
    return HnswStats(c.node_count, c.deleted_count, list(c.level_distribution[0:levels]),
                     c.memory_bytes, c.avg_edges_per_node)


# ---- Database ------------------------------------------------------------

class Database:
    """An open alopex database: one ordered keyspace of bytes values and
    vector records, plus named HNSW indexes.

    Made by `Database.new()` / `open_in_memory()` (in memory, no files),
    `Database.open(path)` (a directory on disk) or
    `Database.open_with_config(EmbeddedConfig)` (in memory with a memory
    cap); `Database()` is a TypeError. Thread-safe: every method may be called
    from several threads, and the GIL is released inside the C calls. After
    `close()`, every method raises AlopexError "database is closed".

    A database and its transactions do not cross os.fork(): in the child
    every call raises AlopexError with code CLOSED, and close (explicit, or at
    garbage collection and interpreter exit) does nothing, leaving the
    parent's database as it is. Open it again in the child.
    """

    __slots__ = ("_handle", "_address", "_lock", "_pid", "_storage", "_path", "__weakref__")
    _handle: Any  # pomai_db_t*, None once closed
    _address: int  # the handle as an integer, for _txn_calls
    _lock: threading.Lock
    _pid: int  # the process that opened it
    _storage: StorageMode
    _path: Optional[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("cannot create 'Database' instances directly; use Database.new(), "
                        "Database.open_in_memory(), Database.open(path) or "
                        "Database.open_with_config(config)")

    @classmethod
    def _open(cls, storage: StorageMode, path: Optional[str], memory_limit: int) -> "Database":
        opts = ffi.new("pomai_db_options_ex_t*")
        _db_options_init(opts)
        opts.storage_mode = storage.value
        keep = None
        if path is not None:
            keep = ffi.new("char[]", os.fsencode(path))
            opts.path = keep
        opts.memory_limit_bytes = memory_limit
        out = ffi.new(_DB_PP)
        _check(_db_open_ex(opts, out))
        del keep
        db = object.__new__(cls)
        db._handle = out[0]
        db._address = int(ffi.cast("uintptr_t", out[0]))
        db._lock = threading.Lock()
        db._pid = os.getpid()
        db._storage = storage
        db._path = path
        return db

    @classmethod
    def new(cls) -> "Database":
        """A new in-memory database (no files; gone at close)."""
        return cls._open(StorageMode.IN_MEMORY, None, 0)

    @classmethod
    def open_in_memory(cls) -> "Database":
        """Same as `Database.new()`."""
        return cls._open(StorageMode.IN_MEMORY, None, 0)

    @classmethod
    def open(cls, path: PathLike) -> "Database":
        """Opens (creating if missing, parents included) the on-disk database
        in directory `path` (a str or os.PathLike). Committed transactions,
        vectors and HNSW indexes survive close and reopen. AlopexError when it
        cannot be opened (e.g. IO_ERROR: another process holds it)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        p = os.fspath(path)
        if not isinstance(p, str):
            p = os.fsdecode(p)
        if not p or "\0" in p:
            raise AlopexError(f"invalid parameter path: {p!r}", "INVALID_ARGUMENT")
        return cls._open(StorageMode.DISK, p, 0)

    @classmethod
    def open_with_config(cls, config: EmbeddedConfig) -> "Database":
        """A new in-memory database capped at `config.memory_limit_bytes`
        (None or 0: no cap). A commit that would pass the cap raises
        AlopexError "memory limit exceeded" and changes nothing."""
        if not isinstance(config, EmbeddedConfig):
            raise TypeError(f"config must be an alopex.EmbeddedConfig, got {type(config).__name__}")
        limit = config.memory_limit_bytes
        if limit is None:
            limit = 0
        else:
            if isinstance(limit, bool):
                raise TypeError("memory_limit_bytes must be an int or None, got bool")
            try:
                limit = operator.index(limit)
            except TypeError:
                raise TypeError(f"memory_limit_bytes must be an int or None, "
                                f"got {type(limit).__name__}") from None
            if limit < 0 or limit >= 2**64:
                raise AlopexError(f"invalid parameter memory_limit_bytes: out of range (got {limit})",
                                  "INVALID_ARGUMENT")
        return cls._open(StorageMode.IN_MEMORY, None, limit)

    # -- lifecycle

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._handle is None

    def close(self) -> None:
        """Closes the database, rolling back every transaction still active
        (their methods then raise AlopexError "transaction is closed"). A
        second close raises AlopexError "database is closed". In a process
        forked after the open it only marks this object closed."""
        if self._pid != os.getpid():
            # The parent's database, which the C library leaves alone here; and
            # a thread of the parent, absent here, may have held _lock at the fork.
            if self._handle is None:
                raise _db_closed()
            self._handle = None
            return
        with self._lock:
            h = self._handle
            if h is None:
                raise _db_closed()
            self._handle = None
        _check(_db_close(h))

    def __enter__(self) -> "Database":
        if self._handle is None:
            raise _db_closed()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_handle", None) is not None:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else "open"
        where = "in memory" if self._path is None else repr(self._path)
        return f"<alopex.Database {where} {state}>"

    def _h(self) -> Any:
        h = self._handle
        if h is None:
            raise _db_closed()
        return h

    # -- transactions and maintenance

    def begin(self, mode: Optional[TxnMode] = None) -> "Transaction":
        """Begins a transaction on a snapshot of every committed transaction.
        mode: TxnMode.READ_ONLY (the default, also for None) or
        TxnMode.READ_WRITE. Use it as a context manager to roll back what was
        not committed when the block ends."""
        if mode is None:
            mode = _READ_ONLY
        elif type(mode) is not TxnMode:
            raise TypeError(f"mode must be an alopex.TxnMode, got {type(mode).__name__} {mode!r}")
        if self._handle is None:
            raise _db_closed()
        txn = _begin(Transaction, self._address, mode._value_)
        txn._db = self
        txn._mode = mode
        return txn

    def flush(self) -> None:
        """Disk mode: turns the memtable into a durable segment file. In
        memory: AlopexError (there is nothing to flush to)."""
        _check(_db_flush(self._h()))

    def memory_usage(self) -> MemoryStats:
        """The database's memory figures in bytes (see MemoryStats), real in
        both modes."""
        out = ffi.new("pomai_memory_stats_t*")
        _check(_db_memory_usage(self._h(), out))
        return MemoryStats(out.total_bytes, out.used_bytes, out.free_bytes)

    def verify(self) -> Dict[str, Any]:
        """Checks the database's files, with the checks of `pomai-inspect
        verify DIR` (docs/FORMAT.md, "pomai-inspect"): CURRENT names a
        manifest log whose edits decode and replay; every segment it names
        exists, has the size it gives and passes every section checksum and
        every entry check (key order, vector groups, sequence numbers not
        above the manifest's); every live WAL file reads to its end, its
        commit records decode and the ones recovery replays have increasing
        sequence numbers (an HNSW index's graphs are sections of the
        segments, checked with them). It reads every byte of every file
        (time in proportion to the database's size). Commits and searches go
        on meanwhile; flushes and merges (which build index graphs) wait
        until it returns, so the files it checks are the
        database's current ones. An in-memory database has no files: nothing
        is checked, and a note says so.

        Finding damage is not an error: it is in the result, a dict with
        "ok" (bool: no problem found), "problems" (a list of {"file",
        "offset" (byte offset in the file, or None), "code" (the C status
        code, 5 = CORRUPTION), "message"}), "error" (the first problem, or
        None), "notes" (a list of {"file", "offset", "message"}: a torn WAL
        tail, a file the manifest does not need), "checked" (a list of
        {"file", "kind" ("current", "manifest", "segment", "wal"), "ok",
        "detail"}), "counts"
        ({"checked", "problems", "notes"}) and "path". AlopexError (code
        CLOSED) when the database is closed."""
        out = ffi.new("char*[1]")
        _check(_verify(self._h(), out))
        try:
            text = ffi.string(out[0]).decode()
        finally:
            _free(out[0])
        report: Dict[str, Any] = json.loads(text)
        return report

    # -- named HNSW indexes

    def create_hnsw_index(self, name: str, config: HnswConfig) -> None:
        """Creates the HNSW index `name` (an existing one of that name is
        replaced, entries included), durably. AlopexError "invalid parameter
        ..." for dim outside 1..65535, m outside 2..100, ef_construction < m."""
        cname = _index_name(name)
        if not isinstance(config, HnswConfig):
            raise TypeError(f"config must be an alopex.HnswConfig, got {type(config).__name__}")
        c = ffi.new("pomai_hnsw_config_t*")
        c.struct_size = ffi.sizeof("pomai_hnsw_config_t")
        c.dim = _u32_param(config.dim, "dimension")
        c.m = _u32_param(config.m, "m")
        c.ef_construction = _u32_param(config.ef_construction, "ef_construction")
        c.metric = _metric(config.metric)
        _check(_index_create(self._h(), cname, c))

    def drop_hnsw_index(self, name: str) -> None:
        """Drops the index `name` and its entries, durably. AlopexError when
        it does not exist."""
        _check(_index_drop(self._h(), _index_name(name)))

    def get_hnsw_stats(self, name: str) -> HnswStats:
        """Statistics of the index `name` (AlopexError when missing)."""
        out = ffi.new(_STATS_P)
        _check(_index_stats(self._h(), _index_name(name), out))
        return _stats(out)

    def search_hnsw(self, name: str, query: VectorLike, k: int,
                    ef_search: Optional[int] = None,
                    progress: _progress.ProgressLike = None,
                    where: Optional[str] = None) -> Tuple[List[SearchResult], HnswStats]:
        """Approximate top-k over the committed entries of index `name`.

        query: 1-D float32 array of the index's dimension (float64, strided
        arrays and lists are converted; a C-contiguous float32 array is not
        copied). ef_search: candidate list size, default max(k, 50), never
        below k. Returns (results best first, with key, score and metadata
        and no vector; the index's HnswStats at the time of the search).

        where: a filter over the entries' attributes (`upsert_to_hnsw`'s
        attributes=) in the language of docs/FILTERS.md, e.g.
        "lang = 'de' AND year >= 2020 AND tags CONTAINS 'ml'"; only entries
        it passes come back, min(k, passing entries) of them. An entry
        without an attribute is null there (SQL's nulls: `x != 1` does not
        pass it, `x IS NULL` does). None or "" = no filter. AlopexError
        INVALID_ARGUMENT "filter: ..." for a bad expression (naming the
        byte position), an attribute no entry has or `id` (entries have
        byte keys); TypeError when not a str.

        The first search of an index with entries and no graph flushes them
        into a segment with an HNSW graph, which takes seconds for many
        entries; the graph lives in the segment, so a reopened database
        builds nothing. Entries committed later are searched exactly until a
        background flush puts them into a graph. progress: True shows a tqdm
        bar of that first build (when tqdm is installed: `pip install
        'pomai[progress]'`), a callable gets (rows linked, rows); nothing is
        reported when no build is needed.
        """
        cname = _index_name(name)
        cwhere = _where(where)
        q = _as_f32(query, "query")
        kk = _count_param(k, "k")
        ef = 0 if ef_search is None else _count_param(ef_search, "ef_search")
        h = self._h()
        if progress is not None and progress is not False:
            _progress.call_with_progress(ffi, _index_prepare, (h, cname), progress, f"index {name}", _check)
        out = ffi.new(_HITS_PP)
        stats = ffi.new(_STATS_P)
        _check(_index_search_where(h, cname, ffi.from_buffer("float[]", q), q.shape[0], kk, ef, cwhere,
                                   out, stats))
        hits = out[0]
        try:
            results = _hits_to_results(hits, False, False)
        finally:
            _hits_free(hits)
        return results, _stats(stats)


# ---- Transaction ---------------------------------------------------------

class Transaction(_txn_calls.TxnBase):
    """A transaction (from `Database.begin`) on a snapshot: reads see the
    snapshot plus the transaction's own writes; `commit()` applies its writes
    atomically, first committer wins ("transaction conflict" for the loser).

    Keys, values and metadata are `bytes` (TypeError otherwise). After
    commit or rollback (or a failed commit, or closing the database) every
    method raises AlopexError "transaction is closed"; any other failed call
    leaves it usable. Calls on one transaction from several threads are
    serialised by the library.

    `get`, `put` and `delete` keep the GIL: they read memory (and, on disk,
    mapped segment pages, which the first read of a cold page faults in) and
    take well under a microsecond, less than handing the GIL over would
    cost. `commit`, `rollback`, `Database.begin` and every vector and index
    call release it while the library works.
    """

    # `_h` (the pomai_txn_t* as cdata, None once ended), `_ended`, get, put,
    # delete, commit, rollback, the scan iterator (`_scan`) and the rollback
    # of an abandoned transaction are TxnBase's (_txn_calls.c).
    __slots__ = ("_db", "_mode", "__weakref__")
    _db: Database
    _mode: TxnMode

    @property
    def mode(self) -> TxnMode:
        """The TxnMode the transaction was begun with."""
        return self._mode

    @property
    def closed(self) -> bool:
        """Whether the transaction has ended (commit, rollback, db close)."""
        return self._ended or self._db._handle is None

    def __repr__(self) -> str:
        state = "closed" if self._ended else "active"
        return f"<alopex.Transaction {self._mode!r} {state}>"

    def _fail(self, status: Any) -> AlopexError:
        err = _status_error(status)
        if err.code == "CLOSED":  # the database was closed under it
            self._h = None
        return err

    def __enter__(self) -> "Transaction":
        if self._ended or self._db._handle is None:
            raise _txn_closed()
        return self

    def __exit__(self, *exc: Any) -> None:
        """Rolls the transaction back when it is still active (commit
        explicitly inside the block); exceptions propagate."""
        if not self._ended:
            try:
                self.rollback()
            except AlopexError as err:
                if err.code != "CLOSED" and exc[0] is None:
                    raise

    # -- key-range scans

    def scan_prefix(self, prefix: bytes) -> Iterator[Tuple[bytes, bytes]]:
        """An iterator of `(key, value)` over the keys starting with `prefix`
        (b"" = every key), in ascending byte order; see `scan_range`."""
        if type(prefix) is not bytes and not isinstance(prefix, bytes):
            raise _not_bytes(prefix, "prefix")
        prefix = bytes(prefix)
        return self._scan_iter(prefix, _prefix_end(prefix))

    def scan_range(self, start: bytes, end: Optional[bytes] = None) -> Iterator[Tuple[bytes, bytes]]:
        """An iterator of `(key, value)` over the keys in [start, end) (end
        None = to the last key), in ascending byte order (a shorter key
        first on a common prefix).

        It reads the transaction's snapshot plus its own writes (its puts
        are seen, its deletes hide keys). Only keys holding plain bytes
        values come back: keys holding vectors (`upsert_vector`) are
        skipped, and HNSW index entries are never seen. Keys and values are
        fetched from the library in batches (up to 1024 entries or 1 MiB
        per C call, resuming after the last key), not one call per key: a
        write the transaction makes while iterating is seen only by the
        batches fetched after it.

        The iterator works while the transaction is active: once it has
        committed or rolled back (or its database is closed), `next()` raises
        AlopexError "transaction is closed". In a READ_WRITE transaction a
        scan also guards what it returned: the commit raises AlopexError
        "transaction conflict" when another transaction committed, after this
        one began, a write to a key in a range this one's iterators read
        (through the last key of the batches they fetched; to the end of the
        range once a batch reached it). AlopexError for start > end; TypeError for a start or
        end that is not bytes.
        """
        if type(start) is not bytes and not isinstance(start, bytes):
            raise _not_bytes(start, "start")
        if end is not None:
            if type(end) is not bytes and not isinstance(end, bytes):
                raise TypeError(f"end must be bytes or None, got {type(end).__name__}")
            if start > end:
                raise AlopexError(f"start {start!r} is greater than end {end!r}", "INVALID_ARGUMENT")
            end = bytes(end)
        return self._scan_iter(bytes(start), end)

    def _scan_iter(self, lo: bytes, hi: Optional[bytes]) -> Iterator[Tuple[bytes, bytes]]:
        if self._db._handle is None:
            raise _txn_closed()
        it: Iterator[Tuple[bytes, bytes]] = self._scan(self._db, lo, hi, _SCAN_BATCH_ENTRIES, _SCAN_BATCH_BYTES)
        return it

    # -- vectors (flat, exact)

    def upsert_vector(self, key: bytes, metadata: Optional[bytes], vector: VectorLike,
                      metric: Metric) -> None:
        """Stores `vector` (1-D, float32 or convertible; a C-contiguous
        float32 array is read in place) with `metric` and optional metadata
        under `key`. AlopexError for an empty vector, NaN or infinity, or a
        READ_ONLY transaction."""
        if type(key) is not bytes and not isinstance(key, bytes):
            raise _not_bytes(key, "key")
        has_md, md, md_len = _metadata(metadata)
        m = _metric(metric)
        arr = _as_f32(vector)
        h = self._h
        if h is None:
            raise _txn_closed()
        st = _txn_upsert_vector(h, key, len(key), has_md, md, md_len,
                                ffi.from_buffer("float[]", arr), arr.shape[0], m)
        if st:
            raise self._fail(st)

    def get_vector(self, key: bytes, metric: Metric, zero_copy_return: bool = True) -> Any:
        """The vector stored under `key` as a float32 ndarray of shape (dim,).

        KeyError when the key is missing, deleted or holds plain bytes;
        AlopexError when it was stored with another metric. The array always
        owns its memory (the C library copies straight into it);
        zero_copy_return=True returns that array as is, False returns a fresh
        copy of it (kept for compatibility with the original, where True
        avoided a copy).
        """
        if type(key) is not bytes and not isinstance(key, bytes):
            raise _not_bytes(key, "key")
        m = _metric(metric)
        np = _np if _np is not None else _numpy()
        h = self._h
        if h is None:
            raise _txn_closed()
        out_dim = ffi.new(_U32_1)
        cap = 1024
        for _ in range(2):
            arr = np.empty(cap, dtype=np.float32)
            st = _txn_get_vector(h, key, len(key), m, ffi.from_buffer("float[]", arr), cap, out_dim)
            if st:
                err = self._fail(st)
                if err.code == "NOT_FOUND":
                    raise KeyError(f"Vector not found for key (len={len(key)}): 0x{key.hex()}")
                raise err
            dim = out_dim[0]
            if dim <= cap:
                vec = arr[:dim] if dim == cap else arr[:dim].copy()
                return vec if zero_copy_return else vec.copy()
            cap = dim
        raise AlopexError(f"vector of key 0x{key.hex()} changed size while being read", "INTERNAL")

    def search_similar(self, query: VectorLike, metric: Metric, k: int,
                       filter_keys: Optional[Iterable[bytes]] = None, return_vectors: bool = False,
                       zero_copy_return: bool = True) -> List[SearchResult]:
        """Exact top-k over the vector records visible to the transaction
        (its snapshot plus its own upserts), or over `filter_keys` only
        (absent and non-vector keys are skipped).

        query: 1-D float32 array (converted when not; not copied when
        C-contiguous float32). Results are sorted by score descending, then
        key ascending; k=0 gives []. A candidate stored with another metric
        or dimension raises AlopexError. With return_vectors each result's
        `vector` is a float32 array of shape (dim,): with zero_copy_return
        (default) the vectors are row views of one array of shape (n, dim)
        that the results own together, filled by one copy from the C result;
        with False each vector is an independent array.
        """
        m = _metric(metric)
        q = _as_f32(query, "query")
        kk = _count_param(k, "k")
        h = self._h
        if h is None:
            raise _txn_closed()
        if filter_keys is None:
            has_filter, keys_arr, lens_arr, n_keys = False, _NULL, _NULL, 0
            keep = None
        else:
            if isinstance(filter_keys, (bytes, str)):
                raise TypeError("filter_keys must be a sequence of bytes keys, not a single key")
            keys = list(filter_keys)
            for i, fk in enumerate(keys):
                if type(fk) is not bytes and not isinstance(fk, bytes):
                    raise _not_bytes(fk, f"filter_keys[{i}]")
            keep = [ffi.from_buffer("uint8_t[]", fk) for fk in keys]
            has_filter, n_keys = True, len(keys)
            keys_arr = ffi.new("uint8_t*[]", keep)
            lens_arr = ffi.new("size_t[]", [len(fk) for fk in keys])
        out = ffi.new(_HITS_PP)
        st = _txn_search_similar(h, ffi.from_buffer("float[]", q), q.shape[0], m, kk, has_filter,
                                 keys_arr, lens_arr, n_keys, bool(return_vectors), out)
        del keep
        if st:
            raise self._fail(st)
        hits = out[0]
        try:
            return _hits_to_results(hits, bool(return_vectors), bool(zero_copy_return))
        finally:
            _hits_free(hits)

    # -- named HNSW indexes

    def upsert_to_hnsw(self, name: str, key: bytes, vector: VectorLike,
                       metadata: Optional[bytes] = None,
                       attributes: Optional[Mapping[str, AttributeValue]] = None) -> None:
        """Adds or replaces entry `key` of index `name`, applied at commit
        (invisible to search_hnsw before; rollback discards it). AlopexError
        for a missing index, a wrong dimension, NaN/inf or READ_ONLY.

        attributes: typed values `search_hnsw(where=)` filters on, a dict
        {name: value}: bool -> bool, int -> int64, float -> float64, str ->
        string (at most 65,535 bytes of UTF-8), a list or tuple of str ->
        tags (may be empty), None -> left out (as an attribute not given);
        numpy bool, integer and floating scalars as their Python kind; at
        most 256 attributes. An upsert replaces the entry's attributes with
        these. An attribute's type is fixed by its first write to the index:
        a commit giving it another type (in any entry) fails with AlopexError
        INVALID_ARGUMENT naming the entry and both types, and applies
        nothing. TypeError for a non-dict, a non-str name or another value type
        (naming the attribute and the type); AlopexError INVALID_ARGUMENT
        naming the attribute for a name that is empty, longer than 255
        bytes, contains NUL or is "id", an int outside int64, NaN, a string
        too long. Nothing is staged when anything is wrong.
        """
        cname = _index_name(name)
        if type(key) is not bytes and not isinstance(key, bytes):
            raise _not_bytes(key, "key")
        has_md, md, md_len = _metadata(metadata)
        columns, n_columns, keep = _attribute_columns(attributes)
        arr = _as_f32(vector)
        h = self._h
        if h is None:
            raise _txn_closed()
        st = _txn_index_upsert_attrs(h, cname, key, len(key), ffi.from_buffer("float[]", arr),
                                     arr.shape[0], has_md, md, md_len, columns, n_columns)
        del keep
        if st:
            raise self._fail(st)

    def delete_from_hnsw(self, name: str, key: bytes) -> None:
        """Removes entry `key` of index `name` at commit (a missing entry is
        fine; a missing index is AlopexError)."""
        cname = _index_name(name)
        if type(key) is not bytes and not isinstance(key, bytes):
            raise _not_bytes(key, "key")
        h = self._h
        if h is None:
            raise _txn_closed()
        st = _txn_index_delete(h, cname, key, len(key))
        if st:
            raise self._fail(st)




# ---- the CPython-API per-key calls (_txn_calls.c) --------------------------

def _status_error_for(txn: Transaction, address: int, ended: bool) -> AlopexError:
    status = ffi.cast("pomai_status_t*", address)
    return _status_error(status) if ended else txn._fail(status)


def _setup_txn_calls() -> None:
    names = ("pomai_txn_begin", "pomai_txn_get", "pomai_txn_put", "pomai_txn_delete",
             "pomai_txn_commit", "pomai_txn_rollback", "pomai_status_free", "pomai_txn_scan",
             "pomai_kv_scan_batch_free")
    missing = [n for n in names if not hasattr(lib, n)]
    if missing:
        # The POMAI_C_LIB override lacks them: every call names what is missing.
        def unavailable(*_args: Any) -> Any:
            raise AlopexError(
                f"the pomai C library in use lacks {', '.join(missing)} (missing: "
                f"{', '.join(missing_symbols(lib))}); rebuild the package", "UNIMPLEMENTED")
        globals()["_begin"] = unavailable
        return
    functions = {n: int(ffi.cast("uintptr_t", ffi.addressof(lib, n))) for n in names}
    txn_p = ffi.typeof("pomai_txn_t*")
    _txn_calls.setup(functions, _status_error_for, _txn_closed, lambda a: ffi.cast(txn_p, a))


_begin = _txn_calls.begin
_setup_txn_calls()
