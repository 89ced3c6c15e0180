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
answer depends on no token (or a task without a question or instruction) gets uniform weights.
Packets the codebook does not read (sentences) also get uniform weights: their tokens cannot be
left out, so the measure has nothing to decide.
"""

from __future__ import annotations

import itertools
import math

import torch

from ..models.codebook import read_packets
from ..models.prompting import answer_log_likelihood
from ..tasks import END_OF_TURN, get_task
from .allocation import uniform_weights

__all__ = ["token_importance", "shapley_weights"]


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


@torch.no_grad()
def token_importance(model, task: str, tokens: torch.Tensor, instructions: list[str | None],
                     batch_rows: int = 128) -> torch.Tensor:
    """Importance weights [B, T] of clean tokens [B, T, D] for ``task`` with each packet's question
    (None: the task's instruction; a question task without one gets uniform weights)."""
    t = get_task(task)
    b, n = tokens.shape[:2]
    weights = uniform_weights(b, n, tokens.device)
    if not model.reads_captions(t.modality) or n > 8:  # 2^T prompts: only for short image packets
        return weights
    rows = [i for i, q in enumerate(instructions) if q or t.instruction]
    if not rows:
        return weights
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
    worth = torch.zeros(len(rows), 1 << n, dtype=torch.float64, device=tokens.device)
    for start in range(0, len(pairs), batch_rows):
        chunk = pairs[start:start + batch_rows]
        p_idx = torch.tensor([p for p, _ in chunk], device=tokens.device)
        s_idx = torch.tensor([s for _, s in chunk], device=tokens.device)
        heard = read_packets(clean[p_idx], subsets[s_idx], captions, temperature, fill=True)
        logp = answer_log_likelihood(llm, [t.tag] * len(chunk), [asked[p] for p, _ in chunk], heard,
                                     torch.ones(len(chunk), n, dtype=torch.long, device=tokens.device),
                                     [answers[p] for p, _ in chunk])
        worth[p_idx, s_idx] = logp.double().exp()
    value = (worth @ coef).clamp_min(0.0)  # [rows, T]
    total = value.sum(-1, keepdim=True)
    weights[rows] = torch.where(total > 1e-6, value / total.clamp_min(1e-12), weights[rows].double()).float()
    return weights
