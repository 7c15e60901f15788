"""Loads the pomai C library for `alopex`: `ffi` and `lib`.

Both Python faces share one cffi extension module, `pomaidb._pomai_cffi`
(API mode, built from `include/pomai/pomai.h`, linking the `libpomai_c.so`
installed beside it), and honour the same `POMAI_C_LIB` override (an
ABI-mode FFI over `_cdef.h`, the declarations the extension was generated
from). Both modes release the GIL around every C call.

`alopex` must import without numpy (only its vector calls need numpy), while
the `pomaidb` package imports numpy in its `__init__`. So this module loads
the extension file directly from the `pomaidb` package directory without
running `pomaidb/__init__.py`, and registers it under its own name in
`sys.modules`, so a later `import pomaidb` reuses the very same module.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, List, Tuple

__all__ = ["ffi", "lib", "load_pomaidb_module"]

_EXT_NAME = "pomaidb._pomai_cffi"

# The functions alopex calls; an overriding library must export them all.
REQUIRED = (
    "pomai_status_code", "pomai_status_message", "pomai_status_free", "pomai_version_string", "pomai_close",
    "pomai_db_options_ex_init", "pomai_db_open_ex", "pomai_db_flush", "pomai_db_memory_usage",
    "pomai_txn_begin", "pomai_txn_get", "pomai_txn_put", "pomai_txn_delete",
    "pomai_txn_commit", "pomai_txn_rollback", "pomai_txn_scan", "pomai_kv_scan_batch_free",
    "pomai_txn_upsert_vector", "pomai_txn_get_vector", "pomai_txn_search_similar",
    "pomai_kv_hits_free",
    "pomai_index_create", "pomai_index_drop", "pomai_index_stats", "pomai_index_search_where",
    "pomai_index_prepare", "pomai_txn_index_upsert_attrs", "pomai_txn_index_delete", "pomai_verify", "pomai_free",
)


def _pomaidb_dirs() -> List[Path]:
    """The directories of the installed `pomaidb` package, found without
    importing it (an editable install may list the build directory too)."""
    spec = importlib.util.find_spec("pomaidb")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _find_file(dirs: List[Path], pattern: str) -> Path | None:
    for d in dirs:
        for c in sorted(d.glob(pattern)):
            if c.is_file():
                return c
    return None


def _load_extension() -> Tuple[Any, Any]:
    module = sys.modules.get(_EXT_NAME)
    if module is None:
        suffixes = importlib.machinery.EXTENSION_SUFFIXES
        path = None
        dirs = _pomaidb_dirs()
        for suffix in suffixes:
            path = _find_file(dirs, "_pomai_cffi" + suffix)
            if path is not None:
                break
        if path is None:
            # An install layout this module does not know (e.g. a custom
            # import hook): fall back to the pomaidb loader, which needs numpy.
            from pomaidb._ffi import ffi as pffi, lib as plib

            return pffi, plib
        module = _exec_pomaidb_file(_EXT_NAME, path)
    return module.ffi, module.lib


def _exec_pomaidb_file(full_name: str, path: Path) -> Any:
    """Runs the file `path` of the pomaidb package (a .py file or an
    extension) as the module `full_name`, without `pomaidb/__init__.py`, and
    registers it in sys.modules so a later `import pomaidb` reuses it."""
    spec = importlib.util.spec_from_file_location(full_name, str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[full_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full_name]
        raise
    return module


def _load_override(path: str) -> Tuple[Any, Any]:
    import cffi  # type: ignore[import-untyped,unused-ignore]

    cdef_path = _find_file(_pomaidb_dirs(), "_cdef.h")
    if cdef_path is None:
        raise ImportError("alopex: cannot find pomaidb/_cdef.h, needed to load POMAI_C_LIB")
    abi_ffi = cffi.FFI()
    abi_ffi.cdef(cdef_path.read_text(encoding="utf-8"))
    try:
        abi_lib = abi_ffi.dlopen(path)
    except OSError as e:
        raise ImportError(f"alopex: cannot load the pomai C library POMAI_C_LIB={path!r}: {e}") from e
    return abi_ffi, abi_lib


def missing_symbols(library: Any) -> List[str]:
    """The REQUIRED functions `library` lacks (empty when it has them all)."""
    missing = []
    for name in REQUIRED:
        try:
            getattr(library, name)
        except AttributeError:
            missing.append(name)
    return missing


def load_pomaidb_module(name: str) -> Any:
    """The numpy-free module `pomaidb.<name>` (a .py file of the pomaidb
    package), loaded from its file without running `pomaidb/__init__.py`
    and registered under its own name, so `pomaidb` reuses it later."""
    full = "pomaidb." + name
    module = sys.modules.get(full)
    if module is None:
        path = _find_file(_pomaidb_dirs(), name + ".py")
        if path is None:
            raise ImportError(f"alopex: cannot find {full} ({name}.py in the pomaidb package)")
        module = _exec_pomaidb_file(full, path)
    return module


_override = os.environ.get("POMAI_C_LIB")
if _override:
    ffi, lib = _load_override(_override)
else:
    ffi, lib = _load_extension()
