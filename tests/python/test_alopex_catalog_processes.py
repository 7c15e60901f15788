"""alopex.Catalog across processes: a persisted catalog is reloaded by the
next process, a write killed mid-way leaves the old data readable, and
without polars the DDL still works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

pytest.importorskip("polars")
pq = pytest.importorskip("pyarrow.parquet")


def run(script: str, env_extra: Optional[Dict[str, str]] = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ALOPEX_CATALOG_PATH"}
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


WRITER = r'''
import polars as pl
from alopex import Catalog, ColumnInfo
Catalog.create_catalog("main", comment="persisted")
Catalog.create_namespace("main", "default")
Catalog.create_namespace("main", "gone")
Catalog.create_table("main", "default", "users", [ColumnInfo("id", "BIGINT", 0, False)],
                     {loc!r}, primary_key="id", comment="people")
Catalog.write_table(pl.DataFrame({{"id": [1, 2]}}), "main", "default", "users",
                    delta_mode="overwrite")
Catalog.delete_namespace("main", "gone")
print("written")
'''

READER = r'''
from alopex import Catalog
print([c.name for c in Catalog.list_catalogs()], Catalog.get_catalog("main").comment)
print([n.name for n in Catalog.list_namespaces("main")])
info = Catalog.get_table_info("main", "default", "users")
print(info.storage_location, info.primary_key, info.comment, info.columns[0].type_name)
print(Catalog.scan_table("main", "default", "users").collect()["id"].to_list())
'''


def test_a_persisted_catalog_is_reloaded_by_the_next_process(tmp_path: Path) -> None:
    cat_dir = tmp_path / "catalog"
    loc = str(tmp_path / "data" / "users.parquet")
    env = {"ALOPEX_CATALOG_PATH": str(cat_dir)}
    assert run(WRITER.format(loc=loc), env).strip() == "written"
    out = run(READER, env).splitlines()
    assert out == ["['main'] persisted", "['default']", f"{loc} ['id'] people BIGINT", "[1, 2]"]
    # The catalog wrote only inside its own directory (and the data where it was told).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog", "data"]
    # Without the variable a process starts from an empty in-memory catalog.
    assert run("from alopex import Catalog; print(Catalog.list_catalogs())").strip() == "[]"


KILLED_WRITER = r'''
import sys, time
import polars as pl
from alopex import Catalog, _catalog
Catalog.create_catalog("main")
Catalog.create_namespace("main", "default")
loc = sys.argv[1]
Catalog.write_table(pl.DataFrame({"id": [1, 2, 3]}), "main", "default", "t",
                    delta_mode="overwrite", storage_location=loc)
original = _catalog._replace_file
def paused(tmp, target):
    print("temp written", flush=True)
    time.sleep(60)
    original(tmp, target)
_catalog._replace_file = paused
Catalog.write_table(pl.DataFrame({"id": list(range(1000))}), "main", "default", "t",
                    delta_mode=sys.argv[2], primary_key="id")
'''


@pytest.mark.parametrize("mode", ["overwrite", "append", "merge"])
def test_a_write_killed_mid_way_leaves_the_old_data_readable(tmp_path: Path, mode: str) -> None:
    loc = tmp_path / "t.parquet"
    env = {k: v for k, v in os.environ.items() if k != "ALOPEX_CATALOG_PATH"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(loc), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "temp written", proc.stderr.read() if proc.stderr else ""
        # The new contents are complete on disk, next to the target, but not yet renamed.
        temps = [p for p in tmp_path.iterdir() if p.name != "t.parquet"]
        assert len(temps) == 1 and temps[0].name.startswith(".t.parquet.tmp-")
        assert pq.read_table(str(temps[0])).num_rows == (1000 if mode != "append" else 1003)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert pq.read_table(str(loc)).to_pylist() == [{"id": 1}, {"id": 2}, {"id": 3}]


NO_POLARS = r'''
import sys
sys.modules["polars"] = None  # `import polars` now raises ImportError
from alopex import AlopexError, Catalog, ColumnInfo
Catalog.create_catalog("main")
Catalog.create_namespace("main", "default")
Catalog.create_table("main", "default", "t", [ColumnInfo("id", "BIGINT")], "/tmp/x.parquet")
assert [t.name for t in Catalog.list_tables("main", "default")] == ["t"]
for name, call in {
    "write_table": lambda: Catalog.write_table(object(), "main", "default", "t",
                                               delta_mode="overwrite"),
    "scan_table": lambda: Catalog.scan_table("main", "default", "t"),
}.items():
    try:
        call()
    except AlopexError as e:
        assert "pip install 'pomai[polars]'" in str(e), (name, str(e))
        print(name, "ok")
    else:
        raise SystemExit(name + " did not raise")
Catalog.delete_catalog("main")
assert Catalog.list_catalogs() == []
'''


def test_without_polars_ddl_works_and_data_calls_say_how_to_install_it() -> None:
    assert run(NO_POLARS).split() == ["write_table", "ok", "scan_table", "ok"]
