"""Prints the engine benchmark's goals as ratios, from engine_bench's JSON output.

First the goals for the old engine (engine::DB, the plain benchmark names),
then the same goals for the keyspace engine's default collection (engine::KvDB,
the names with a `Kv` suffix), then the new engine against the old one, per
benchmark: Kv/old of rows/s (higher is better) or of time (lower is better).
Lines whose benchmarks are not in the file (a run with --benchmark_filter)
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

    def goal_rows(kv: str) -> list:
        """The goal lines for one engine; kv is "" (old engine) or "Kv". Each
        entry is a function returning (name, ratio, goal, detail)."""
        def search():
            bw = get("MemoryReadBandwidth/1000000", "bytes_per_second")
            search = get(f"ExactSearch{kv}/1000000", "bytes_per_second")
            return ("exact search 1M x 128, 1 thread, vs memory read bandwidth", search / bw, 0.80,
                    f"{get(f'ExactSearch{kv}/1000000', 'items_per_second') / 1e6:.1f} M rows/s, "
                    f"{search / 1e9:.2f} GB/s vs {bw / 1e9:.2f} GB/s")

        def put():
            put = get(f"PutBatch{kv}/1000", "bytes_per_second")
            wr = get("SequentialWrite/1000", "bytes_per_second")
            return ("put_batch 1000 x 128-d (fsync never) vs sequential write()", put / wr, 0.50,
                    f"{get(f'PutBatch{kv}/1000', 'items_per_second') / 1e3:.0f} k rows/s, "
                    f"{put / 1e6:.0f} MB/s vs {wr / 1e6:.0f} MB/s")

        def fsync():
            f1 = get(f"PutBatchFsync{kv}/1", "items_per_second")
            f1000 = get(f"PutBatchFsync{kv}/1000", "items_per_second")
            return ("fsync always: rows/s at batch 1000 vs batch 1", f1000 / f1, None,
                    f"{f1:.0f} rows/s at batch 1, {f1000:.0f} rows/s at batch 1000")

        def threads():
            t1 = get(f"PutBatchFsyncThreads{kv}/1", "items_per_second")
            t16 = get(f"PutBatchFsyncThreads{kv}/16", "items_per_second")
            return ("fsync always, 1-row batches: 16 writers vs 1 (group commit)", t16 / t1, None,
                    f"{t1:.0f} vs {t16:.0f} rows/s")

        def reopen_get():
            g10k = us(f"ReopenFirstGet{kv}/10000")
            g1m = us(f"ReopenFirstGet{kv}/1000000")
            return ("reopen + first get: 1M rows vs 10k rows (time ratio, lower is better)", g1m / g10k, 2.0,
                    f"{g10k:.0f} us vs {g1m:.0f} us")

        def reopen_search():
            s10k = us(f"ReopenFirstSearch{kv}/10000")
            s1m = us(f"ReopenFirstSearch{kv}/1000000")
            return ("reopen + first exact search: 1M vs 10k (time ratio; exact search reads all rows)", s1m / s10k,
                    None, f"{s10k:.0f} us vs {s1m:.0f} us")

        return [search, put, fsync, threads, reopen_get, reopen_search]

    ok = True

    def print_goals(kv: str) -> None:
        nonlocal ok
        for row in goal_rows(kv):
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

    # The old engine's lines come first and unchanged.
    print_goals("")
    print("\nnew engine (KvDB default collection, the *Kv benchmarks), same goals:")
    print_goals("Kv")

    # Kv/old per benchmark: rows/s where the benchmark reports a rate (higher
    # is better), time per operation where it does not (lower is better).
    # Google Benchmark computes rows/s from CPU time unless the benchmark
    # runs in real time (a /real_time name); for those by CPU time (ExactSearch,
    # PutBatchFsync, whose real time is mostly the fdatasync wait) the ratio
    # by real time follows.
    print("\nnew engine vs old engine (Kv / old):")
    compared = [("ExactSearch/1000000", "rate"), ("PutBatch/1000", "rate")]
    compared += [(f"PutBatchFsync/{b}", "rate") for b in (1, 10, 100, 1000)]
    compared += [(f"PutBatchFsyncThreads/{t}", "rate") for t in (1, 4, 16)]
    compared += [(f"ReopenFirstGet/{r}", "time") for r in (10000, 1000000)]
    compared += [(f"ReopenFirstSearch/{r}", "time") for r in (10000, 1000000)]
    width = max(len(n) for n, _ in compared) + 2
    for name, kind in compared:
        base, arg = name.split("/", 1)
        kv_name = f"{base}Kv/{arg}"
        try:
            if kind == "rate":
                old, new = get(name, "items_per_second"), get(kv_name, "items_per_second")
                by = "real time" if "/real_time" in find(name)["name"] else "CPU time"
                also = ""
                if by == "CPU time":
                    also = f", {us(name) / us(kv_name):.3g} by real time"
                print(f"    {name:<{width}} rows/s  ratio {new / old:.3g} by {by}{also}  (higher is better; "
                      f"Kv {new:,.0f} vs old {old:,.0f} rows/s by {by})")
            else:
                old, new = us(name), us(kv_name)
                print(f"    {name:<{width}} time    ratio {new / old:.3g}  (lower is better; "
                      f"Kv {new:,.0f} us vs old {old:,.0f} us)")
        except KeyError as e:
            print(f"    {name:<{width}} (skipped: no {e.args[0]} in {path})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
