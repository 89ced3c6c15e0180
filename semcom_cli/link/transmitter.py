"""The transmitter as library calls: content → semantic file(s), headers included.

``encode_single`` makes one packet's file; ``encode_share_set`` makes a share set's
public file and one private file per user (:mod:`semcom_cli.link.sharing`). Both build
their headers with :func:`semcom_cli.io.encode_header`.
"""

from __future__ import annotations

import torch

from semcom_cli.io.semantic import SemanticFile, encode_header
from semcom_cli.link.rate.packets import budget_for, default_method, packet_importance, plan_copies
from semcom_cli.link.rate.shared import share_copies
from semcom_cli.link.share_set import build_share_files
from semcom_cli.link.sharing import DEFAULT_THRESHOLD, SharePlan, encode_parts, plan_sharing

__all__ = ["encode_single", "encode_at_rate", "encode_share_set"]


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
def encode_at_rate(model, task, content, source: str, channel_uses: int | str, question: str | None = None,
                   snr_feedback: float | None = None, target_accuracy: float = 0.95) -> SemanticFile:
    """One packet at a variable rate (:mod:`semcom_cli.link.rate`): a budget (or ``auto``: the checkpoint's
    rate table picks it from the reported SNR), shared over the tokens by their importance to the
    question (or the task's instruction; without either, by their share in what the packet says).
    The header records the copies."""

    model.check_task(task)
    method = default_method(model, task, bool(question))
    budget = budget_for(model, channel_uses, snr_feedback, target_accuracy, method)
    tokens, mask = model.source_tokens(task.modality, _inputs(task, [content]), strict=True)
    copies, weights = plan_copies(model, task.name, tokens, mask, [question], budget, method)
    symbols = model.encode(tokens, (copies > 0).long(), task.modality)[0]
    rate = {"method": method, "budget": budget, "importance": [round(float(w), 4) for w in weights[0]]}
    if channel_uses == "auto":
        rate.update({"policy": "auto", "snr_feedback": snr_feedback, "target_accuracy": target_accuracy})
    header = encode_header(task, model, source, symbols, user=0, role="private", copies=copies[0].tolist(),
                           rate=rate)
    return SemanticFile({"symbols": symbols}, header)


@torch.no_grad()
def encode_share_set(model, task, contents: list, sources: list[str], threshold: float | None = None,
                     channel_uses: int | None = None, questions: list[str | None] | None = None,
                     ) -> tuple[SharePlan, SemanticFile, list[SemanticFile]]:
    """Several users' content → (plan, public file, private files). ``threshold``: the relative distance
    under which tokens are shared (default 0.35 for images; text shares only equal tokens).
    ``channel_uses``: a variable-rate set, that budget per user shared out by importance to each
    user's question (``questions``, None: the content's) with public tokens counted once
    (:mod:`semcom_cli.link.rate.shared`); the files' headers record the copies."""
    if threshold is None:
        threshold = 0.0 if task.modality == "text" else DEFAULT_THRESHOLD
    model.check_task(task)
    tokens, mask = model.source_tokens(task.modality, _inputs(task, contents), strict=True)
    plan = plan_sharing(tokens, mask, threshold)
    if channel_uses is None:
        packets = encode_parts(model, tokens, plan, task.modality)
        public, private = build_share_files(packets, plan, task, model, sources)
        return plan, public, private

    questions = questions or [None] * len(contents)
    method = default_method(model, task, any(questions))
    game = packet_importance(model, task.name, tokens, questions, method)
    copies = share_copies(plan, game, channel_uses, model.symbols_per_token, model.reads_captions(task.modality))
    packets = encode_parts(model, tokens, plan, task.modality, sent=copies)
    rate = {"method": method, "budget": channel_uses, "users": plan.n_users,
            "importance": [[round(float(w), 4) for w in row] for row in game.weights]}
    public, private = build_share_files(packets, plan, task, model, sources, copies=copies, rate=rate)
    return plan, public, private
