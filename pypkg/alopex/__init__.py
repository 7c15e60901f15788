"""alopex: an embedded transactional key/value and vector database (the
AlopexDB-style Python face of the pomai engine).

    from alopex import Database, TxnMode

    db = Database.new()
    with db.begin(TxnMode.READ_WRITE) as txn:
        txn.put(b"user:1", b"alice")
        txn.commit()
    with db.begin(TxnMode.READ_ONLY) as txn:
        print(txn.get(b"user:1"))
    db.close()

Transactions see a snapshot taken at `begin` (snapshot isolation, first
committer wins) and iterate key ranges with `scan_prefix` / `scan_range`;
vectors are stored per key and searched exactly inside a
transaction (`upsert_vector`, `search_similar`, `get_vector`), or through
named HNSW indexes (`create_hnsw_index`, `upsert_to_hnsw`, `search_hnsw`),
whose entries may carry typed attributes that a search filters on
(`upsert_to_hnsw(..., attributes={"lang": "de", "year": 2024})`,
`search_hnsw(..., where="lang = 'de' AND year >= 2020")`).
The vector methods need numpy; everything else works without it. The
package uses the same C library as `pomaidb` (POMAI_C_LIB overrides it).
"""

from ._catalog import Catalog, CatalogInfo, ColumnInfo, NamespaceInfo, TableInfo
from ._core import Database, Transaction
from ._ffi import ffi as _ffi, lib as _lib
from ._types import (
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

# The version of the pomai engine this package runs on: the C library's
# (the same string as `pomaidb.__version__` and the `pomai` distribution's).
__version__: str = _ffi.string(_lib.pomai_version_string()).decode()

__all__ = [
    "__version__",
    "AlopexError",
    "Catalog",
    "CatalogInfo",
    "ColumnInfo",
    "Database",
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
    "Transaction",
    "TxnMode",
]

# The public classes print, and pickle, under the package's own name
# (`alopex.AlopexError`), not the private module defining them.
for _public in (AlopexError, Catalog, CatalogInfo, ColumnInfo, Database, DatabaseOptions, EmbeddedConfig,
                HnswConfig, HnswStats, MemoryStats, Metric, NamespaceInfo, SearchResult, StorageMode,
                TableInfo, Transaction, TxnMode):
    _public.__module__ = __name__
del _public
