"""The channel as one object per kind: symbols in, noisy symbols out, on Sionna's blocks.

Conventions (the same everywhere in semcom):

- Channel inputs are complex symbols with average power 1 per complex symbol.
- SNR is Es/N0 per complex symbol in dB, so the noise variance per complex
  symbol is ``N0 = 10 ** (-snr_db / 10)`` (N0/2 per real dimension).
- One packet (all symbols of one image or sentence) sees one fading coefficient h
  (block fading): ``y = h · x + n``. AWGN is the case h = 1. A kind with
  ``per_symbol = True`` draws an independent h for every symbol instead (a link with
  diversity, such as a multi-carrier one whose symbols lie on far-apart subcarriers).
- Files and the models hold complex symbols as reals with a trailing dimension of
  2 (:func:`to_real`, :func:`to_complex`); a gain is stored as a [2] tensor, a
  per-symbol gain as [T, m, 2] like the symbols.

A kind is a subclass registered by name (:func:`register_channel`); presets, flags
and files name it, and :func:`make_channel` builds it with its parameters.
"""

from __future__ import annotations

import inspect
import math
from typing import ClassVar

import torch

from semcom_cli.channel.rng import sionna_block
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import check_snr_range
from semcom_cli.core.registry import Registry

__all__ = ["Channel", "CHANNELS", "register_channel", "make_channel", "check_channel", "check_snr",
           "noise_variance", "to_complex", "to_real", "gain_to_real", "gain_from_real"]

CHANNELS: Registry[type["Channel"]] = Registry("channel")


def register_channel(cls: type["Channel"]) -> type["Channel"]:
    """Class decorator: make a channel kind known to presets, flags and files by its ``name``."""
    return CHANNELS.register(cls.name, cls)


def check_channel(name: str) -> str:
    return CHANNELS.check(name)


def make_channel(name: str, params: dict | None = None, device: str | torch.device = "cpu") -> "Channel":
    """The channel ``name`` with those of ``params`` it takes (e.g. ``rician_k``); others are ignored,
    so one preset section configures every kind."""
    cls = CHANNELS[check_channel(name)]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in (params or {}).items() if k in accepted}, device=device)


def check_snr(snr_db: float) -> float:
    """An SNR in dB: finite and within ``SNR_RANGE_DB`` (beyond it noise or signal leaves float32)."""
    try:
        value = float(snr_db)
    except (TypeError, ValueError, OverflowError):
        raise SemcomError(f"SNR must be a finite number of dB (got {str(snr_db)[:40]!r})") from None
    if not math.isfinite(value):
        raise SemcomError(f"SNR must be a finite number of dB (got {str(snr_db)[:40]!r})")
    return check_snr_range(value)


def noise_variance(snr_db: torch.Tensor | float, device: str | torch.device | None = None) -> torch.Tensor:
    return torch.pow(10.0, -torch.as_tensor(snr_db, dtype=torch.float32, device=device) / 10.0)


def to_complex(z: torch.Tensor) -> torch.Tensor:
    """[..., 2] reals → [...] complex64."""
    return torch.view_as_complex(z.float().contiguous())


def to_real(x: torch.Tensor) -> torch.Tensor:
    """[...] complex → [..., 2] reals."""
    return torch.view_as_real(x.to(torch.complex64)).clone()


def gain_to_real(h: torch.Tensor) -> torch.Tensor:
    """One packet's gain (complex scalar, or [T, m] per symbol) → the [2] or [T, m, 2] tensor a
    received file stores."""
    h = h.to(torch.complex64)
    return to_real(h) if h.dim() >= 2 else torch.view_as_real(h.reshape(1))[0]


def gain_from_real(g: torch.Tensor) -> torch.Tensor:
    """A received file's [2] gain → [1] complex64; a per-symbol [T, m, 2] gain → [1, T, m]."""
    h = torch.view_as_complex(g.float().contiguous())
    return h.reshape(1) if h.dim() == 0 else h[None]


class Channel:
    """A block-fading link ``y = h·x + n``: one gain per packet with E|h|² = 1, noise CN(0, N0).

    Subclasses set ``name`` and draw :meth:`gains`; ``noisy = False`` passes symbols through.
    Randomness comes from Sionna's generators (:mod:`semcom_cli.channel.rng`).
    """

    name: ClassVar[str] = ""
    noisy: ClassVar[bool] = True
    per_symbol: ClassVar[bool] = False  # True: gains() draws one gain per symbol, [batch, n]

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def gains(self, batch: int, n: int = 1) -> torch.Tensor:
        """[batch] complex64 block-fading gains, one per packet of ``n`` symbols (per-symbol kinds:
        [batch, n])."""
        raise NotImplementedError

    def params(self) -> dict:
        """The parameters a received file records (e.g. the Rician K-factor); none by default."""
        return {}

    def __call__(self, x: torch.Tensor, snr_db: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, N] complex64 at power 1; snr_db: scalar or [B] → (y [B, N] complex64,
        h [B] complex64, or [B, N] for a per-symbol kind)."""
        batch = x.shape[0]
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=x.device).expand(batch)
        h = self.gains(batch, x.shape[1]) if self.per_symbol else self.gains(batch)
        if not self.noisy:
            return x.clone(), h
        awgn = sionna_block("awgn", x.device)
        return awgn((h if h.dim() == 2 else h[:, None]) * x, noise_variance(snr)[:, None]), h

    def send(self, symbols: torch.Tensor, snr_db: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Packets of real symbols [B, T, m, 2] → (y [B, T, m, 2], h [B] complex64, or [B, T, m]
        for a per-symbol kind)."""
        b = symbols.shape[0]
        y, h = self(to_complex(symbols).reshape(b, -1), snr_db)
        return to_real(y).reshape(symbols.shape), (h.reshape(symbols.shape[:-1]) if h.dim() == 2 else h)

    def unit_noise(self, n: int) -> torch.Tensor:
        """[n] complex64 CN(0, 1) samples, for links whose draws are paired (:meth:`through`)."""
        awgn = sionna_block("awgn", self.device)
        return awgn(torch.zeros(1, n, dtype=torch.complex64, device=self.device),
                    torch.ones(1, 1, device=self.device))[0]

    def through(self, x: torch.Tensor, h: torch.Tensor, unit_noise: torch.Tensor, snr_db: float,
                repeats: int | list[int] = 1) -> torch.Tensor:
        """``y = h·x + √(N0/r)·n`` with given draws: x [N, m, 2] reals, unit noise [N, m] complex,
        r copies per row averaged at the receiver. Used where two schemes must see the same noise."""
        if x.shape[0] == 0 or not self.noisy:
            return x.clone()
        r = torch.as_tensor(repeats, dtype=torch.float32, device=x.device).reshape(-1, 1)
        y = h * to_complex(x) + torch.sqrt(noise_variance(snr_db, x.device) / r) * unit_noise
        return torch.view_as_real(y).clone()
