"""Variable-rate packets end to end, for a batch: weights → budget → copies → channel → tokens.

Shared by ``semcom evaluate`` (methods ``uniform`` and ``importance``), ``semcom encode`` and the
benchmark; the single-file commands go through the same :func:`plan_copies`.
"""

from __future__ import annotations

import hashlib

import torch

from ..channel import send_repeated
from ..errors import SemcomError
from ..tasks import get_task
from .allocation import allocate, uniform_weights
from .importance import token_importance

__all__ = ["plan_copies", "budget_for", "send_at_rate"]


def budget_for(model, channel_uses: int | str, snr_feedback: float | None, target: float, method: str) -> int:
    """A packet's budget: a given count, or (``auto``) the one the checkpoint's rate table picks for
    the reported SNR and target accuracy."""
    if channel_uses != "auto":
        return int(channel_uses)
    if snr_feedback is None:
        raise SemcomError("--channel-uses auto needs the SNR the receiver reports (--snr-feedback)")
    return model.rate_table().choose(snr_feedback, target, method)[0]


_IMPORTANCE: dict[tuple, torch.Tensor] = {}  # (checkpoint, task, question, tokens' digest) → weights [T]
_CACHE_ROWS = 100_000


def _importance(model, task: str, tokens: torch.Tensor, instructions: list[str | None]) -> torch.Tensor:
    """token_importance, remembered per packet: an evaluation measures the same packets at many
    SNRs and budgets, and a packet's importance depends on neither."""
    keys = [(model.hash, task, q, hashlib.sha256(t.detach().float().cpu().numpy().tobytes()).hexdigest())
            for t, q in zip(tokens, instructions)]
    missing = [i for i, k in enumerate(keys) if k not in _IMPORTANCE]
    if missing:
        if len(_IMPORTANCE) > _CACHE_ROWS:
            _IMPORTANCE.clear()
        found = token_importance(model, task, tokens[missing], [instructions[i] for i in missing])
        for i, w in zip(missing, found):
            _IMPORTANCE[keys[i]] = w.cpu()
    return torch.stack([_IMPORTANCE[k] for k in keys]).to(tokens.device)


def plan_copies(model, task: str, tokens: torch.Tensor, mask: torch.Tensor, instructions: list[str | None],
                budgets: list[int] | int, importance: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(copies per token [B, T], weights [B, T]) for clean tokens [B, T, D]: importance-aware from
    each packet's question (or the task's instruction), or uniform."""
    modality = get_task(task).modality
    if importance and modality == "image":
        weights = _importance(model, task, tokens, instructions)
    else:
        weights = uniform_weights(tokens.shape[0], tokens.shape[1], tokens.device)
    copies = allocate(weights, budgets, model.symbols_per_token, model.reads_captions(modality), mask)
    return copies, weights


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
