"""Reading inputs and writing outputs: stdin/stdout for ``-``, and never a half-written file."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from ..errors import SemcomError

__all__ = ["read_input_bytes", "atomic_write_bytes", "write_json"]


def read_input_bytes(path: str) -> tuple[bytes, str]:
    """Read a whole input file, or stdin for ``-``. Returns (bytes, display name)."""
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    p = Path(path)
    if not p.exists():
        raise SemcomError(f"{path}: no such file")
    if p.is_dir():
        raise SemcomError(f"{path}: is a folder, not a file")
    return p.read_bytes(), path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename, so no half-written file is left."""
    if str(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data) -> None:
    """Pretty, key-sorted JSON, written atomically (``-``: stdout)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
