"""Finding and loading libpomai_c.so: the package's own, POMAI_C_LIB, ctypes."""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pomaidb


def run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "POMAI_C_LIB"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_library_path_is_the_packaged_library() -> None:
    path = Path(pomaidb.library_path())
    assert path.name == "libpomai_c.so" and path.is_file()


def test_ctypes_client_calls_the_library() -> None:
    lib = ctypes.CDLL(pomaidb.library_path())
    lib.pomai_version_string.restype = ctypes.c_char_p
    assert lib.pomai_version_string().decode() == pomaidb.__version__
    lib.pomai_abi_version.restype = ctypes.c_uint32
    assert lib.pomai_abi_version() == pomaidb.abi_version()


def test_versions() -> None:
    import alopex

    assert pomaidb.__version__ == pomaidb.version() == importlib.metadata.version("pomai") == alopex.__version__
    assert "__version__" in alopex.__all__
    assert isinstance(pomaidb.abi_version(), int)
    assert isinstance(pomaidb.simd_target(), str) and pomaidb.simd_target()


def test_pomai_c_lib_overrides_the_library(tmp_path: Path) -> None:
    lib = pomaidb.library_path()
    code = (
        "import pomaidb, pomaidb._ffi as f\n"
        "print(pomaidb.library_path())\n"
        "import sys; print('pomaidb._pomai_cffi' in sys.modules)\n"
        f"db = pomaidb.open_db({str(tmp_path / 'db')!r}, dim=2, metric='l2')\n"
        "pomaidb.put_batch(db, [1, 2], [[0, 0], [3, 4]], metadata=[b'a', None])\n"
        "print(pomaidb.search_batch(db, [[3, 3]], topk=2))\n"
        "print(pomaidb.get(db, 1)[1])\n"
        "pomaidb.close(db)\n"
    )
    out = run_python(code, tmp_path, POMAI_C_LIB=lib)
    assert out.returncode == 0, out.stderr
    path, extension_loaded, results, meta = out.stdout.splitlines()
    assert path == os.path.abspath(lib)
    assert extension_loaded == "False"  # ABI mode (dlopen), not the extension
    assert results == "[([2, 1], [-1.0, -18.0])]"
    assert meta == "b'a'"


def test_pomai_c_lib_overrides_the_library_for_alopex(tmp_path: Path) -> None:
    # alopex's per-key calls (_txn_calls.c) call the functions of the library
    # cffi loaded, here the override.
    code = (
        "import sys, alopex\n"
        "from alopex import Database, TxnMode\n"
        f"db = Database.open({str(tmp_path / 'kv')!r})\n"
        "t = db.begin(TxnMode.READ_WRITE); t.put(b'a', b'x' * 5000); t.put(b'b', b'1'); t.commit()\n"
        "t = db.begin()\n"
        "print(len(t.get(b'a')), t.get(b'b'), t.get(b'c'), 'pomaidb._pomai_cffi' in sys.modules)\n"
        "try:\n    t.put(b'a', b'2')\nexcept alopex.AlopexError as e:\n    print(e.code)\n"
        "t.rollback(); db.close()\n"
    )
    out = run_python(code, tmp_path, POMAI_C_LIB=pomaidb.library_path())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["5000 b'1' None False", "READ_ONLY"]


def test_bogus_pomai_c_lib_is_a_clear_import_error(tmp_path: Path) -> None:
    bogus = str(tmp_path / "no-such-libpomai_c.so")
    out = run_python("import pomaidb", tmp_path, POMAI_C_LIB=bogus)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "POMAI_C_LIB" in out.stderr and bogus in out.stderr


def test_import_works_outside_the_repository(tmp_path: Path) -> None:
    out = run_python("import pomaidb, os; print(os.path.dirname(pomaidb.__file__))", tmp_path)
    assert out.returncode == 0, out.stderr
    pkg = Path(out.stdout.strip())
    if (pkg / "_pomai_cffi.py").exists() or not (pkg / "libpomai_c.so").exists():
        return  # an editable install: the binaries live in the build directory
    names = {p.name for p in pkg.iterdir()}
    assert "libpomai_c.so" in names and "py.typed" in names and "_cdef.h" in names
    assert any(n.startswith("_pomai_cffi") and n.endswith(".so") for n in names)
    assert {"pomai.h", "c_types.h"} <= {p.name for p in (pkg / "include" / "pomai").iterdir()}


def test_import_starts_no_subprocess(tmp_path: Path) -> None:
    """Importing either package and asking for the library path starts no
    process (no `ldconfig -p` through ctypes.util.find_library)."""
    code = (
        "import os, subprocess\n"
        "def refuse(*a, **k): raise AssertionError(f'a process was started: {a!r}')\n"
        "subprocess.Popen.__init__ = refuse\n"
        "os.posix_spawn = os.posix_spawnp = os.system = os.execv = os.execve = os.fork = refuse\n"
        "import alopex, pomaidb\n"
        "print(pomaidb.library_path())\n"
    )
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == pomaidb.library_path()


def test_distribution_metadata() -> None:
    meta = importlib.metadata.metadata("pomai")
    assert meta["Name"] == "pomai"
    assert meta["License-Expression"] == "Apache-2.0"
    assert set(meta.get_all("Provides-Extra") or []) >= {"polars", "delta", "arrow", "progress", "all"}
    assert "pip install" in (meta.get_payload() or "")  # the README is the long description
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in meta.get_all("Classifier") or [])
    files = importlib.metadata.files("pomai") or []
    licenses = [f for f in files if f.name == "LICENSE"]
    assert licenses and "Apache License" in licenses[0].read_text()


def test_public_exceptions_name_their_package(tmp_path: Path) -> None:
    import pickle
    import traceback

    import alopex

    with pomaidb.open_db(tmp_path / "db", dim=4) as db:
        with pytest.raises(pomaidb.InvalidArgumentError) as e:
            pomaidb.put_batch(db, [1], np.zeros((1, 3), dtype=np.float32))
    assert traceback.format_exception_only(e.type, e.value)[0].startswith("pomaidb.InvalidArgumentError:")
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is pomaidb.InvalidArgumentError and str(again) == str(e.value)
    for cls in (pomaidb.PomaiDBError, pomaidb.Database, pomaidb.StatusCode):
        assert cls.__module__ == "pomaidb", cls
    for name in alopex.__all__:
        obj = getattr(alopex, name)
        if isinstance(obj, type):
            assert obj.__module__ == "alopex", name
    err = alopex.AlopexError("boom", "IO_ERROR")
    assert traceback.format_exception_only(type(err), err)[0] == "alopex.AlopexError: boom\n"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is alopex.AlopexError and again.code == "IO_ERROR"


def test_c_methods_show_their_parameters() -> None:
    import inspect

    from alopex import Transaction

    assert list(inspect.signature(Transaction.get).parameters) == ["self", "key"]
    assert list(inspect.signature(Transaction.put).parameters) == ["self", "key", "value"]
    assert list(inspect.signature(Transaction.delete).parameters) == ["self", "key"]
    assert list(inspect.signature(Transaction.commit).parameters) == ["self"]
    assert list(inspect.signature(Transaction.rollback).parameters) == ["self"]
    assert "snapshot" in (Transaction.get.__doc__ or "")
