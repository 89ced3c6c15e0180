"""Variable-rate packets end to end, for a batch: weights → budget → copies → channel → tokens.

Shared by ``semcom evaluate`` (methods ``uniform``, ``content`` and ``importance``), ``semcom encode`` and the
benchmark; the single-file commands go through the same :func:`plan_copies`.
"""

from __future__ import annotations

import hashlib

import torch

from semcom_cli.channel import send_repeated
from semcom_cli.core.errors import SemcomError
from semcom_cli.link.rate.allocation import allocate, uniform_weights
from semcom_cli.link.rate.importance import Importance, content_task, measure_importance
from semcom_cli.link.rate.policy import RATE_METHODS
from semcom_cli.tasks import get_task

__all__ = ["default_method", "packet_importance", "plan_copies", "budget_for", "send_at_rate"]


def budget_for(model, channel_uses: int | str, snr_feedback: float | None, target: float, method: str) -> int:
    """A packet's budget: a given count, or (``auto``) the one the checkpoint's rate table picks for
    the reported SNR and target accuracy."""
    if channel_uses != "auto":
        return int(channel_uses)
    if snr_feedback is None:
        raise SemcomError("--channel-uses auto needs the SNR the receiver reports (--snr-feedback)")
    return model.rate_table().choose(snr_feedback, target, method)[0]


_IMPORTANCE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (checkpoint, task, question, digest) → game
_CACHE_ROWS = 100_000


def _importance(model, task: str, tokens: torch.Tensor, instructions: list[str | None]) -> Importance:
    """measure_importance, remembered per packet: an evaluation measures the same packets at many
    SNRs and budgets, and a packet's importance depends on neither."""
    keys = [(model.hash, task, q, hashlib.sha256(t.detach().float().cpu().numpy().tobytes()).hexdigest())
            for t, q in zip(tokens, instructions)]
    missing = [i for i, k in enumerate(keys) if k not in _IMPORTANCE]
    if missing:
        if len(_IMPORTANCE) > _CACHE_ROWS:
            _IMPORTANCE.clear()
        found = measure_importance(model, task, tokens[missing], [instructions[i] for i in missing])
        for i, w, v in zip(missing, found.weights, found.worth):
            _IMPORTANCE[keys[i]] = (w.cpu(), v.cpu())
    return Importance(torch.stack([_IMPORTANCE[k][0] for k in keys]).to(tokens.device),
                      torch.stack([_IMPORTANCE[k][1] for k in keys]))


def default_method(model, task, asked: bool) -> str:
    """What the transmitter weighs a packet by: the question (or the task's instruction) where one is
    known and the codebook can restore left-out tokens, else its content where it can tell, else
    every token alike."""
    if (asked or task.instruction) and model.reads_captions(task.modality):
        return "importance"
    return "content" if content_task(model, task.modality) else "uniform"


def packet_importance(model, task: str, tokens: torch.Tensor, instructions: list[str | None],
                      method: str) -> Importance:
    """Each packet's importance game by ``method``: ``uniform`` (not measured: every token alike, in
    token order), ``content`` (question-free: what the packet says, its caption) or ``importance``
    (each packet's question, or the task's instruction; a packet without either gets ``content``)."""
    RATE_METHODS.check(method)
    t = get_task(task)
    b, n = tokens.shape[:2]
    weights = uniform_weights(b, n, tokens.device)
    worth = torch.full((b, 1 << min(n, 8)), float("nan"), dtype=torch.float64)
    content = content_task(model, t.modality)
    if method == "importance" and t.modality == "image":
        asked = [i for i, q in enumerate(instructions) if q or t.instruction]
        if asked:
            game = _importance(model, task, tokens[asked], [instructions[i] for i in asked])
            weights[asked], worth[asked] = game.weights, game.worth
        unasked = sorted(set(range(b)) - set(asked))
    else:
        unasked = list(range(b)) if method == "content" else []
    if unasked and content is not None:
        game = _importance(model, content, tokens[unasked], [None] * len(unasked))
        weights[unasked], worth[unasked] = game.weights, game.worth
    return Importance(weights, worth)


def plan_copies(model, task: str, tokens: torch.Tensor, mask: torch.Tensor, instructions: list[str | None],
                budgets: list[int] | int, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(copies per token [B, T], weights [B, T]) for clean tokens [B, T, D], by ``method``
    (:func:`packet_importance`)."""
    game = packet_importance(model, task, tokens, instructions, method)
    modality = get_task(task).modality
    copies = allocate(game.weights, budgets, model.symbols_per_token, model.reads_captions(modality), mask,
                      game.worth)
    return copies, game.weights


def send_at_rate(model, channel, tokens: torch.Tensor, copies: torch.Tensor, modality: str,
                 snr_db: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode the tokens sent, send each its copies, combine and decode → (tokens [B, T, D] for the
    LLM, their mask [B, T]). Image slots left out are restored by the caption codebook."""
    sent = (copies > 0).long()
    symbols = model.encode(tokens, sent, modality)
    y, g = send_repeated(channel, symbols, copies, snr_db)
    received = model.receive_repeated(y, g, snr_db, copies, modality)
    if model.reads_captions(modality):
        return received, torch.ones_like(sent)
    return received, sent
