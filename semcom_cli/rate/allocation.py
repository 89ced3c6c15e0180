"""A channel-use budget shared out over a packet's tokens: how many copies each token gets.

The unit is one token copy (``symbols_per_token`` channel uses, every symbol at power 1), so a
budget is a multiple of it. A token with 0 copies is left out: only where the receiver can restore
it (image packets read against the caption codebook); sentences send every token at least once.

Copies go one at a time to the token with the largest marginal value ``w_t · 2^-(r_t+1)``: each
copy halves what is left to gain on that token. Equal weights give round robin in token order
(the *uniform* allocation); an important token gets copies before a minor one is sent at all.
"""

from __future__ import annotations

import torch

from ..errors import SemcomError
from ..limits import MAX_CHANNEL_USES

__all__ = ["check_budget", "token_copies", "uniform_weights", "allocate"]


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


def token_copies(weights: torch.Tensor, copies: int, at_least_once: bool = False) -> torch.Tensor:
    """Weights [T] (≥ 0) and a number of copies → copies per token [T] (long), summing to ``copies``."""
    t = weights.shape[0]
    w = weights.detach().double().cpu().clamp_min(0.0)
    w = w / w.sum() if float(w.sum()) > 0 else torch.full((t,), 1.0 / t, dtype=torch.double)
    r = torch.ones(t, dtype=torch.long) if at_least_once else torch.zeros(t, dtype=torch.long)
    for _ in range(copies - int(r.sum())):
        gain = w * torch.pow(0.5, r.double() + 1)
        r[int(torch.argmax(gain))] += 1  # argmax takes the first of equals: round robin in token order
    return r


def allocate(weights: torch.Tensor, channel_uses: list[int] | int, symbols_per_token: int,
             can_leave_out: bool, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Weights [B, T] and each packet's budget → copies per token [B, T] (long); padding (mask 0)
    gets none, and a packet's budget is shared among its own tokens."""
    b, t = weights.shape
    budgets = [channel_uses] * b if isinstance(channel_uses, int) else list(channel_uses)
    out = torch.zeros(b, t, dtype=torch.long)
    for i in range(b):
        real = torch.arange(t) if mask is None else torch.nonzero(mask[i].cpu()).flatten()
        copies = check_budget(budgets[i], len(real), symbols_per_token, can_leave_out)
        out[i, real] = token_copies(weights[i, real.to(weights.device)], copies, at_least_once=not can_leave_out)
    return out.to(weights.device)
