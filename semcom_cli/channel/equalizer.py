"""The receiver's front end: one-tap MMSE equalisation with perfect channel knowledge.

``x̂ = conj(h) · y / (|h|² + N0)``; the channel decoder is also told the effective
SNR ``|h|² / N0`` of each packet.
"""

from __future__ import annotations

import torch

from semcom_cli.channel.base import noise_variance, to_complex, to_real

__all__ = ["mmse_equalize", "effective_snr_db", "equalize_symbols"]


def mmse_equalize(y: torch.Tensor, h: torch.Tensor, snr_db: torch.Tensor | float) -> torch.Tensor:
    """y: [B, N] complex, h: [B] or [B, N] complex, snr_db: scalar or [B] → x̂ [B, N] complex."""
    no = noise_variance(snr_db, y.device).reshape(-1, 1)
    h = h.reshape(y.shape[0], -1)
    return torch.conj(h) * y / (h.abs() ** 2 + no)


def effective_snr_db(h: torch.Tensor, snr_db: torch.Tensor | float) -> torch.Tensor:
    """SNR after the fading gain, |h|²·Es/N0, in dB (floored to stay finite). h: [B] → [B]."""
    gain_db = 10.0 * torch.log10(h.abs().clamp_min(1e-6) ** 2)
    return torch.as_tensor(snr_db, dtype=torch.float32, device=h.device) + gain_db


def equalize_symbols(y: torch.Tensor, h: torch.Tensor, snr_db: torch.Tensor | float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Received packets [B, T, m, 2] → equalised symbols [B, T, m, 2] and effective SNR (dB): [B] for
    block fading (h [B]); per token, [B, T], for per-symbol gains (h [B, T, m]: the token's mean |h|²)."""
    b = y.shape[0]
    snr = torch.as_tensor(snr_db, dtype=torch.float32, device=y.device).reshape(-1)
    snr = snr.expand(b) if snr.numel() == 1 else snr
    x_hat = mmse_equalize(to_complex(y).reshape(b, -1), h, snr)
    if h.dim() == 3:
        power = h.abs().pow(2).mean(-1).clamp_min(1e-12)  # [B, T]
        return to_real(x_hat).reshape(y.shape), snr[:, None] + 10.0 * torch.log10(power)
    return to_real(x_hat).reshape(y.shape), effective_snr_db(h, snr)
