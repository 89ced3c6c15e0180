"""The transmitter as library calls: content → semantic file(s), headers included.

``encode_single`` makes one packet's file; ``encode_share_set`` makes a share set's
public file and one private file per user (:mod:`semcom_cli.sharing`). Both build
their headers with :func:`semcom_cli.io.encode_header`.
"""

from __future__ import annotations

import torch

from .io import SemanticFile, encode_header
from .io.share_set import build_share_files
from .sharing import DEFAULT_THRESHOLD, SharePlan, encode_parts, plan_sharing

__all__ = ["encode_single", "encode_share_set"]


def _inputs(task, contents: list):
    """Sentences as they are; decoded images [3, 64, 64] stacked into a batch."""
    return contents if task.modality == "text" else torch.stack(contents)


@torch.no_grad()
def encode_single(model, task, content, source: str) -> SemanticFile:
    """One image [3, 64, 64] or sentence → its ``encode`` file (user 0, private)."""
    model.check_task(task)
    tokens, mask = model.source_tokens(task.modality, _inputs(task, [content]), strict=True)
    symbols = model.encode(tokens, mask, task.modality)[0]
    return SemanticFile({"symbols": symbols}, encode_header(task, model, source, symbols, user=0, role="private"))


@torch.no_grad()
def encode_share_set(model, task, contents: list, sources: list[str], threshold: float | None = None,
                     ) -> tuple[SharePlan, SemanticFile, list[SemanticFile]]:
    """Several users' content → (plan, public file, private files). ``threshold``: the relative distance
    under which tokens are shared (default 0.35 for images; text shares only equal tokens)."""
    if threshold is None:
        threshold = 0.0 if task.modality == "text" else DEFAULT_THRESHOLD
    model.check_task(task)
    tokens, mask = model.source_tokens(task.modality, _inputs(task, contents), strict=True)
    plan = plan_sharing(tokens, mask, threshold)
    packets = encode_parts(model, tokens, plan, task.modality)
    public, private = build_share_files(packets, plan, task, model, sources)
    return plan, public, private
