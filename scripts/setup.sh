#!/usr/bin/env bash
# Installs what building and testing pomai needs on Debian 12: the system
# packages (apt) and a virtual environment at $POMAI_VENV (default .venv) with
# the Python build and test tools; then builds the wheel
# (scripts/build-wheel.sh: dist/, repaired by auditwheel) and installs it into
# that environment. With --tools-only it stops before the wheel.
# Idempotent; safe to run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${POMAI_VENV:-$root/.venv}"

apt_packages=(build-essential pkg-config clang libclang-rt-14-dev libhwy-dev libgtest-dev libbenchmark-dev
  python3-dev python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "== apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating virtual environment $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$root/requirements-dev.txt"
[ "${1:-}" = "--tools-only" ] && exit 0

# The system packages above are all the build needs: Meson must not fall back
# to downloading subprojects/ here.
POMAI_VENV="$venv" POMAI_WRAP_MODE=nodownload bash "$root/scripts/build-wheel.sh"
wheel="$(ls -t "$root"/dist/pomai-*-manylinux*.whl | head -n 1)"
echo "== pip install $wheel"
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
"$venv/bin/python" -m pip install -q "$wheel"  # its dependencies, when missing
