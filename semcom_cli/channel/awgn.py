"""Additive white Gaussian noise, h = 1."""

from __future__ import annotations

import torch

from semcom_cli.channel.base import Channel, register_channel

__all__ = ["AWGN"]


@register_channel
class AWGN(Channel):
    """``y = x + n``, n ~ CN(0, N0)."""

    name = "awgn"

    def gains(self, batch: int, n: int = 1) -> torch.Tensor:
        return torch.ones(batch, dtype=torch.complex64, device=self.device)
