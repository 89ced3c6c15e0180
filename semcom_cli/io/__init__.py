"""Files between stages: semantic files with a typed header, share sets, atomic writes."""

from semcom_cli.core.files import atomic_write_bytes, read_input_bytes, write_json
from semcom_cli.io.semantic import (
           FORMAT,
           FORMAT_VERSION,
           Header,
           SemanticFile,
           check_checkpoint,
           encode_header,
           read_semantic,
           write_semantic,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "Header", "SemanticFile", "read_semantic", "write_semantic",
           "check_checkpoint", "encode_header", "atomic_write_bytes", "read_input_bytes", "write_json"]
