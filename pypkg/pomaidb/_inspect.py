"""The `pomai-inspect` console script: runs the C++ tool bundled in the package.

The tool itself is `pomaidb/pomai-inspect`, a native executable built by Meson
from `tools/` over the engine's own readers and installed beside
`libpomai_c.so`. This module only finds it and hands over the command line;
see `pomai-inspect --help` and docs/FORMAT.md ("pomai-inspect").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["binary_path", "main"]


def binary_path() -> Path:
    """Path of the bundled executable; the environment variable
    `POMAI_INSPECT` (a path) overrides it."""
    override = os.environ.get("POMAI_INSPECT")
    if override:
        return Path(override)
    return Path(__file__).with_name("pomai-inspect")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs pomai-inspect with `argv` (default: this process's arguments) and
    returns its exit status (0 fine, 1 a problem found, 2 bad usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    exe = binary_path()
    if not exe.is_file():
        print(f"pomai-inspect: the bundled tool is missing ({exe}); reinstall the pomai package", file=sys.stderr)
        return 2
    if argv is None and hasattr(os, "execv"):
        # Replace this process: signals, stdio and the exit status are the tool's own.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(str(exe), [str(exe), *args])
    return subprocess.call([str(exe), *args])


if __name__ == "__main__":
    sys.exit(main())
