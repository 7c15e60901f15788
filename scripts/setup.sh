#!/usr/bin/env bash
# Installs what building and testing pomai needs on Debian 12: the system
# packages (apt) and a virtual environment at $POMAI_VENV (default .venv) with
# the Python build and test tools, then installs the package into it.
# Idempotent; safe to run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${POMAI_VENV:-$root/.venv}"

apt_packages=(build-essential pkg-config clang libclang-rt-14-dev libhwy-dev libgtest-dev libgmock-dev libbenchmark-dev
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
echo "== pip install $root"
"$venv/bin/python" -m pip install -q "$root"
