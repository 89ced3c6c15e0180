"""The learned channel code: semantic tokens ↔ complex channel symbols (KAN layers).

Each semantic token of ``embed_dim`` reals becomes ``symbols_per_token`` complex
symbols, so a packet of T tokens uses T · symbols_per_token channel uses. The
encoder normalises every packet to average power 1 per complex symbol; the
decoder is told the effective SNR, so one codec serves every SNR.

The encoder codes each token on its own (so a token can be shared between users,
see ``sharing``); the decoder may look across the packet (``context_heads`` > 0:
one self-attention layer) so that a word sent twice, or a sentence's neighbouring
words, help decode each token at low SNR.
"""

from __future__ import annotations

import torch
from torch import nn

from .kan import KANLinear

__all__ = ["ChannelEncoder", "ChannelDecoder", "normalize_power"]


def normalize_power(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scale each packet to average power 1 per complex symbol.

    z: [B, T, m, 2] reals; mask: [B, T] (1 = real token, 0 = padding) or None.
    """
    power = z.pow(2).sum(-1)  # [B, T, m], |x|² per complex symbol
    if mask is None:
        mean = power.mean(dim=(1, 2))
    else:
        m = mask.to(z.dtype)[:, :, None].expand_as(power)
        mean = (power * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1.0)
    z = z / mean.clamp_min(1e-12).sqrt()[:, None, None, None]
    return z if mask is None else z * mask.to(z.dtype)[:, :, None, None]


class ChannelEncoder(nn.Module):
    """tokens [B, T, D] → symbols [B, T, m, 2], average power 1 per complex symbol."""

    def __init__(self, embed_dim: int, symbols_per_token: int, hidden: int, grid: int = 5,
                 spline_order: int = 3):
        super().__init__()
        self.config = {"embed_dim": embed_dim, "symbols_per_token": symbols_per_token,
                       "hidden": hidden, "grid": grid, "spline_order": spline_order}
        self.m = symbols_per_token
        self.norm_in = nn.LayerNorm(embed_dim)
        self.kan1 = KANLinear(embed_dim, hidden, grid, spline_order)
        self.norm_mid = nn.LayerNorm(hidden)
        self.kan2 = KANLinear(hidden, 2 * symbols_per_token, grid, spline_order)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.kan2(self.norm_mid(self.kan1(self.norm_in(tokens))))
        z = h.view(*tokens.shape[:-1], self.m, 2)
        return normalize_power(z, mask)


class ChannelDecoder(nn.Module):
    """equalised symbols [B, T, m, 2] + effective SNR [B] or [B, T] (dB) → tokens [B, T, D]."""

    def __init__(self, embed_dim: int, symbols_per_token: int, hidden: int, grid: int = 5,
                 spline_order: int = 3, context_heads: int = 0):
        super().__init__()
        self.config = {"embed_dim": embed_dim, "symbols_per_token": symbols_per_token,
                       "hidden": hidden, "grid": grid, "spline_order": spline_order}
        if context_heads:  # older checkpoints have no such key: they decode token by token
            self.config["context_heads"] = context_heads
        self.kan1 = KANLinear(2 * symbols_per_token + 1, hidden, grid, spline_order)
        self.norm_mid = nn.LayerNorm(hidden)
        self.kan2 = KANLinear(hidden, embed_dim, grid, spline_order)
        self.norm_context = nn.LayerNorm(hidden) if context_heads else None
        self.context = nn.MultiheadAttention(hidden, context_heads, batch_first=True) if context_heads else None

    def forward(self, symbols: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask [B, T] (1 = real token): padding is not looked at by the other tokens."""
        b, t = symbols.shape[:2]
        snr_feature = (snr_db.reshape(b, -1, 1) / 10.0).expand(b, t, 1).to(symbols.dtype)
        h = self.kan1(torch.cat([symbols.flatten(2), snr_feature], dim=-1))
        if self.context is not None:
            q = self.norm_context(h)
            padding = None if mask is None else mask == 0
            h = h + self.context(q, q, q, key_padding_mask=padding, need_weights=False)[0]
        return self.kan2(self.norm_mid(h))
