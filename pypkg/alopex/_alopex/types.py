"""`alopex._alopex.types`, as in AlopexDB: constants, configurations,
results and the catalog's info classes."""

from .._catalog import CatalogInfo, ColumnInfo, NamespaceInfo, TableInfo
from .._types import (
    DatabaseOptions,
    EmbeddedConfig,
    HnswConfig,
    HnswStats,
    MemoryStats,
    Metric,
    SearchResult,
    StorageMode,
    TxnMode,
)

__all__ = [
    "CatalogInfo",
    "ColumnInfo",
    "DatabaseOptions",
    "EmbeddedConfig",
    "HnswConfig",
    "HnswStats",
    "MemoryStats",
    "Metric",
    "NamespaceInfo",
    "SearchResult",
    "StorageMode",
    "TableInfo",
    "TxnMode",
]
