"""Fixtures of the pomai-inspect tests: the tool under test and real databases.

The tool is the executable named by the environment variable POMAI_INSPECT
(e.g. build-test/tools/pomai-inspect from a Meson build), else the one
installed inside the `pomaidb` package. Databases are made with `pomaidb`
(u64 rows: db_dir) and with `alopex` (keys, an index: alopex_dir); any_dir is
each of the two in turn.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from inspect_support import make_alopex_db, make_db
from pomaidb import _inspect


class Run:
    """Result of one run of the tool."""

    def __init__(self, proc: "subprocess.CompletedProcess[str]") -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def json(self) -> Dict[str, Any]:
        return json.loads(self.out)


@pytest.fixture(scope="session")
def inspect_tool() -> Callable[..., Run]:
    """inspect_tool(*args): runs pomai-inspect with args (paths may be Path)."""
    exe = _inspect.binary_path()
    if not exe.is_file():
        pytest.fail(f"pomai-inspect not found at {exe}: set POMAI_INSPECT or install the package")

    def run(*args: Any) -> Run:
        proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120)
        return Run(proc)

    return run


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    path = tmp_path / "db"
    make_db(path)
    return path


@pytest.fixture
def alopex_dir(tmp_path: Path) -> Path:
    path = tmp_path / "alopex"
    make_alopex_db(path)
    return path


@pytest.fixture(params=["db_dir", "alopex_dir"])
def any_dir(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)
