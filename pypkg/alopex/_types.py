"""The value types of `alopex`: constants, configurations, results, errors.

Plain Python objects with no C state: they can be built, compared and printed
without a database.
"""

from __future__ import annotations

import enum
from typing import Any, List, Optional, Tuple

__all__ = [
    "AlopexError",
    "TxnMode",
    "Metric",
    "StorageMode",
    "HnswConfig",
    "EmbeddedConfig",
    "DatabaseOptions",
    "SearchResult",
    "HnswStats",
    "MemoryStats",
]


class AlopexError(Exception):
    """Every failure of an alopex call that is not a TypeError (wrong argument
    type) or a KeyError (`Transaction.get_vector` of a missing key).

    `str(err)` is the engine's message, e.g. "transaction conflict",
    "transaction is closed", "database is closed", "memory limit exceeded",
    "invalid parameter m: ...". `err.code` names the C status
    ("CONFLICT", "CLOSED", "READ_ONLY", "INVALID_ARGUMENT", "NOT_FOUND",
    "RESOURCE_EXHAUSTED", "IO_ERROR", ...) or is "PYTHON" for an error raised
    by the Python layer itself (e.g. numpy missing).
    """

    def __init__(self, message: str = "", code: str = "PYTHON") -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.code))


class _Constant(enum.Enum):
    """An enum whose repr is `Class.NAME`, like the original's constants.
    Members compare equal only to themselves (not to their int values) and
    are hashable; `Class(value)` looks a member up by its C value."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    __str__ = __repr__


class TxnMode(_Constant):
    """Transaction mode of `Database.begin` (values are the C `POMAI_TXN_*`)."""

    READ_ONLY = 0
    READ_WRITE = 1


class Metric(_Constant):
    """Vector similarity metric (values are the C `POMAI_METRIC_*`). Scores
    are always "higher is better": COSINE similarity (0.0 when a norm is 0),
    L2 the negative Euclidean distance, INNER_PRODUCT the dot product."""

    L2 = 0
    INNER_PRODUCT = 1
    COSINE = 2


class StorageMode(_Constant):
    """Where a database lives (values are the C `POMAI_STORAGE_*`)."""

    DISK = 0
    IN_MEMORY = 1


def _repr(obj: Any, fields: Tuple[str, ...], name: str = "") -> str:
    inner = ", ".join(f"{f}={getattr(obj, f)!r}" for f in fields)
    return f"{name or type(obj).__name__}({inner})"


class HnswConfig:
    """Configuration of a named HNSW index (`Database.create_hnsw_index`).

    dim: vector dimension, 1..65535. m: links per node, 2..100.
    ef_construction: candidate list size while building, >= m.
    metric: a `Metric` (None means COSINE). The values are checked when the
    index is created, not here (as in the original).
    """

    __slots__ = ("dim", "m", "ef_construction", "metric")
    _fields = __slots__

    def __init__(self, dim: int, m: int = 16, ef_construction: int = 200,
                 metric: Optional[Metric] = None) -> None:
        if metric is None:
            metric = Metric.COSINE
        elif not isinstance(metric, Metric):
            raise TypeError(f"metric must be an alopex.Metric, got {type(metric).__name__} {metric!r}")
        self.dim = dim
        self.m = m
        self.ef_construction = ef_construction
        self.metric = metric

    def __repr__(self) -> str:
        return _repr(self, self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not HnswConfig:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable


class EmbeddedConfig:
    """Configuration of `Database.open_with_config` (an in-memory database).

    memory_limit_bytes: None (or 0) for no cap; else a commit that would make
    the database use more than this many bytes fails with AlopexError
    "memory limit exceeded" and changes nothing.
    """

    __slots__ = ("memory_limit_bytes",)

    def __init__(self, memory_limit_bytes: Optional[int] = None) -> None:
        self.memory_limit_bytes = memory_limit_bytes

    def __repr__(self) -> str:
        return _repr(self, self.__slots__)


class DatabaseOptions:
    """Options describing a database: path, storage_mode (a `StorageMode`;
    None means IN_MEMORY, as in the original), memory_limit_bytes (None = no
    cap) and enable_metrics (accepted for compatibility; no effect)."""

    __slots__ = ("path", "storage_mode", "memory_limit_bytes", "enable_metrics")

    def __init__(self, path: Optional[str] = None, storage_mode: Optional[StorageMode] = None,
                 memory_limit_bytes: Optional[int] = None, enable_metrics: bool = False) -> None:
        if storage_mode is None:
            storage_mode = StorageMode.IN_MEMORY
        elif not isinstance(storage_mode, StorageMode):
            raise TypeError(f"storage_mode must be an alopex.StorageMode, got {type(storage_mode).__name__}")
        self.path = path
        self.storage_mode = storage_mode
        self.memory_limit_bytes = memory_limit_bytes
        self.enable_metrics = bool(enable_metrics)

    def __repr__(self) -> str:
        return _repr(self, self.__slots__)


class SearchResult:
    """One hit of a vector search.

    key: bytes. score: float, higher is better (see `Metric`).
    metadata: the bytes stored with the vector, or None when it has none.
    vector: the stored vector as a float32 ndarray of shape (dim,) when it
    was asked for (`return_vectors=True`), else None.
    """

    __slots__ = ("key", "score", "metadata", "vector")

    def __init__(self, key: bytes, score: float, metadata: Optional[bytes] = None,
                 vector: Any = None) -> None:
        self.key = key
        self.score = score
        self.metadata = metadata
        self.vector = vector

    def __repr__(self) -> str:
        return _repr(self, self.__slots__)


class HnswStats:
    """Statistics of a named HNSW index, computed from its graphs.

    node_count: live (searchable) entries. deleted_count: graph nodes whose
    entry was deleted or replaced. level_distribution: element i is the
    number of nodes whose top level is i. memory_bytes: bytes held by the
    index (vectors, links, key map). avg_edges_per_node: mean layer-0 degree.
    """

    __slots__ = ("node_count", "deleted_count", "level_distribution", "memory_bytes",
                 "avg_edges_per_node")

    def __init__(self, node_count: int = 0, deleted_count: int = 0,
                 level_distribution: Optional[List[int]] = None, memory_bytes: int = 0,
                 avg_edges_per_node: float = 0.0) -> None:
        self.node_count = node_count
        self.deleted_count = deleted_count
        self.level_distribution = [] if level_distribution is None else list(level_distribution)
        self.memory_bytes = memory_bytes
        self.avg_edges_per_node = avg_edges_per_node

    def __repr__(self) -> str:
        return _repr(self, HnswStats.__slots__, "HnswStats")


class MemoryStats:
    """Memory of a database, in bytes. used_bytes: memtables and mapped
    segments (index graphs are searched in the segments). total_bytes: the memory limit when one is
    set, else the machine's physical memory. free_bytes: total - used (0 when
    used exceeds total); computed when not given."""

    __slots__ = ("total_bytes", "used_bytes", "free_bytes")

    def __init__(self, total_bytes: int, used_bytes: int, free_bytes: Optional[int] = None) -> None:
        self.total_bytes = total_bytes
        self.used_bytes = used_bytes
        self.free_bytes = max(0, total_bytes - used_bytes) if free_bytes is None else free_bytes

    def __repr__(self) -> str:
        return _repr(self, self.__slots__)
