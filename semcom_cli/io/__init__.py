"""File formats between stages: the semantic file with its typed header (:mod:`.semantic`) and the patch
layout an image packet's header implies (:mod:`.patches`). Writing them atomically is :mod:`semcom_cli.core.files`."""

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
           "check_checkpoint", "encode_header"]
