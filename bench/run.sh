#!/usr/bin/env bash
# Builds the benchmarks (release, no -march=native) and runs them, printing the
# ratios each issue asks for. Usage: bash bench/run.sh [engine|simd|all]
# `engine` runs the engine benchmarks (DB's default collection) and prints
# their goals as ratios (bench/engine_ratios.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build="$root/build-bench"
what="${1:-all}"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" -Dbenchmarks=true -Dbuildtype=release --wrap-mode=nodownload
fi
ninja -C "$build"
mkdir -p "$here/results"
if [ "$what" = all ] || [ "$what" = simd ]; then
  "$build/bench/simd_kernels_bench" --benchmark_counters_tabular=true \
    --benchmark_out="$here/results/simd.json" --benchmark_out_format=json
fi
if [ "$what" = all ] || [ "$what" = engine ]; then
  "$build/bench/engine_bench" --benchmark_counters_tabular=true \
    --benchmark_out="$here/results/engine.json" --benchmark_out_format=json
  python3 "$here/engine_ratios.py" "$here/results/engine.json"
fi
