"""Rayleigh block fading: no line of sight, h ~ CN(0, 1) per packet (Sionna's flat-fading generator)."""

from __future__ import annotations

import torch

from .base import Channel, register_channel
from .rng import sionna_block

__all__ = ["Rayleigh", "rayleigh_gains"]


def rayleigh_gains(batch: int, device: torch.device) -> torch.Tensor:
    """[batch] complex64 CN(0, 1) draws: E|h|² = 1."""
    return sionna_block("flat", device)(batch).reshape(batch).to(torch.complex64)


@register_channel
class Rayleigh(Channel):
    name = "rayleigh"

    def gains(self, batch: int) -> torch.Tensor:
        return rayleigh_gains(batch, self.device)
