"""The fast decoder: an SNR-conditioned VAE over part 1's received symbols (MLLM-SC, part 2).

Two networks. A small ``diffusers.AutoencoderKL`` learns a latent space of the scenes (64×64×3 ↔
16×16×4); its decoder turns a latent into pixels. The :class:`SymbolPosterior` is the VAE's encoder
at the receiver: from the received, equalised symbols in their patches (with each patch's share and
ROI flag, as part 1's decoder reads them) and the effective SNR, it gives a Gaussian over the
image's latent, a mean and a log-variance per latent cell. Fast mode decodes the mean; the
log-variance says where the channel left the latent uncertain, and the diffusion refiner
(:mod:`.denoiser`) reads both. The transmitter is part 1's, unchanged: the same packets decode
with part 1's decoder or this one.

Latents are scaled by ``scale`` (one over their standard deviation over training scenes, measured
after training), so the diffusion model works on unit-variance latents.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semcom_cli.core.optional import require
from semcom_cli.reconstruct.imaging.codec import PLANES, SnrResBlock, symbol_planes, upsample_block

__all__ = ["AutoencoderSettings", "build_autoencoder", "SymbolPosterior", "FastDecoder", "LATENT_SIZE"]

LATENT_SIZE = 16


@dataclass(frozen=True)
class AutoencoderSettings:
    channels: tuple[int, ...] = (16, 32, 64)   # AutoencoderKL's block widths: 64 → 32 → 16 pixels
    latent_channels: int = 4
    receiver_width: int = 32                   # the posterior network's width at 8×8 is 4× this


def build_autoencoder(s: AutoencoderSettings):
    require("diffusers")
    from diffusers import AutoencoderKL  # optional heavy: diffusers (generative decoder)

    levels = len(s.channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=tuple(s.channels),
                         layers_per_block=1, latent_channels=s.latent_channels, norm_num_groups=8, sample_size=64)


class SymbolPosterior(nn.Module):
    """Received symbols + effective SNR → (mean, log-variance) of the latent, each [B, C, 16, 16]."""

    def __init__(self, width: int, latent_channels: int):
        super().__init__()
        w = width
        self.inlet = nn.Conv2d(PLANES, 4 * w, 1)
        self.res8a, self.res8b = SnrResBlock(4 * w), SnrResBlock(4 * w)
        self.up16 = upsample_block(4 * w, 2 * w)
        self.res16a, self.res16b = SnrResBlock(2 * w), SnrResBlock(2 * w)
        self.out = nn.Conv2d(2 * w, 2 * latent_channels, 3, padding=1)

    def forward(self, hi, light, uses, roi, snr_db) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inlet(symbol_planes(hi, light, uses, roi))
        x = self.res8b(self.res8a(x, snr_db), snr_db)
        x = self.res16b(self.res16a(self.up16(x), snr_db), snr_db)
        mean, logvar = self.out(x).chunk(2, dim=1)
        return mean, logvar.clamp(-12.0, 6.0)


class FastDecoder(nn.Module):
    """The receiver's VAE: :class:`SymbolPosterior` → latent → AutoencoderKL's decoder → pixels."""

    def __init__(self, s: AutoencoderSettings, scale: float = 1.0):
        super().__init__()
        self.settings = s
        self.autoencoder = build_autoencoder(s)
        self.posterior = SymbolPosterior(s.receiver_width, s.latent_channels)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def image_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, 64, 64] in [0, 1] → their scaled latents (the posterior mean of the image VAE)."""
        return self.autoencoder.encode(images * 2 - 1).latent_dist.mean * self.scale

    def pixels(self, latent: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Scaled latents → images, in [0, 1] (``clamp=False``: unclamped, for a training loss)."""
        x = self.autoencoder.decode(latent / self.scale).sample
        return ((x.clamp(-1, 1) if clamp else x) + 1) / 2

    def forward(self, hi, light, uses, roi, snr_db) -> tuple[torch.Tensor, torch.Tensor]:
        """Received symbols → the posterior over the scaled latent: (mean, log-variance). The network
        is trained before ``scale`` is known, on unscaled latents; the scale is applied here."""
        mean, logvar = self.posterior(hi, light, uses, roi, snr_db)
        return mean * self.scale, logvar + 2 * torch.log(self.scale)
