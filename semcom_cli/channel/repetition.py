"""Variable-rate packets: each token sent ``r`` times (0 = left out), the copies combined at the receiver.

A packet of T tokens with repeats ``r_t`` uses ``m · Σ r_t`` channel uses, every copy at power 1
per complex symbol. All copies of one packet travel in one block (one fading gain for a block-
fading kind, a gain per symbol for a per-symbol kind), each with its own noise. The receiver
combines the copies by maximum-ratio combining, which hands the equaliser one observation per
symbol that is exactly as informative as the copies:

    y = Σ_k conj(h_k) · y_k / g,   g = sqrt(Σ_k |h_k|²),   so   y = g · x + n,  n ~ CN(0, N0).

That pair (y, g) is what a received variable-rate file stores (g as a per-symbol gain), and what
:func:`semcom_cli.channel.equalize_symbols` takes; a left-out token has g = 0 and y = 0.
"""

from __future__ import annotations

import torch

from semcom_cli.channel.base import Channel, to_complex, to_real

__all__ = ["send_repeated", "combined_uses"]


def combined_uses(repeats: torch.Tensor, symbols_per_token: int) -> torch.Tensor:
    """Channel uses of each packet [B] for repeats [B, T]."""
    return repeats.sum(-1) * symbols_per_token


def send_repeated(channel: Channel, symbols: torch.Tensor, repeats: torch.Tensor,
                  snr_db: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Packets of real symbols [B, T, m, 2], token t sent ``repeats[b, t]`` times → the combined
    observation y [B, T, m, 2] and its gain g [B, T, m] (complex with zero phase; 0 where a token was
    left out). Differentiable in ``symbols`` (the rate stage trains through it)."""
    b, t, m, _ = symbols.shape
    repeats = repeats.to(symbols.device).long()
    copies = max(int(repeats.max()), 1) if repeats.numel() else 1
    # copy k of every token side by side in one packet: [B, copies·T, m, 2]; unsent copies are zero
    # and their channel outputs are dropped below (they are not sent, so they count no uses)
    present = torch.stack([repeats > k for k in range(copies)], dim=1)  # [B, copies, T]
    x = (symbols[:, None] * present[..., None, None].to(symbols.dtype)).reshape(b, copies * t, m, 2)
    y, h = channel.send(x, snr_db)
    y = to_complex(y).reshape(b, copies, t, m)
    h = (h.reshape(b, copies, t, m) if h.dim() == 3 else h.reshape(b, 1, 1, 1).expand(b, copies, t, m))
    h = h * present[..., None].to(h.dtype)
    power = h.abs().pow(2).sum(1)  # [B, T, m]
    g = power.sqrt()
    combined = (torch.conj(h) * y).sum(1) / g.clamp_min(1e-12)
    combined = torch.where(g > 0, combined, torch.zeros_like(combined))
    return to_real(combined), g.to(torch.complex64)
