"""The channel's randomness: Sionna's generators, seeded and snapshotted, and its blocks built once.

Every noise and fading draw in semcom comes from Sionna's per-device generators, so
``seed_channel(s)`` fixes them all and a training run can save and restore them.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["seed_channel", "channel_rng_state", "set_channel_rng_state", "sionna_block"]


def seed_channel(seed: int) -> None:
    """Seed Sionna's random generators (the channel's only source of randomness)."""
    from sionna.phy import config  # heavy: Sionna, on first use

    config.seed = int(seed)


def channel_rng_state(device: str | torch.device = "cpu") -> dict:
    """The state of Sionna's generators (torch, Python, NumPy), to continue the same noise later."""
    from sionna.phy import config  # heavy: Sionna, on first use

    return {"torch": config.torch_rng(str(device)).get_state(), "python": config.py_rng.getstate(),
            "numpy": config.np_rng.bit_generator.state}


def set_channel_rng_state(state: dict, device: str | torch.device = "cpu") -> None:
    from sionna.phy import config  # heavy: Sionna, on first use

    config.torch_rng(str(device)).set_state(state["torch"])
    config.py_rng.setstate(state["python"])
    config.np_rng.bit_generator.state = state["numpy"]


def _awgn(device: str):
    from sionna.phy.channel import AWGN  # heavy: Sionna, on first use

    return AWGN(precision="single", device=device)


def _flat_fading(device: str):
    from sionna.phy.channel import GenerateFlatFadingChannel  # heavy: Sionna, on first use

    return GenerateFlatFadingChannel(num_tx_ant=1, num_rx_ant=1, precision="single", device=device)


_FACTORIES: dict[str, Callable[[str], object]] = {"awgn": _awgn, "flat": _flat_fading}
_BLOCKS: dict[tuple[str, str], object] = {}


def sionna_block(kind: str, device: str | torch.device = "cpu"):
    """Sionna's ``awgn`` or ``flat`` (fading) block for a device; stateless, so built once."""
    key = (kind, str(torch.device(device)))
    if key not in _BLOCKS:
        _BLOCKS[key] = _FACTORIES[kind](key[1])
    return _BLOCKS[key]
