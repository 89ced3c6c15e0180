"""The learned channel code: packets of semantic tokens ↔ complex channel symbols (KAN layers).

A *packet* is whatever set of tokens is sent together: one image's tokens, one sentence, a share
set's public tokens, one user's private tokens. Each token owns ``symbols_per_token`` complex
symbols (its slot), so a packet of T tokens uses T · symbols_per_token channel uses.

- **Joint coding** (``encoder_heads`` > 0): after a per-token KAN, one self-attention layer looks
  across the packet, so what a slot sends may depend on every token of its packet and the code can
  spread a colour over all of the packet's symbols instead of one token's. ``segments`` splits a
  batch row into packets that are coded independently (a user's frame: the public packet and its
  private packet); attention never crosses a segment.
- **Equal power per token** (``power: token``): every slot is scaled to average power 1 per complex
  symbol, so a token sent once for several users never forces the others down; ``packet`` (older
  checkpoints) scales the whole packet instead.
- **Modality** (``modality_embedding``): image and text packets are told apart by a learned vector
  added in the encoder and the decoder (the semantic file's header carries the modality), so an
  image's few colour and shape words do not share their signal space with the LLM's whole
  vocabulary.

The decoder is told each slot's effective SNR, so one codec serves every SNR, and looks across
everything one user received (``context_heads``).
"""

from __future__ import annotations

import torch
from torch import nn

from semcom_cli.models.kan import KANLinear

__all__ = ["ChannelEncoder", "ChannelDecoder", "normalize_power", "MODALITIES"]

MODALITIES = ("image", "text")


def normalize_power(z: torch.Tensor, mask: torch.Tensor | None = None, per_token: bool = False) -> torch.Tensor:
    """Scale to average power 1 per complex symbol: each token's slot (``per_token``) or each packet.

    z: [B, T, m, 2] reals; mask: [B, T] (1 = real token, 0 = padding) or None. Padding is zero.
    """
    power = z.pow(2).sum(-1)  # [B, T, m], |x|² per complex symbol
    if per_token:
        z = z / power.mean(-1).clamp_min(1e-12).sqrt()[:, :, None, None]
    elif mask is None:
        z = z / power.mean(dim=(1, 2)).clamp_min(1e-12).sqrt()[:, None, None, None]
    else:
        m = mask.to(z.dtype)[:, :, None].expand_as(power)
        mean = (power * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1.0)
        z = z / mean.clamp_min(1e-12).sqrt()[:, None, None, None]
    return z if mask is None else z * mask.to(z.dtype)[:, :, None, None]


def _attention_mask(mask: torch.Tensor | None, segments: torch.Tensor | None, heads: int) -> torch.Tensor | None:
    """Boolean [B·heads, T, T], True where a token may not look: padding, or another segment.
    Every token may look at itself, so no row is empty (padding rows are zeroed afterwards)."""
    if mask is None and segments is None:
        return None
    b, t = (mask if mask is not None else segments).shape
    device = (mask if mask is not None else segments).device
    blocked = torch.zeros(b, t, t, dtype=torch.bool, device=device)
    if mask is not None:
        blocked |= (mask == 0)[:, None, :]
    if segments is not None:
        blocked |= segments[:, :, None] != segments[:, None, :]
    blocked &= ~torch.eye(t, dtype=torch.bool, device=device)
    return blocked.repeat_interleave(heads, dim=0)


class _PacketAttention(nn.Module):
    """One residual self-attention layer across a packet's tokens."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(hidden)
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None, segments: torch.Tensor | None = None):
        q = self.norm(h)
        blocked = _attention_mask(mask, segments, self.heads)
        return h + self.attention(q, q, q, attn_mask=blocked, need_weights=False)[0]


class _ModalityEmbedding(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.vectors = nn.Parameter(torch.zeros(len(MODALITIES), hidden))

    def forward(self, h: torch.Tensor, modality: str | None) -> torch.Tensor:
        if modality is None:
            raise ValueError("this codec needs the packet's modality (image or text)")
        return h + self.vectors[MODALITIES.index(modality)]


class ChannelEncoder(nn.Module):
    """tokens [B, T, D] → symbols [B, T, m, 2] at average power 1 per complex symbol."""

    def __init__(self, embed_dim: int, symbols_per_token: int, hidden: int, grid: int = 5,
                 spline_order: int = 3, encoder_heads: int = 0, power: str = "packet",
                 modality_embedding: bool = False):
        super().__init__()
        self.config = {"embed_dim": embed_dim, "symbols_per_token": symbols_per_token,
                       "hidden": hidden, "grid": grid, "spline_order": spline_order}
        # keys older checkpoints do not have are written only when set, so those still load
        if encoder_heads:
            self.config["encoder_heads"] = encoder_heads
        if power != "packet":
            self.config["power"] = power
        if modality_embedding:
            self.config["modality_embedding"] = True
        self.m = symbols_per_token
        self.per_token_power = power == "token"
        self.norm_in = nn.LayerNorm(embed_dim)
        self.kan1 = KANLinear(embed_dim, hidden, grid, spline_order)
        self.modality = _ModalityEmbedding(hidden) if modality_embedding else None
        self.packet = _PacketAttention(hidden, encoder_heads) if encoder_heads else None
        self.norm_mid = nn.LayerNorm(hidden)
        self.kan2 = KANLinear(hidden, 2 * symbols_per_token, grid, spline_order)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None, modality: str | None = None,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        """mask [B, T] (1 = real token); segments [B, T]: packet ids within a row (default: one packet)."""
        h = self.kan1(self.norm_in(tokens))
        if self.modality is not None:
            h = self.modality(h, modality)
        if self.packet is not None:
            h = self.packet(h, mask, segments)
        z = self.kan2(self.norm_mid(h)).view(*tokens.shape[:-1], self.m, 2)
        return normalize_power(z, mask, self.per_token_power)


class ChannelDecoder(nn.Module):
    """equalised symbols [B, T, m, 2] + effective SNR [B] or [B, T] (dB) → tokens [B, T, D]."""

    def __init__(self, embed_dim: int, symbols_per_token: int, hidden: int, grid: int = 5,
                 spline_order: int = 3, context_heads: int = 0, modality_embedding: bool = False):
        super().__init__()
        self.config = {"embed_dim": embed_dim, "symbols_per_token": symbols_per_token,
                       "hidden": hidden, "grid": grid, "spline_order": spline_order}
        if context_heads:  # older checkpoints have no such key: they decode token by token
            self.config["context_heads"] = context_heads
        if modality_embedding:
            self.config["modality_embedding"] = True
        self.kan1 = KANLinear(2 * symbols_per_token + 1, hidden, grid, spline_order)
        self.modality = _ModalityEmbedding(hidden) if modality_embedding else None
        self.norm_mid = nn.LayerNorm(hidden)
        self.kan2 = KANLinear(hidden, embed_dim, grid, spline_order)
        self.norm_context = nn.LayerNorm(hidden) if context_heads else None
        self.context = nn.MultiheadAttention(hidden, context_heads, batch_first=True) if context_heads else None

    def forward(self, symbols: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor | None = None,
                modality: str | None = None) -> torch.Tensor:
        """mask [B, T] (1 = real token): padding is not looked at by the other tokens."""
        b, t = symbols.shape[:2]
        snr_feature = (snr_db.reshape(b, -1, 1) / 10.0).expand(b, t, 1).to(symbols.dtype)
        h = self.kan1(torch.cat([symbols.flatten(2), snr_feature], dim=-1))
        if self.modality is not None:
            h = self.modality(h, modality)
        if self.context is not None:
            q = self.norm_context(h)
            padding = None if mask is None else mask == 0
            h = h + self.context(q, q, q, key_padding_mask=padding, need_weights=False)[0]
        return self.kan2(self.norm_mid(h))
