#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the demo: an embedded vector store on
# local disk (examples/demo.py).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${POMAI_VENV:-$root/.venv}"
bash "$root/scripts/setup.sh"
cd /tmp
exec "$venv/bin/python" "$root/examples/demo.py" "$@"
