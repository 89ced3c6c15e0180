"""Semantic-tensor files: safetensors with a metadata header that says what the file is.

The header holds one key, ``semcom``, whose value is a JSON object written with
sorted keys. (safetensors writes its metadata map in hash order, which differs
from run to run; one key keeps the same inputs giving the same bytes.)

Complex symbols are real tensors with a trailing dimension of 2 (real, imaginary).

Tensors by stage:

- ``encode``:   ``symbols`` [T, m, 2] channel input, average power 1 per complex symbol.
- ``transmit``: ``symbols`` [T, m, 2] channel output y = h·x + n, and ``gain`` [2],
  the block-fading coefficient h the receiver is assumed to know (1 for AWGN).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import SemcomError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SemanticFile",
    "read_semantic",
    "write_semantic",
    "atomic_write_bytes",
    "read_input_bytes",
]

FORMAT = "semcom-semantic"
FORMAT_VERSION = 1
STAGES = ("encode", "transmit")


@dataclass
class SemanticFile:
    """Tensors plus the metadata header of one semantic file."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return self.meta["stage"]

    def to_bytes(self) -> bytes:
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **self.meta}
        header = {"semcom": json.dumps(meta, sort_keys=True, separators=(",", ":"))}
        tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in self.tensors.items()}
        return st_save(tensors, metadata=header)

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> "SemanticFile":
        if len(data) < 8:
            raise SemcomError(f"{source}: not a semcom file (empty or truncated)")
        header_len = int.from_bytes(data[:8], "little")
        if header_len <= 0 or 8 + header_len > len(data):
            raise SemcomError(f"{source}: not a safetensors file, or truncated")
        try:
            header = json.loads(data[8 : 8 + header_len])
            tensors = st_load(data)
        except (ValueError, SafetensorError, UnicodeDecodeError):
            raise SemcomError(f"{source}: corrupted or truncated safetensors file") from None
        raw = (header.get("__metadata__") or {}).get("semcom")
        if raw is None:
            raise SemcomError(f"{source}: a safetensors file, but not a semcom semantic file")
        try:
            meta = json.loads(raw)
        except ValueError:
            raise SemcomError(f"{source}: corrupted semcom metadata header") from None
        if meta.get("format") != FORMAT:
            raise SemcomError(f"{source}: not a semcom semantic file (format {meta.get('format')!r})")
        if meta.get("format_version") != FORMAT_VERSION:
            raise SemcomError(
                f"{source}: semantic file format version {meta.get('format_version')} "
                f"is not supported (this semcom reads version {FORMAT_VERSION})"
            )
        if "symbols" not in tensors or tensors["symbols"].shape[-1:] != (2,):
            raise SemcomError(f"{source}: semantic file has no [..., 2] 'symbols' tensor")
        return cls(tensors=tensors, meta=meta)

    def expect(self, stage: str, source: str) -> "SemanticFile":
        if self.meta.get("stage") != stage:
            hint = {
                "encode": "make it with 'semcom encode'",
                "transmit": "send it through 'semcom transmit' first (--channel none for a noiseless link)",
            }.get(stage, "")
            raise SemcomError(
                f"{source}: this is a '{self.meta.get('stage')}' file; this stage needs a "
                f"'{stage}' file ({hint})"
            )
        return self


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


def read_semantic(path: str, stage: str | None = None) -> SemanticFile:
    data, name = read_input_bytes(path)
    sem = SemanticFile.from_bytes(data, name)
    return sem.expect(stage, name) if stage else sem


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


def write_semantic(path: str | Path, sem: SemanticFile) -> None:
    atomic_write_bytes(path, sem.to_bytes())
