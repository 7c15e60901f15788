"""alopex.Catalog overhead against raw polars, at AlopexDB's own thresholds.

    python bench/catalog/overhead.py [--rows 100000] [--rounds 7] [--dir /tmp/x]

AlopexDB's tests/benchmarks/test_performance.py requires, for 100k rows of
(id Int64, value Float64):

- read:  Catalog.scan_table(...).collect()  within 5%  of pl.scan_parquet(path).collect()
- write: Catalog.write_table(df, ..., delta_mode="overwrite")  within 30%  of
         df.write_parquet(path)  (the same path: the table's own file)

each side timed as the mean of 5 calls. One such measurement is very
sensitive to a loaded machine, so this script repeats it `rounds` times,
alternating which side goes first, and reports every round's ratio
(catalog / polars, 1.00 = same time) and their median.

AlopexDB's write is df.write_parquet on the table's file, in place, with no
sync; ours is durable and atomic, which no code can be without two waits
for the disk (the new file's data, then the rename). So the write is also
compared ("durable") with the least polars code that is: write a temporary
file, fdatasync it, rename it over the old one, fsync the directory; and
("durable, snappy") the same with the codec the catalog writes (snappy, as
Spark and Delta Lake do; polars' own default is zstd), which leaves only
the catalog's own cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from typing import Callable, List, Optional

import polars as pl

from alopex import Catalog, ColumnInfo

READ_LIMIT = 1.05
WRITE_LIMIT = 1.30


def mean_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """Mean wall time of `repeats` calls, in seconds (AlopexDB's _mean_time)."""
    total = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        total += time.perf_counter() - t0
    return total / repeats


def ratios(catalog: Callable[[], object], polars: Callable[[], object],
           rounds: int) -> List[float]:
    catalog()  # warm-up, as pytest-benchmark's warmup round
    polars()
    out = []
    for i in range(rounds):
        if i % 2 == 0:
            direct = mean_time(polars)
            wrapped = mean_time(catalog)
        else:
            wrapped = mean_time(catalog)
            direct = mean_time(polars)
        out.append(wrapped / direct)
    return out


def durable_write(df: pl.DataFrame, path: str, compression: str = "zstd") -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    df.write_parquet(tmp, compression=compression)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def report(name: str, values: List[float], limit: Optional[float]) -> None:
    med = statistics.median(values)
    rounds = " ".join(f"{v:.3f}" for v in values)
    verdict = "" if limit is None else f" (limit {limit:.2f}, {'ok' if med < limit else 'OVER'})"
    print(f"{name:21s} median {med:.3f}{verdict}  rounds: {rounds}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", default=None, help="where the Parquet files go (default: a temp dir)")
    args = ap.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="alopex-catalog-overhead-")
    os.makedirs(base, exist_ok=True)
    df = pl.DataFrame({"id": list(range(args.rows)),
                       "value": [float(i) for i in range(args.rows)]})
    read_path = os.path.join(base, "read.parquet")
    write_path = os.path.join(base, "write.parquet")
    df.write_parquet(read_path)

    Catalog.create_catalog("bench")
    Catalog.create_namespace("bench", "default")
    Catalog.create_table("bench", "default", "r",
                         [ColumnInfo("id", "INTEGER", 0, False),
                          ColumnInfo("value", "DOUBLE", 1, False)], read_path)
    Catalog.write_table(df, "bench", "default", "w", delta_mode="append",
                        storage_location=write_path)

    read = ratios(lambda: Catalog.scan_table("bench", "default", "r").collect(),
                  lambda: pl.scan_parquet(read_path).collect(), args.rounds)
    write = ratios(lambda: Catalog.write_table(df, "bench", "default", "w",
                                               delta_mode="overwrite"),
                   lambda: df.write_parquet(write_path), args.rounds)
    durable_path = os.path.join(base, "durable.parquet")
    durable = ratios(lambda: Catalog.write_table(df, "bench", "default", "w",
                                                 delta_mode="overwrite"),
                     lambda: durable_write(df, durable_path), args.rounds)

    same_codec = ratios(lambda: Catalog.write_table(df, "bench", "default", "w",
                                                    delta_mode="overwrite"),
                        lambda: durable_write(df, durable_path, "snappy"), args.rounds)

    print(f"rows={args.rows} rounds={args.rounds} (each: mean of 5 per side) dir={base} "
          f"polars={pl.__version__} load={os.getloadavg()[0]:.1f}")
    report("read", read, READ_LIMIT)
    report("write", write, WRITE_LIMIT)
    report("write/durable", durable, None)
    report("write/durable, snappy", same_codec, None)


if __name__ == "__main__":
    main()
