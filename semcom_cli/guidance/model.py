"""The guidance network: the image's patches attend to the LLM's reading of the query → a map.

A small convolutional encoder turns the 64×64 image (with two coordinate channels, so "top left"
and "leftmost" can be learnt) into patch features at 16×16 and 8×8; at both, every patch attends
to the query's token states from the LLM (:mod:`.query`) and is modulated by the query's pooled
state (FiLM); a decoder with skip connections brings the result back to a logit per pixel. The
importance map over the patches (what the dual-path encoder spends its budget by) is the mean
probability in each patch (:func:`patch_map`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["GuidanceNet", "patch_map", "iou"]


def _pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    keep = mask.to(states.dtype)[..., None]
    return (states * keep).sum(1) / keep.sum(1).clamp_min(1.0)


def _film(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    scale, shift = params.chunk(2, dim=-1)
    return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class _QueryAttention(nn.Module):
    """Patches [B, C, H, W] attend to the query's states [B, L, C]; then a FiLM from its pooled state."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, 2 * channels), nn.SiLU(),
                                 nn.Linear(2 * channels, channels))
        self.film = nn.Linear(channels, 2 * channels)

    def forward(self, x: torch.Tensor, states: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor):
        b, c, h, w = x.shape
        patches = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        heard = self.attention(self.norm(patches), states, states, key_padding_mask=~mask, need_weights=False)[0]
        patches = patches + heard
        patches = patches + self.mlp(patches)
        scale, shift = self.film(pooled).chunk(2, dim=-1)
        patches = patches * (1 + scale[:, None]) + shift[:, None]
        return patches.transpose(1, 2).reshape(b, c, h, w)


class GuidanceNet(nn.Module):
    def __init__(self, query_dim: int, width: int = 16):
        super().__init__()
        w = width  # the channels grow as the grid shrinks: full resolution stays cheap
        self.stem = _block(5, w)                       # 64×64: RGB + x, y
        self.down1 = _block(w, 2 * w)                  # 32×32
        self.down2 = _block(2 * w, 4 * w)              # 16×16
        self.down3 = _block(4 * w, 4 * w)              # 8×8
        # the LLM's hidden states run to norms of hundreds with a few outlier dimensions: normalised first
        self.query_norm = nn.LayerNorm(query_dim)
        self.query16 = nn.Linear(query_dim, 4 * w)
        self.query8 = nn.Linear(query_dim, 4 * w)
        self.attend16 = _QueryAttention(4 * w)
        self.attend8 = _QueryAttention(4 * w)
        self.up8 = _block(8 * w, 4 * w)                # 8 → 16, with the 16×16 skip
        self.up16 = _block(6 * w, 2 * w)               # 16 → 32, with the 32×32 skip
        self.up32 = _block(3 * w, w)                   # 32 → 64, with the 64×64 skip
        self.head = nn.Conv2d(w, 1, 1)
        # the decoder at 32×32 and 64×64 is told the query too (FiLM from its pooled state), so a
        # colour named in the query can select pixels at full resolution
        self.film32 = nn.Linear(query_dim, 2 * 2 * w)
        self.film64 = nn.Linear(query_dim, 2 * w)

    @staticmethod
    def _coords(images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        ys = torch.linspace(-1, 1, h, device=images.device).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=images.device).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([images * 2 - 1, xs, ys], dim=1)

    def forward(self, images: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] in [0, 1], query states [B, L, D] and their mask [B, L] (True = a token)
        → logits [B, H, W] that a pixel belongs to what the query refers to."""
        s64 = self.stem(self._coords(images))
        s32 = self.down1(F.avg_pool2d(s64, 2))
        states = self.query_norm(states)
        q16, q8 = self.query16(states), self.query8(states)
        s16 = self.attend16(self.down2(F.avg_pool2d(s32, 2)), q16, mask, _pooled(q16, mask))
        s8 = self.attend8(self.down3(F.avg_pool2d(s16, 2)), q8, mask, _pooled(q8, mask))
        x = self.up8(torch.cat([F.interpolate(s8, scale_factor=2), s16], 1))
        pooled = _pooled(states, mask)
        x = _film(self.up16(torch.cat([F.interpolate(x, scale_factor=2), s32], 1)), self.film32(pooled))
        x = _film(self.up32(torch.cat([F.interpolate(x, scale_factor=2), s64], 1)), self.film64(pooled))
        return self.head(x)[:, 0]


def patch_map(logits: torch.Tensor, patch: int = 8) -> torch.Tensor:
    """Logits [B, H, W] → the importance of each patch [B, H/patch, W/patch]: its mean probability."""
    return F.avg_pool2d(torch.sigmoid(logits)[:, None], patch)[:, 0]


def iou(logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """IoU [B] of the thresholded map against the referred object's mask [B, H, W] (bool)."""
    pred = torch.sigmoid(logits) > threshold
    inter = (pred & masks).flatten(1).sum(1).float()
    union = (pred | masks).flatten(1).sum(1).float()
    return inter / union.clamp_min(1.0)
