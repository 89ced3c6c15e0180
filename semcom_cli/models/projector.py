"""Projectors: modality features → semantic tokens in the LLM's embedding space.

Registered by name so a preset can pick one (``projector.kind``): ``kan`` is
M4SC's KAN projector, ``mlp`` the baseline it is compared with.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from semcom_cli.core.registry import Registry
from semcom_cli.models.kan import KANLinear

__all__ = ["PROJECTORS", "register_projector", "build_projector", "KANProjector", "MLPProjector"]

PROJECTORS: Registry[Callable[..., nn.Module]] = Registry("projector")


def register_projector(name: str):
    return PROJECTORS.register(name)


@register_projector("kan")
class KANProjector(nn.Module):
    """features [..., in_dim] → tokens [..., embed_dim] through one KAN layer."""

    def __init__(self, in_dim: int, embed_dim: int, grid: int = 5, spline_order: int = 3):
        super().__init__()
        self.config = {"kind": "kan", "in_dim": in_dim, "embed_dim": embed_dim, "grid": grid,
                       "spline_order": spline_order}
        self.norm = nn.LayerNorm(in_dim)
        self.kan = KANLinear(in_dim, embed_dim, grid, spline_order)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.kan(self.norm(features))


@register_projector("mlp")
class MLPProjector(nn.Module):
    """The MLP baseline: two linear layers with a GELU, about as many parameters as the KAN."""

    def __init__(self, in_dim: int, embed_dim: int, grid: int = 5, spline_order: int = 3):
        super().__init__()
        self.config = {"kind": "mlp", "in_dim": in_dim, "embed_dim": embed_dim, "grid": grid,
                       "spline_order": spline_order}
        hidden = in_dim * (grid + spline_order)
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, embed_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def build_projector(kind: str, **kwargs) -> nn.Module:
    return PROJECTORS.lookup(kind)(**kwargs)
