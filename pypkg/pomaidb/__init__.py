"""pomaidb: an embedded vector store (Python face of the pomai C ABI).

    import pomaidb
    db = pomaidb.open_db("/tmp/vec_db", dim=128, shards=1, metric="ip")
    pomaidb.put_batch(db, ids=[1, 2], vectors=[[0.1] * 128, [0.2] * 128])
    pomaidb.freeze(db)
    for ids, scores in pomaidb.search_batch(db, [[0.15] * 128], topk=5):
        print(ids, scores)
    pomaidb.close(db)

The package loads the libpomai_c.so installed inside it; the environment
variable POMAI_C_LIB names another build of the library to load instead.
"""

from ._api import (
    Database,
    InvalidArgumentError,
    PomaiDBError,
    Scan,
    StatusCode,
    abi_version,
    close,
    count,
    delete,
    exists,
    freeze,
    compact,
    stats,
    verify,
    get,
    library_path,
    open_db,
    put_batch,
    search,
    search_batch,
    scan,
    schema,
    simd_target,
    update_attributes,
    version,
)

__version__: str = version()

# The public classes print, and pickle, under the package's own name
# (`pomaidb.InvalidArgumentError`), not the private module defining them.
for _public in (Database, InvalidArgumentError, PomaiDBError, Scan, StatusCode):
    _public.__module__ = __name__
del _public

__all__ = [
    "Database",
    "InvalidArgumentError",
    "PomaiDBError",
    "Scan",
    "StatusCode",
    "__version__",
    "abi_version",
    "close",
    "count",
    "delete",
    "exists",
    "freeze",
    "compact",
    "stats",
    "verify",
    "get",
    "library_path",
    "open_db",
    "put_batch",
    "search",
    "search_batch",
    "scan",
    "schema",
    "simd_target",
    "update_attributes",
    "version",
]
