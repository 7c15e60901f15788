"""Loads the pomai C library: `ffi`, `lib` and the path of the library in use.

By default the API-mode extension `pomaidb._pomai_cffi`, which links the
`libpomai_c.so` installed next to it (rpath `$ORIGIN`). When the environment
variable `POMAI_C_LIB` names a library, an ABI-mode FFI is built from
`_cdef.h` (the same declarations the extension was generated from, shipped
beside it) and that library is opened with `ffi.dlopen` instead; the extension
itself is then never imported, so only one copy of the library is loaded.
Both modes release the GIL around every C call.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from typing import Any, Optional

__all__ = ["ffi", "lib", "LIBRARY_PATH"]

# The functions this package calls; an overriding library must export them all.
_REQUIRED = (
    "pomai_status_code", "pomai_status_message", "pomai_status_free",
    "pomai_abi_version", "pomai_version_string", "pomai_simd_target",
    "pomai_options_init", "pomai_open", "pomai_close",
    "pomai_put_array", "pomai_put_batch", "pomai_delete_batch", "pomai_freeze",
    "pomai_exists", "pomai_get", "pomai_record_free", "pomai_count",
    "pomai_search_array", "pomai_compact", "pomai_stats_json", "pomai_free",
    "pomai_freeze_with_progress", "pomai_compact_with_progress", "pomai_verify",
)


def _find_cdef() -> Path:
    """`_cdef.h` sits beside the extension (in the package, or in the build
    directory of an editable install)."""
    spec = importlib.util.find_spec("pomaidb._pomai_cffi")
    candidates = []
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).with_name("_cdef.h"))
    candidates.append(Path(__file__).with_name("_cdef.h"))
    for c in candidates:
        if c.is_file():
            return c
    raise ImportError(
        "pomaidb: cannot find _cdef.h (looked in "
        + ", ".join(str(c.parent) for c in candidates)
        + "); it is needed to load the library named by POMAI_C_LIB"
    )


def _load_override(path: str) -> tuple[Any, Any, str]:
    import cffi  # type: ignore[import-untyped,unused-ignore]

    cdef_path = _find_cdef()
    abi_ffi = cffi.FFI()
    abi_ffi.cdef(cdef_path.read_text(encoding="utf-8"))
    try:
        abi_lib = abi_ffi.dlopen(path)
    except OSError as e:
        raise ImportError(f"pomaidb: cannot load the pomai C library POMAI_C_LIB={path!r}: {e}") from e
    missing = [name for name in _REQUIRED if not _has_symbol(abi_lib, name)]
    if missing:
        raise ImportError(
            f"pomaidb: the library POMAI_C_LIB={path!r} lacks {', '.join(missing)}; "
            "is it a libpomai_c built from this version?"
        )
    return abi_ffi, abi_lib, os.path.abspath(path)


def _has_symbol(abi_lib: Any, name: str) -> bool:
    try:
        getattr(abi_lib, name)
    except AttributeError:
        return False
    return True


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def _loaded_library_path(name: str = "libpomai_c.so") -> Optional[str]:
    """The file of the already loaded library `name` (dlopen RTLD_NOLOAD
    finds it by soname; dladdr(3) on one of its functions gives its path).
    dladdr is looked up in the process's own namespace (libc, or libdl on
    glibc before 2.34, which the interpreter links): no `ldconfig` or
    compiler subprocess, as `ctypes.util.find_library` would start."""
    try:
        handle = ctypes.CDLL(name, mode=getattr(os, "RTLD_NOLOAD", 4) | getattr(os, "RTLD_LAZY", 1))
        addr = ctypes.cast(handle.pomai_version_string, ctypes.c_void_p)
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        if dladdr(addr, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(os.fsdecode(info.dli_fname))
    except (OSError, AttributeError):  # not loaded under that name, or no dladdr here
        pass
    return None


_override = os.environ.get("POMAI_C_LIB")
if _override:
    ffi, lib, LIBRARY_PATH = _load_override(_override)
else:
    from pomaidb._pomai_cffi import ffi, lib  # type: ignore[import-not-found,no-redef]

    LIBRARY_PATH = _loaded_library_path() or str(
        Path(__file__).with_name("libpomai_c.so")
    )
