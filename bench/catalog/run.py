"""alopex.Catalog against plain polars, as ratios measured in the same run.

    python bench/catalog/run.py [--rows 1000000] [--repeat 7] [--dir /tmp/x]

- scan:  Catalog.scan_table(...).collect()  vs  pl.scan_parquet(path).collect()
- write: Catalog.write_table(df, ..., delta_mode="overwrite")  vs  df.write_parquet(path)
         (and vs df.write_parquet + fsync, since the catalog's atomic overwrite
         fsyncs the new file and its directory before and after the rename)

Runs alternate between the two sides; the figure is the median of `repeat`
runs each, and the ratio is catalog / polars (1.00 = same time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable, Dict, List

import polars as pl

from alopex import Catalog


def frame(rows: int) -> pl.DataFrame:
    return pl.DataFrame({
        "id": pl.int_range(0, rows, eager=True),
        "value": pl.int_range(0, rows, eager=True).cast(pl.Float64) * 0.5,
        "name": pl.int_range(0, rows, eager=True).cast(pl.String).str.zfill(9),
    })


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(sides: Dict[str, Callable[[], object]], repeat: int) -> Dict[str, float]:
    times: Dict[str, List[float]] = {k: [] for k in sides}
    for fn in sides.values():  # warm-up
        fn()
    for _ in range(repeat):
        for k, fn in sides.items():
            times[k].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def write_fsync(df: pl.DataFrame, path: str) -> None:
    df.write_parquet(path)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="alopex-catalog-bench-")
    os.makedirs(base, exist_ok=True)
    df = frame(args.rows)
    cat_path = os.path.join(base, "catalog.parquet")
    plain_path = os.path.join(base, "plain.parquet")

    Catalog.create_catalog("bench")
    Catalog.create_namespace("bench", "default")
    Catalog.write_table(df, "bench", "default", "t", delta_mode="overwrite",
                        storage_location=cat_path)
    df.write_parquet(plain_path)

    scan = alternate({
        "catalog": lambda: Catalog.scan_table("bench", "default", "t").collect(),
        "polars": lambda: pl.scan_parquet(cat_path).collect(),
    }, args.repeat)
    write = alternate({
        "catalog": lambda: Catalog.write_table(df, "bench", "default", "t",
                                               delta_mode="overwrite"),
        "polars": lambda: df.write_parquet(plain_path),
        "polars+fsync": lambda: write_fsync(df, plain_path),
    }, args.repeat)

    print(f"rows={args.rows} repeat={args.repeat} dir={base} polars={pl.__version__}")
    print(f"scan  catalog {scan['catalog'] * 1e3:8.1f} ms  polars {scan['polars'] * 1e3:8.1f} ms"
          f"  ratio {scan['catalog'] / scan['polars']:.3f}")
    print(f"write catalog {write['catalog'] * 1e3:8.1f} ms  polars {write['polars'] * 1e3:8.1f} ms"
          f"  ratio {write['catalog'] / write['polars']:.3f}"
          f"  (polars+fsync {write['polars+fsync'] * 1e3:.1f} ms,"
          f" ratio {write['catalog'] / write['polars+fsync']:.3f})")


if __name__ == "__main__":
    main()
