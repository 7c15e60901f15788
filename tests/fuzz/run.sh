#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, -Dfuzz=true) in build-fuzz,
# replays each target's checked-in seed corpus, then fuzzes each target for
# SECONDS (default 60). New inputs go to build-fuzz/fuzz-corpus/<target>/
# (the checked-in seeds are never modified); crashes to
# build-fuzz/fuzz-artifacts/. Prints the executions and coverage per target.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     targets: wal_fuzz segment_fuzz graph_fuzz manifest_fuzz capi_fuzz txn_capi_fuzz faces_fuzz filter_fuzz
#
# Needs clang (Debian: apt-get install clang) and meson/ninja on PATH (or in
# $POMAI_VENV, default .venv). POMAI_FUZZ_JOBS sets the build's parallelism,
# POMAI_FUZZ_PARALLEL how many targets fuzz at once (default 1),
# POMAI_FUZZ_BUILD the build directory (any clang build with -Dfuzz=true).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${POMAI_VENV:-$root/.venv}"
[ -d "$venv/bin" ] && export PATH="$venv/bin:$PATH"
secs="${1:-60}"
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wal_fuzz segment_fuzz graph_fuzz manifest_fuzz capi_fuzz txn_capi_fuzz faces_fuzz filter_fuzz)
build="${POMAI_FUZZ_BUILD:-$root/build-fuzz}"

command -v clang++ >/dev/null || { echo "run.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
if [ ! -f "$build/build.ninja" ]; then
  # b_lundef=false: libpomai_c.so and the cffi extension link without the
  # sanitizer runtime (executables carry it).
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true -Dbuildtype=debugoptimized -Db_lundef=false \
    --wrap-mode=nodownload
fi
ninja -C "$build" -j"${POMAI_FUZZ_JOBS:-2}" "${targets[@]/#/tests/fuzz/}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts" "$build/fuzz-logs"
for t in "${targets[@]}"; do
  seeds="$root/tests/fuzz/corpus/$t"
  echo "== $t: replaying $(ls "$seeds" | wc -l) seeds"
  "$build/tests/fuzz/$t" -runs=0 "$seeds" 2>&1 | tail -2
done

# Fuzzes one target for $secs seconds; its log is build/fuzz-logs/<target>.log.
fuzz_one() {
  local t="$1" work="$build/fuzz-corpus/$1" log="$build/fuzz-logs/$1.log"
  mkdir -p "$work"
  "$build/tests/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts/$t-" -timeout=25 \
    -rss_limit_mb=4096 "$work" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1
}
# POMAI_FUZZ_PARALLEL targets at a time (default 1).
parallel="${POMAI_FUZZ_PARALLEL:-1}"
failed=()
for ((i = 0; i < ${#targets[@]}; i += parallel)); do
  batch=("${targets[@]:i:parallel}")
  echo "== fuzzing ${batch[*]} for ${secs}s"
  pids=()
  for t in "${batch[@]}"; do
    fuzz_one "$t" &
    pids+=($!)
  done
  for j in "${!batch[@]}"; do
    wait "${pids[$j]}" || failed+=("${batch[$j]}")
  done
done
for t in "${failed[@]}"; do
  tail -60 "$build/fuzz-logs/$t.log"
  echo "== $t FAILED (log: $build/fuzz-logs/$t.log, input in $artifacts)"
done
[ ${#failed[@]} -eq 0 ] || exit 1

echo "== summary (${secs}s per target)"
for t in "${targets[@]}"; do
  log="$build/fuzz-logs/$t.log"
  line="$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1)"
  execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
  printf '%-14s execs %-10s %s\n' "$t" "$execs" "$(echo "$line" | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*')"
done
