"""Rician block fading: a fixed line-of-sight part plus Rayleigh scattering, E|h|² = 1."""

from __future__ import annotations

import math

import torch

from semcom_cli.channel.base import Channel, register_channel
from semcom_cli.channel.rayleigh import rayleigh_gains
from semcom_cli.core.errors import SemcomError

__all__ = ["Rician", "DEFAULT_K"]

DEFAULT_K = 3.0  # line-of-sight power over scattered power


@register_channel
class Rician(Channel):
    """``h = √(K/(K+1)) + √(1/(K+1))·g``, g ~ CN(0, 1)."""

    name = "rician"

    def __init__(self, rician_k: float = DEFAULT_K, device: str | torch.device = "cpu"):
        super().__init__(device)
        if not (math.isfinite(rician_k) and rician_k >= 0):
            raise SemcomError(f"the Rician K-factor must be a finite number ≥ 0 (got {rician_k})")
        self.k = float(rician_k)

    def params(self) -> dict:
        return {"rician_k": self.k}

    def gains(self, batch: int, n: int = 1) -> torch.Tensor:
        los = math.sqrt(self.k / (self.k + 1.0))
        return (los + math.sqrt(1.0 / (self.k + 1.0)) * rayleigh_gains(batch, self.device)).to(torch.complex64)
