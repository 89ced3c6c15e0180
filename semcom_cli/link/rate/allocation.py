"""A channel-use budget shared out over a packet's tokens: how many copies each token gets.

The unit is one token copy (``symbols_per_token`` channel uses, every symbol at power 1), so a
budget is a multiple of it. A token with 0 copies is left out: only where the receiver can restore
it (image packets read against the caption codebook); sentences send every token at least once.

Where the transmitter measured the game's worth table (the LLM's clean-link answer probability
from each subset of tokens, :mod:`.importance`), the tokens to send come first from it: the
smallest set whose worth reaches the whole packet's (within ``SUFFICIENT``), or, when the budget
cannot send that many, the best set the budget can. Per-token weights alone cannot say this:
two slots holding the same word each get half its credit, so a weight rule would send one word
twice and another not at all (the colour of "red triangle" in slots 0 and 2, never its shape).

The remaining copies go one at a time to the token with the largest marginal value
``w_t · 2^-(r_t+1)``: each copy halves what is left to gain on that token. Equal weights and no
worth table give round robin in token order (the *uniform* allocation).
"""

from __future__ import annotations

import torch

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import MAX_CHANNEL_USES

__all__ = ["check_budget", "token_copies", "uniform_weights", "allocate", "sufficient_set", "SUFFICIENT"]

SUFFICIENT = 0.02  # a set of tokens is as good as the whole packet when its worth is within this


def check_budget(channel_uses: int, n_tokens: int, symbols_per_token: int, can_leave_out: bool) -> int:
    """The number of token copies a budget of ``channel_uses`` buys, or one clear line why it cannot."""
    m = symbols_per_token
    smallest = m if can_leave_out else n_tokens * m
    if isinstance(channel_uses, bool) or not isinstance(channel_uses, int):
        raise SemcomError(f"channel uses must be a whole number (got {channel_uses!r})")
    if channel_uses < smallest:
        what = "one token" if can_leave_out else f"each of the packet's {n_tokens} tokens once"
        raise SemcomError(f"a budget of {channel_uses} channel uses is below one use per token: sending {what} "
                          f"takes {smallest} ({m} per token)")
    if channel_uses > MAX_CHANNEL_USES:
        raise SemcomError(f"a budget of {channel_uses:,} channel uses is above the limit of {MAX_CHANNEL_USES:,}")
    if channel_uses % m:
        raise SemcomError(f"a budget of {channel_uses} channel uses is not a whole number of token copies "
                          f"({m} uses each): try {channel_uses // m * m} or {(channel_uses // m + 1) * m}")
    return channel_uses // m


def uniform_weights(batch: int, n_tokens: int, device=None) -> torch.Tensor:
    return torch.full((batch, n_tokens), 1.0 / n_tokens, device=device)


def sufficient_set(worth: torch.Tensor, weights: torch.Tensor, most: int) -> torch.Tensor:
    """Which tokens to send first [T] (0/1): the smallest subset whose worth (``worth`` [2^T], bit
    masks) is within ``SUFFICIENT`` of the whole packet's, or the best of ``most`` tokens if that
    takes more. Ties go to the larger weight sum, then to the earlier tokens."""
    t = weights.shape[0]
    w = weights.detach().double().cpu()
    v = worth.detach().double().cpu()
    size_of = [bin(s).count("1") for s in range(1 << t)]
    enough = float(v[-1]) - SUFFICIENT
    size = next((k for k in range(1, t + 1) if any(size_of[s] == k and v[s] >= enough for s in range(1 << t))), t)
    size = min(size, most)
    best = max((s for s in range(1 << t) if size_of[s] == size),
               key=lambda s: (round(float(v[s]), 3), float(sum(w[i] for i in range(t) if s >> i & 1)), -s))
    return torch.tensor([best >> i & 1 for i in range(t)], dtype=torch.long)


def token_copies(weights: torch.Tensor, copies: int, at_least_once: bool = False,
                 worth: torch.Tensor | None = None) -> torch.Tensor:
    """Weights [T] (≥ 0), a number of copies and, optionally, the worth table [2^T] → copies per token
    [T] (long), summing to ``copies``."""
    t = weights.shape[0]
    w = weights.detach().double().cpu().clamp_min(0.0)
    w = w / w.sum() if float(w.sum()) > 0 else torch.full((t,), 1.0 / t, dtype=torch.double)
    if at_least_once:
        r = torch.ones(t, dtype=torch.long)
    elif worth is not None and worth.shape[-1] == 1 << t and bool(torch.isfinite(worth).all()):
        r = sufficient_set(worth, w, copies)
    else:
        r = torch.zeros(t, dtype=torch.long)
    for _ in range(copies - int(r.sum())):
        gain = w * torch.pow(0.5, r.double() + 1)
        r[int(torch.argmax(gain))] += 1  # argmax takes the first of equals: round robin in token order
    return r


def allocate(weights: torch.Tensor, channel_uses: list[int] | int, symbols_per_token: int,
             can_leave_out: bool, mask: torch.Tensor | None = None,
             worth: torch.Tensor | None = None) -> torch.Tensor:
    """Weights [B, T] (and the worth tables [B, 2^T], NaN rows: none) and each packet's budget →
    copies per token [B, T] (long); padding (mask 0) gets none, and a packet's budget is shared among
    its own tokens. A worth table is read only for a packet without padding (it indexes all T)."""
    b, t = weights.shape
    budgets = [channel_uses] * b if isinstance(channel_uses, int) else list(channel_uses)
    out = torch.zeros(b, t, dtype=torch.long)
    for i in range(b):
        real = torch.arange(t) if mask is None else torch.nonzero(mask[i].cpu()).flatten()
        copies = check_budget(budgets[i], len(real), symbols_per_token, can_leave_out)
        table = worth[i] if worth is not None and len(real) == t else None
        out[i, real] = token_copies(weights[i, real.to(weights.device)], copies, at_least_once=not can_leave_out,
                                    worth=table)
    return out.to(weights.device)
