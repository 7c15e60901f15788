"""Prints the engine benchmark's goals as ratios, from engine_bench's JSON output.

Each goal of bench/engine_bench.cc (the keyspace engine's default collection)
as the ratio it is judged by. Lines whose benchmarks are not in the file (a run with --benchmark_filter)
are skipped with a note. The exit status is 1 when a goal present is not met.

Usage: python3 bench/engine_ratios.py results.json
"""
import json
import sys

TIME_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def main(path: str) -> int:
    with open(path) as f:
        data = json.load(f)
    by_name = {b["name"]: b for b in data["benchmarks"] if b.get("run_type", "iteration") == "iteration"}
    # Benchmarks run with repetitions report aggregates only: take their median.
    by_name.update({b["run_name"]: b for b in data["benchmarks"]
                    if b.get("run_type") == "aggregate" and b.get("aggregate_name") == "median"})

    def find(name: str) -> dict:
        for n, b in by_name.items():
            if n.split("/min_time")[0].split("/real_time")[0].split("/repeats")[0] == name:
                return b
        raise KeyError(name)

    def get(name: str, key: str) -> float:
        return float(find(name)[key])

    def us(name: str) -> float:
        """Real time per iteration in microseconds, whatever the benchmark's unit."""
        b = find(name)
        return float(b["real_time"]) * TIME_UNIT_SECONDS[b.get("time_unit", "ns")] / 1e-6

    def goal_rows() -> list:
        """The goal lines: each a function returning (name, ratio, goal, detail)."""
        def search():
            bw = get("MemoryReadBandwidth/1000000", "bytes_per_second")
            search = get("ExactSearch/1000000", "bytes_per_second")
            return ("exact search 1M x 128, 1 thread, vs memory read bandwidth", search / bw, 0.80,
                    f"{get('ExactSearch/1000000', 'items_per_second') / 1e6:.1f} M rows/s, "
                    f"{search / 1e9:.2f} GB/s vs {bw / 1e9:.2f} GB/s")

        def put():
            put = get("PutBatch/1000", "bytes_per_second")
            wr = get("SequentialWrite/1000", "bytes_per_second")
            return ("put_batch 1000 x 128-d (fsync never) vs sequential write()", put / wr, 0.50,
                    f"{get('PutBatch/1000', 'items_per_second') / 1e3:.0f} k rows/s, "
                    f"{put / 1e6:.0f} MB/s vs {wr / 1e6:.0f} MB/s")

        def fsync():
            f1 = get("PutBatchFsync/1", "items_per_second")
            f1000 = get("PutBatchFsync/1000", "items_per_second")
            return ("fsync always: rows/s at batch 1000 vs batch 1", f1000 / f1, None,
                    f"{f1:.0f} rows/s at batch 1, {f1000:.0f} rows/s at batch 1000")

        def threads():
            t1 = get("PutBatchFsyncThreads/1", "items_per_second")
            t16 = get("PutBatchFsyncThreads/16", "items_per_second")
            return ("fsync always, 1-row batches: 16 writers vs 1 (group commit)", t16 / t1, None,
                    f"{t1:.0f} vs {t16:.0f} rows/s")

        def reopen_get():
            g10k = us("ReopenFirstGet/10000")
            g1m = us("ReopenFirstGet/1000000")
            return ("reopen + first get: 1M rows vs 10k rows (time ratio, lower is better)", g1m / g10k, 2.0,
                    f"{g10k:.0f} us vs {g1m:.0f} us")

        def reopen_search():
            s10k = us("ReopenFirstSearch/10000")
            s1m = us("ReopenFirstSearch/1000000")
            return ("reopen + first exact search: 1M vs 10k (time ratio; exact search reads all rows)", s1m / s10k,
                    None, f"{s10k:.0f} us vs {s1m:.0f} us")

        return [search, put, fsync, threads, reopen_get, reopen_search]

    ok = True

    for row in goal_rows():
        try:
            name, ratio, goal, detail = row()
        except KeyError as e:
            print(f"(skipped: no {e.args[0]} in {path})")
            continue
        verdict = ""
        if goal is not None:
            met = ratio <= goal if "lower is better" in name else ratio >= goal
            ok = ok and met
            verdict = f"goal {'<=' if 'lower is better' in name else '>='} {goal:.2f}: {'met' if met else 'NOT met'}"
        print(f"{name}\n    ratio {ratio:.2f}  ({detail})  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
