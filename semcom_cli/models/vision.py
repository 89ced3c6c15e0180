"""Vision encoder: a small CNN from a 64×64 RGB image to ``n_tokens`` feature vectors."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VisionEncoder"]


class VisionEncoder(nn.Module):
    """images [B, 3, 64, 64] in [0, 1] → features [B, n_tokens, feature_dim].

    ``pool: grid`` keeps a 4×4 layout of the last feature map (older checkpoints); ``global`` pools
    it over the whole picture (mean and max), so a shape is read the same wherever it lies and
    whatever its size: what users' own pictures need.
    """

    def __init__(self, channels: list[int], feature_dim: int, n_tokens: int, strides: list[int] | None = None,
                 pool: str = "grid"):
        super().__init__()
        strides = list(strides) if strides else [2] * len(channels)
        self.config = {"channels": list(channels), "feature_dim": feature_dim, "n_tokens": n_tokens}
        if strides != [2] * len(channels) or pool != "grid":  # older checkpoints have neither key
            self.config.update(strides=strides, pool=pool)
        layers: list[nn.Module] = []
        c_in = 3
        for c_out, stride in zip(channels, strides):  # a stride-2 block halves the resolution
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.global_pool = pool == "global"
        self.pool = None if self.global_pool else nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(c_in * (2 if self.global_pool else 16), n_tokens * feature_dim)
        self.n_tokens, self.feature_dim = n_tokens, feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.convs(images * 2.0 - 1.0)
        if self.global_pool:
            h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        else:
            h = self.pool(h).flatten(1)
        return self.head(h).view(-1, self.n_tokens, self.feature_dim)
