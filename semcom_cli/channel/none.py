"""No channel at all: the symbols arrive as sent (the noiseless reference)."""

from __future__ import annotations

import torch

from semcom_cli.channel.base import Channel, register_channel

__all__ = ["NoChannel"]


@register_channel
class NoChannel(Channel):
    """``y = x``; h = 1 and the SNR is ignored."""

    name = "none"
    noisy = False

    def gains(self, batch: int, n: int = 1) -> torch.Tensor:
        return torch.ones(batch, dtype=torch.complex64, device=self.device)
