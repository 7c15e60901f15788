#!/usr/bin/env bash
# The wheel carries what it needs: installs the repaired wheel (the newest
# dist/pomai-*-manylinux*.whl, or the one given as $1) into a fresh virtual
# environment and runs it where the system's Highway cannot be loaded: in a
# private mount namespace (unshare; root or user namespaces) every libhwy.so*
# file of the system is covered by /dev/null. There it checks that
# libhwy.so.1 indeed no longer loads, then runs examples/demo.py, an alopex
# transaction and index search, and pomai-inspect (--version, the demo's
# database, verify). Exit status 0 only if all of it passes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
wheel="${1:-$(ls -t "$root"/dist/pomai-*-manylinux*.whl 2>/dev/null | head -n 1)}"
[ -f "$wheel" ] || { echo "tests/wheel: no repaired wheel in dist/ (run scripts/build-wheel.sh)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q "$wheel"
echo "== installed $(basename "$wheel") into a fresh venv"

hidden=()
for f in /usr/lib/*/libhwy.so* /usr/lib/libhwy.so* /lib/*/libhwy.so* /usr/local/lib/libhwy.so*; do
  [ -e "$f" ] && [ ! -L "$f" ] && hidden+=("$f")
done
ns=(unshare -m --propagation private)
[ "$(id -u)" -ne 0 ] && ns=(unshare -r -m --propagation private)

cat > "$work/inside.sh" <<'INSIDE'
set -euo pipefail
work="$1"; root="$2"; shift 2
for f in "$@"; do mount --bind /dev/null "$f"; done
py="$work/venv/bin/python"
cd "$work"  # never the source tree
echo "== system libhwy hidden: ${*:-(none installed)}"
"$py" - <<'PY'
import ctypes
try:
    ctypes.CDLL("libhwy.so.1")
except OSError as e:
    print("libhwy.so.1 does not load here:", str(e).split(":")[-1].strip())
else:
    raise SystemExit("libhwy.so.1 still loads: the system library is not hidden")
PY
"$py" "$root/examples/demo.py" "$work/demo_db"
"$py" - <<'PY'
import numpy as np
import alopex, pomaidb
from alopex import Database, HnswConfig, TxnMode
assert alopex.__version__ == pomaidb.__version__, (alopex.__version__, pomaidb.__version__)
db = Database.new()
db.create_hnsw_index("docs", HnswConfig(4))
with db.begin(TxnMode.READ_WRITE) as txn:
    txn.put(b"k", b"v")
    for i in range(100):
        txn.upsert_to_hnsw("docs", b"doc%d" % i, np.eye(4, dtype=np.float32)[i % 4] + i / 1000)
    txn.commit()
hits, _ = db.search_hnsw("docs", np.array([0, 1, 0, 0], dtype=np.float32), k=3)
assert len(hits) == 3, hits
with db.begin(TxnMode.READ_ONLY) as txn:
    assert txn.get(b"k") == b"v"
db.close()
print("alopex", alopex.__version__, "works; pomaidb loads", pomaidb.library_path())
PY
inspect="$work/venv/bin/pomai-inspect"
version="$("$inspect" --version)"
expected="pomai-inspect $("$py" -c 'import pomaidb; print(pomaidb.__version__)')"
[ "$version" = "$expected" ] || { echo "pomai-inspect --version said '$version', expected '$expected'" >&2; exit 1; }
"$inspect" "$work/demo_db" > /dev/null
"$inspect" verify "$work/demo_db"
echo "== the wheel works without the system's libhwy"
INSIDE
"${ns[@]}" bash "$work/inside.sh" "$work" "$root" "${hidden[@]}"
