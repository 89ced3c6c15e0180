"""The wireless channel, built on Sionna's blocks: symbols in, noisy symbols out.

Conventions (the same everywhere in semcom):

- Channel inputs are complex symbols with average power 1 per complex symbol.
- SNR is Es/N0 per complex symbol in dB, so the noise variance per complex
  symbol is ``N0 = 10 ** (-snr_db / 10)`` (N0/2 per real dimension).
- One packet (all symbols of one image or sentence) sees one fading coefficient h
  (block fading): ``y = h · x + n``. AWGN is the case h = 1.
- The receiver knows h (perfect channel state information) and equalises with
  one-tap MMSE, ``x̂ = conj(h) · y / (|h|² + N0)``; the channel decoder is also told
  the effective SNR ``|h|² / N0``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .errors import SemcomError

__all__ = [
    "CHANNELS",
    "noise_variance",
    "apply_channel",
    "draw_gains",
    "draw_unit_noise",
    "mmse_equalize",
    "effective_snr_db",
    "seed_channel",
    "check_snr",
]

CHANNELS = ("awgn", "rayleigh", "rician", "none")


def check_snr(snr_db: float) -> float:
    try:
        value = float(snr_db)
    except (TypeError, ValueError):
        raise SemcomError(f"SNR must be a finite number of dB (got {snr_db!r})") from None
    if not math.isfinite(value):
        raise SemcomError(f"SNR must be a finite number of dB (got {snr_db!r})")
    return value


def check_channel(name: str) -> str:
    if name not in CHANNELS:
        raise SemcomError(f"unknown channel '{name}' (choose from: {', '.join(CHANNELS)})")
    return name


def noise_variance(snr_db: torch.Tensor | float) -> torch.Tensor:
    return torch.pow(10.0, -torch.as_tensor(snr_db, dtype=torch.float32) / 10.0)


def seed_channel(seed: int) -> None:
    """Seed Sionna's random generators (the channel's only source of randomness)."""
    from sionna.phy import config

    config.seed = int(seed)


def channel_rng_state() -> dict:
    """The state of Sionna's generators (torch, Python, NumPy), to continue the same noise later."""
    from sionna.phy import config

    return {"torch": config.torch_rng("cpu").get_state(), "python": config.py_rng.getstate(),
            "numpy": config.np_rng.bit_generator.state}


def set_channel_rng_state(state: dict) -> None:
    from sionna.phy import config

    config.torch_rng("cpu").set_state(state["torch"])
    config.py_rng.setstate(state["python"])
    config.np_rng.bit_generator.state = state["numpy"]


_BLOCKS: dict[str, object] = {}


def _block(name: str, factory: Callable[[], object]):
    # Sionna blocks are stateless apart from their config; build each once.
    if name not in _BLOCKS:
        _BLOCKS[name] = factory()
    return _BLOCKS[name]


def _awgn():
    from sionna.phy.channel import AWGN

    return _block("awgn", lambda: AWGN(precision="single", device="cpu"))


def _rayleigh_gains(batch: int) -> torch.Tensor:
    from sionna.phy.channel import GenerateFlatFadingChannel

    gen = _block(
        "flat",
        lambda: GenerateFlatFadingChannel(num_tx_ant=1, num_rx_ant=1, precision="single", device="cpu"),
    )
    return gen(batch).reshape(batch)  # CN(0, 1): E|h|² = 1


def apply_channel(
    x: torch.Tensor,
    snr_db: torch.Tensor | float,
    channel: str,
    rician_k: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Send complex symbols through the channel.

    Args:
        x: [B, N] complex64, average power 1 per symbol.
        snr_db: scalar or [B], Es/N0 in dB.
        channel: one of :data:`CHANNELS`.
        rician_k: Rician K-factor (LOS power / scattered power), for ``rician``.

    Returns:
        y: [B, N] complex64 received symbols; h: [B] complex64 block-fading gains.
    """
    batch = x.shape[0]
    snr = torch.as_tensor(snr_db, dtype=torch.float32).expand(batch)
    h = draw_gains(batch, channel, rician_k)
    if channel == "none":
        return x.clone(), h
    y = _awgn()(h[:, None] * x, noise_variance(snr)[:, None])
    return y, h


def draw_gains(batch: int, channel: str, rician_k: float = 3.0) -> torch.Tensor:
    """One block-fading gain per packet, [batch] complex64 with E|h|² = 1 (ones without fading)."""
    check_channel(channel)
    if channel in ("none", "awgn"):
        return torch.ones(batch, dtype=torch.complex64)
    if channel == "rayleigh":
        return _rayleigh_gains(batch).to(torch.complex64)
    # rician: fixed line-of-sight part plus Rayleigh scattering
    los = math.sqrt(rician_k / (rician_k + 1.0))
    return (los + math.sqrt(1.0 / (rician_k + 1.0)) * _rayleigh_gains(batch)).to(torch.complex64)


def draw_unit_noise(n: int) -> torch.Tensor:
    """[n] complex64 CN(0, 1) samples from Sionna's AWGN block (noise added to zeros)."""
    return _awgn()(torch.zeros(1, n, dtype=torch.complex64), torch.ones(1, 1))[0]


def mmse_equalize(y: torch.Tensor, h: torch.Tensor, snr_db: torch.Tensor | float) -> torch.Tensor:
    """One-tap MMSE equalisation of block-faded symbols. y: [B, N], h: [B]."""
    no = noise_variance(snr_db).reshape(-1, 1)
    h = h.reshape(-1, 1)
    return torch.conj(h) * y / (h.abs() ** 2 + no)


def effective_snr_db(h: torch.Tensor, snr_db: torch.Tensor | float) -> torch.Tensor:
    """SNR after the fading gain, |h|²·Es/N0, in dB (floored to stay finite)."""
    gain_db = 10.0 * torch.log10(h.abs().clamp_min(1e-6) ** 2)
    return torch.as_tensor(snr_db, dtype=torch.float32) + gain_db
