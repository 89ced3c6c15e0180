"""Vision encoder: a small CNN from a 64×64 RGB image to ``n_tokens`` feature vectors."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VisionEncoder"]


class VisionEncoder(nn.Module):
    """images [B, 3, 64, 64] in [0, 1] → features [B, n_tokens, feature_dim]."""

    def __init__(self, channels: list[int], feature_dim: int, n_tokens: int):
        super().__init__()
        self.config = {"channels": list(channels), "feature_dim": feature_dim, "n_tokens": n_tokens}
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:  # each block halves the resolution
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)  # keep a coarse layout: where the shape is matters
        self.head = nn.Linear(c_in * 16, n_tokens * feature_dim)
        self.n_tokens, self.feature_dim = n_tokens, feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.convs(images * 2.0 - 1.0)).flatten(1)
        return self.head(h).view(-1, self.n_tokens, self.feature_dim)
