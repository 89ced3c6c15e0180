"""Rayleigh fading: no line of sight, h ~ CN(0, 1) (Sionna's flat-fading generator).

``rayleigh``: one gain per packet (block fading); a packet caught in a deep fade is lost for any
code. ``rayleigh-iid``: an independent gain per symbol, the link with diversity a multi-carrier
user meets when a packet's symbols are spread over subcarriers further apart than the coherence
bandwidth (fully interleaved); the code then averages over many fades.
"""

from __future__ import annotations

import torch

from semcom_cli.channel.base import Channel, register_channel
from semcom_cli.channel.rng import sionna_block

__all__ = ["Rayleigh", "RayleighPerSymbol", "rayleigh_gains"]


def rayleigh_gains(batch: int, device: torch.device) -> torch.Tensor:
    """[batch] complex64 CN(0, 1) draws: E|h|² = 1."""
    return sionna_block("flat", device)(batch).reshape(batch).to(torch.complex64)


@register_channel
class Rayleigh(Channel):
    name = "rayleigh"

    def gains(self, batch: int, n: int = 1) -> torch.Tensor:
        return rayleigh_gains(batch, self.device)


@register_channel
class RayleighPerSymbol(Channel):
    name = "rayleigh-iid"
    per_symbol = True

    def gains(self, batch: int, n: int = 1) -> torch.Tensor:
        return rayleigh_gains(batch * n, self.device).reshape(batch, n)
