#!/usr/bin/env bash
# Sets up (scripts/setup.sh: builds the wheel and installs it) and runs every
# test: the C++ suites (GoogleTest, through meson test) in a release build and
# in an ASan+UBSan build (clang), the libFuzzer targets from that build
# (corpus replay, then 30 s each), the concurrency suite under
# ThreadSanitizer, then the Python suite (pytest) against the installed
# package, the pomai-inspect tests with the tool of each build and the
# installed console script, and the wheel in a fresh environment without the
# system's libhwy.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${POMAI_VENV:-$root/.venv}"
bash "$root/scripts/setup.sh"
export PATH="$venv/bin:$PATH"
cd "$root"

echo "== C++ tests (release)"
[ -f build-test/build.ninja ] || meson setup build-test -Dtests=true -Dbuildtype=release --wrap-mode=nodownload
ninja -C build-test
POMAI_CRASH_CYCLES="${POMAI_CRASH_CYCLES:-50}" meson test -C build-test --print-errorlogs --num-processes 2

echo "== C++ tests (ASan + UBSan, clang) and the libFuzzer targets (same build)"
# -Dfuzz=true instruments every object for ASan+UBSan and for libFuzzer's
# coverage, so one clang build runs the GoogleTest suites under the
# sanitizers and fuzzes the file readers and the C ABI.
[ -f build-asan/build.ninja ] || CC=clang CXX=clang++ meson setup build-asan -Dtests=true -Dfuzz=true \
  -Dbuildtype=debugoptimized -Db_lundef=false --wrap-mode=nodownload
ninja -C build-asan
# The recall tests (large graph builds, no input of their own to check)
# already ran in the release build; the sanitizers run everything else, the
# crash- and fault-point suites on a third of their points (the release build
# ran all of them).
GTEST_FILTER='-HnswRecall.*AtLeast95Percent:HnswRecall.GrowsWithEf:HnswRecall.Float32AndSq8WalksBothReachTheRecall:HnswReuse.MergedGraphRecallMatchesAFreshBuild:HnswReuse.RepairKeepsTheBaseGraphsRecallOnHardQueries:HnswParallel.FourThreadBuildKeepsRecall:HnswHardQueries.RecallMatchesHnswlib:CollectionRowsGraph.ClusteredRecallAtDefaultSettingsIsAtLeast095:KvIndex.RecallAtTenOnAClustered20kBy64SetAtDefaults' \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 POMAI_CRASH_CYCLES=10 POMAI_CRASH_POINTS_SCALE=0.35 \
  meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3
# Replays every checked-in corpus, then fuzzes each target for
# POMAI_FUZZ_SECONDS (default 30: CI stays under 30 minutes; tests/fuzz/run.sh
# runs longer by hand), two targets at a time.
POMAI_FUZZ_BUILD="$root/build-asan" POMAI_FUZZ_PARALLEL=2 bash tests/fuzz/run.sh "${POMAI_FUZZ_SECONDS:-30}"

echo "== Concurrency tests (ThreadSanitizer): 8 readers, 2 writers, freezes, compactions, merges"
[ -f build-tsan/build.ninja ] || meson setup build-tsan -Dtests=true -Dbuildtype=debugoptimized \
  -Db_sanitize=thread -Db_lundef=false --wrap-mode=nodownload
ninja -C build-tsan tests/engine/concurrency_test tests/util/util_test tests/capi/capi_test
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
POMAI_CONCURRENCY_ROUNDS=100 build-tsan/tests/engine/concurrency_test
build-tsan/tests/util/util_test --gtest_filter='ThreadPool*'
build-tsan/tests/capi/capi_test --gtest_filter='*Race*'  # pomai_close racing searches, both faces
unset TSAN_OPTIONS

echo "== Python tests"
cd /tmp  # import the installed package, not the source tree
python -m pytest -q -p no:cacheprovider "$root/tests/python"

echo "== pomai-inspect tests (ASan build, installed package)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  POMAI_INSPECT="$root/build-asan/tools/pomai-inspect" python -m pytest -q -p no:cacheprovider "$root/tests/tools"
python -m pytest -q -p no:cacheprovider "$root/tests/tools"

echo "== The wheel, installed in a fresh venv, with the system's libhwy hidden"
bash "$root/tests/wheel/run.sh"
