"""`alopex._alopex.catalog`, as in AlopexDB: the Catalog, its info classes,
and `_resolve_credentials(storage_location, credential_provider=None,
storage_options=None)`, the storage options scan_table and write_table hand
to polars."""

from .._catalog import Catalog, CatalogInfo, ColumnInfo, NamespaceInfo, TableInfo
from .._catalog import _resolve_credentials

__all__ = ["Catalog", "CatalogInfo", "ColumnInfo", "NamespaceInfo", "TableInfo"]
