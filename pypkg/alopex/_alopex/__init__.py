"""`alopex._alopex`: the module path of AlopexDB's native extension, for code
written against AlopexDB that imports it (`from alopex._alopex import
catalog`, `alopex._alopex.catalog._resolve_credentials(...)`).

Pure Python here: each name is the `alopex` object itself, laid out as
AlopexDB lays out its module: the names of its `_alopex.pyi` at the top, and
the submodules `catalog`, `database`, `transaction`, `types`.

Left out, as this package does not implement them (no stand-ins):
- SQL: `_bind_sql_params`, `SqlResultStream`, `execute_sql`,
  `execute_sql_stream` and `query_stream` on Database/Transaction;
- AlopexDB's own dataframes: `DataFrame`, `LazyFrame`, `Expr`, `col`, `lit`,
  `concat`, `concat_str`, `StringNamespace`, `DatetimeNamespace`,
  `ListNamespace`, `DataFrameStream`, `LocalScan` (the Catalog uses polars);
- `ThreadMode` and `thread_mode=`, `Database.cluster_status` and
  `routing_diagnostics`, `Transaction.status`, the CRDT counters and sets
  (and, outside this module, `alopex.remote` and `alopex.asyncio`);
- `ALOPEX_ERROR_CODES`: AlopexError.code names our engine's statuses, not
  AlopexDB's codes (only the Catalog's ValueError/RuntimeError carry those);
- `polars`: a typing placeholder of the stub, not a runtime name.
"""

import typing as _typing

from .._catalog import Catalog, CatalogInfo, ColumnInfo, NamespaceInfo, TableInfo
from .._core import Database, Transaction
from .._types import (
    AlopexError,
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
from . import catalog, database, transaction, types

# The stub's type aliases, narrowed to what this package accepts.
TableType = _typing.Literal["MANAGED"]
DataSourceFormat = _typing.Literal["PARQUET", "DELTA"]
DeltaMode = _typing.Literal["error", "ignore", "append", "overwrite", "merge"]
CredentialProvider = _typing.Union[_typing.Literal["auto"], _typing.Dict[str, str], None,
                                   _typing.Callable[..., object]]

__all__ = [
    "AlopexError",
    "Catalog",
    "CatalogInfo",
    "ColumnInfo",
    "CredentialProvider",
    "DataSourceFormat",
    "Database",
    "DatabaseOptions",
    "DeltaMode",
    "EmbeddedConfig",
    "HnswConfig",
    "HnswStats",
    "MemoryStats",
    "Metric",
    "NamespaceInfo",
    "SearchResult",
    "StorageMode",
    "TableInfo",
    "TableType",
    "Transaction",
    "TxnMode",
]
