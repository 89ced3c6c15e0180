"""How much each semantic token matters to the answer, computed at the transmitter from the LLM.

The transmitter knows its clean tokens and, in the pull model, the user's question (else the task's
own instruction). It asks the LLM for the answer it would give on a clean link, then measures what
each token contributes to that answer: the token's **Shapley value** in the game "the receiver got
only the tokens in S", whose worth is the LLM's probability of that answer given S. For an image
packet read against the caption codebook, "got only S" is exactly what the receiver does on a
clean link when the other slots were left out: it reads the caption from S and fills in the rest
(:func:`semcom_cli.models.codebook.read_packets`). For T tokens that is 2^T prompts per packet
(16 for the shipped 4), scored in one batched forward pass each, no generation.

Shapley values share credit fairly between tokens that say the same thing (a colour word tiled
twice gets half each) and give nothing to a token the answer does not depend on, where a gradient
(first-order) measure proved noisy here: yes/no questions about a colour put weight on the shape's
slot. Negative values are clipped to 0 and the weights normalised to sum to 1; a packet whose
answer depends on no token gets uniform weights.

Without a question (the push model: the transmitter sends before anyone asks), the default is the
packet's **content importance**: the same game played against the captioning instruction, whose
answer names everything an easy-vqa question can ask about (colour and shape). It tells which slots
carry which words: a colour the tokenizer splits in two (" te", "al") takes two of the four slots,
so sending the first two slots (the uniform order) would never send the shape.
Packets the codebook does not read (sentences) also get uniform weights: their tokens cannot be
left out, so the measure has nothing to decide.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from semcom_cli.link.rate.allocation import uniform_weights
from semcom_cli.models.codebook import read_packets
from semcom_cli.models.prompting import answer_log_likelihood
from semcom_cli.tasks import END_OF_TURN, get_task

__all__ = ["Importance", "measure_importance", "token_importance", "content_importance", "content_task",
           "shapley_weights"]


def shapley_weights(n: int) -> torch.Tensor:
    """[2^n, n] coefficients: Shapley value of token t = Σ_S coef[S, t] · v(S), subsets S as bit masks."""
    coef = torch.zeros(1 << n, n, dtype=torch.float64)
    for s in range(1 << n):
        size = bin(s).count("1")
        for t in range(n):
            if s >> t & 1:  # v(S) enters with weight |S−1|!(n−|S|)!/n! for t ∈ S …
                coef[s, t] += math.factorial(size - 1) * math.factorial(n - size) / math.factorial(n)
            else:  # … and with minus |S|!(n−|S|−1)!/n! for t ∉ S (v(S ∪ {t}) − v(S))
                coef[s, t] -= math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
    return coef


@dataclass
class Importance:
    """What the transmitter measured of its packets: each token's Shapley weight [B, T] (summing to
    1) and the game's worth table [B, 2^T] (the LLM's probability of its clean-link answer from each
    subset of tokens, bit masks; NaN where the packet was not measured, so its weights are uniform).
    The allocation reads the weights for repeats and the worth table for which tokens to send."""

    weights: torch.Tensor
    worth: torch.Tensor


@torch.no_grad()
def measure_importance(model, task: str, tokens: torch.Tensor, instructions: list[str | None],
                       batch_rows: int = 128) -> Importance:
    """The Shapley game of clean tokens [B, T, D] for ``task`` with each packet's question (None: the
    task's instruction; a question task without one is not measured, see :func:`content_importance`
    for the question-free default)."""
    t = get_task(task)
    b, n = tokens.shape[:2]
    weights = uniform_weights(b, n, tokens.device)
    worth = torch.full((b, 1 << min(n, 8)), math.nan, dtype=torch.float64, device=tokens.device)
    if not model.reads_captions(t.modality) or n > 8:  # 2^T prompts: only for short image packets
        return Importance(weights, worth)
    rows = [i for i, q in enumerate(instructions) if q or t.instruction]
    if not rows:
        return Importance(weights, worth)
    llm = model.get_llm()
    captions = model.caption_codebook()
    temperature = model.preset.codec.codebook_temperature
    subsets = torch.tensor([[s >> k & 1 for k in range(n)] for s in range(1 << n)], device=tokens.device)
    coef = shapley_weights(n).to(tokens.device)
    full = torch.ones(len(rows), n, dtype=torch.long, device=tokens.device)
    clean = tokens[rows].to(model.device)
    asked = [instructions[i] for i in rows]
    read = read_packets(clean, full, captions, temperature)
    answers = [a if a.strip() else END_OF_TURN.strip() for a in model.answer([t.tag] * len(rows), asked, read, full)]
    # every (packet, subset) pair: the packet as the receiver reads it from that subset alone
    pairs = list(itertools.product(range(len(rows)), range(1 << n)))
    played = torch.zeros(len(rows), 1 << n, dtype=torch.float64, device=tokens.device)
    for start in range(0, len(pairs), batch_rows):
        chunk = pairs[start:start + batch_rows]
        p_idx = torch.tensor([p for p, _ in chunk], device=tokens.device)
        s_idx = torch.tensor([s for _, s in chunk], device=tokens.device)
        heard = read_packets(clean[p_idx], subsets[s_idx], captions, temperature, fill=True)
        logp = answer_log_likelihood(llm, [t.tag] * len(chunk), [asked[p] for p, _ in chunk], heard,
                                     torch.ones(len(chunk), n, dtype=torch.long, device=tokens.device),
                                     [answers[p] for p, _ in chunk])
        played[p_idx, s_idx] = logp.double().exp()
    value = (played @ coef).clamp_min(0.0)  # [rows, T]
    total = value.sum(-1, keepdim=True)
    weights[rows] = torch.where(total > 1e-6, value / total.clamp_min(1e-12), weights[rows].double()).float()
    worth[rows] = played
    return Importance(weights, worth)


def token_importance(model, task: str, tokens: torch.Tensor, instructions: list[str | None]) -> torch.Tensor:
    """Importance weights [B, T] (:func:`measure_importance`'s Shapley weights)."""
    return measure_importance(model, task, tokens, instructions).weights


def content_task(model, modality: str) -> str | None:
    """The task whose answer says what a packet holds (images: the caption task), if the checkpoint
    serves it; None: no such task, so a question-free packet is sent uniformly."""
    if modality != "image" or not model.reads_captions(modality):
        return None
    return "caption" if "caption" in model.preset.train.instruct.tasks else None


def content_importance(model, tokens: torch.Tensor) -> Importance:
    """The question-free game of clean image tokens: each token's share in the caption the LLM
    reads from the packet (not measured, so uniform, where the checkpoint has no caption task)."""
    task = content_task(model, "image")
    if task is None:
        b, n = tokens.shape[:2]
        nan = torch.full((b, 1 << min(n, 8)), math.nan, dtype=torch.float64, device=tokens.device)
        return Importance(uniform_weights(b, n, tokens.device), nan)
    return measure_importance(model, task, tokens, [None] * tokens.shape[0])
