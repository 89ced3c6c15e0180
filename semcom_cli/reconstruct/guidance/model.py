"""The guidance network: the image searched for the query's referent → a map of where it is.

The referent (colour, shape, where, size: what the LLM read the query to mean, :mod:`.referent`)
is embedded field by field and summed. A small U-Net over the 64×64 image (with two coordinate
channels, so "top left" and "leftmost" can be learnt) is modulated by it (FiLM) at every level; at
8×8 the patches and the referent, as one more token, pass two self-attention layers, so that
"the leftmost" or "the largest" can compare every object with every other. The output is a logit
per pixel; the importance map over the patches (what the dual-path encoder spends its budget by)
is the mean probability in each patch (:func:`patch_map`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from semcom_cli.data.scenes import REFERENT_VALUES

__all__ = ["GuidanceNet", "patch_map", "iou", "iou_by_kind"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class _Film(nn.Module):
    def __init__(self, cond: int, channels: int):
        super().__init__()
        self.linear = nn.Linear(cond, 2 * channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(cond).chunk(2, dim=-1)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class GuidanceNet(nn.Module):
    def __init__(self, width: int = 16, embed: int = 64, layers: int = 2):
        super().__init__()
        w = width  # the channels grow as the grid shrinks: full resolution stays cheap
        self.fields = nn.ModuleList(nn.Embedding(len(v), embed) for v in REFERENT_VALUES.values())
        self.stem = _block(5, w)                       # 64×64: RGB + x, y
        self.down1 = _block(w, 2 * w)                  # 32×32
        self.down2 = _block(2 * w, 4 * w)              # 16×16
        self.down3 = _block(4 * w, 4 * w)              # 8×8
        self.film = nn.ModuleList(_Film(embed, c) for c in (w, 2 * w, 4 * w, 4 * w, 4 * w, 2 * w, w))
        self.token = nn.Linear(embed, 4 * w)
        self.position = nn.Parameter(torch.zeros(1, 64 + 1, 4 * w))
        layer = nn.TransformerEncoderLayer(4 * w, 4, 4 * 4 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.attend = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.up8 = _block(8 * w, 4 * w)                # 8 → 16, with the 16×16 skip
        self.up16 = _block(6 * w, 2 * w)               # 16 → 32, with the 32×32 skip
        self.up32 = _block(3 * w, w)                   # 32 → 64, with the 64×64 skip
        self.head = nn.Conv2d(w, 1, 1)

    @staticmethod
    def _coords(images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        ys = torch.linspace(-1, 1, h, device=images.device).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=images.device).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([images * 2 - 1, xs, ys], dim=1)

    def embed(self, referents: torch.Tensor) -> torch.Tensor:
        """Referent indices [B, 4] (:meth:`semcom_cli.data.scenes.Referent.indices`) → [B, embed]."""
        return sum(e(referents[:, k]) for k, e in enumerate(self.fields))

    def forward(self, images: torch.Tensor, referents: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, 64, 64] in [0, 1] and referent indices [B, 4] → logits [B, 64, 64] that a
        pixel belongs to the object the referent names."""
        r = self.embed(referents)
        f = iter(self.film)
        s64 = next(f)(self.stem(self._coords(images)), r)
        s32 = next(f)(self.down1(F.avg_pool2d(s64, 2)), r)
        s16 = next(f)(self.down2(F.avg_pool2d(s32, 2)), r)
        s8 = next(f)(self.down3(F.avg_pool2d(s16, 2)), r)
        b, c, h, w = s8.shape
        tokens = torch.cat([self.token(r)[:, None], s8.flatten(2).transpose(1, 2)], 1) + self.position
        s8 = self.attend(tokens)[:, 1:].transpose(1, 2).reshape(b, c, h, w)
        x = next(f)(self.up8(torch.cat([F.interpolate(s8, scale_factor=2), s16], 1)), r)
        x = next(f)(self.up16(torch.cat([F.interpolate(x, scale_factor=2), s32], 1)), r)
        x = next(f)(self.up32(torch.cat([F.interpolate(x, scale_factor=2), s64], 1)), r)
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


def iou_by_kind(values: list[float], kinds: list[str]) -> dict[str, float]:
    """Mean IoU per query kind."""
    return {k: sum(v for v, kk in zip(values, kinds) if kk == k) / kinds.count(k) for k in sorted(set(kinds))}
