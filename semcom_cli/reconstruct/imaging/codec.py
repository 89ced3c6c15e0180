"""The dual-path importance-aware image codec: 64×64 pixels → channel symbols → pixels.

Encoder (:class:`DualPathEncoder`): a convolutional trunk down to 16×16 and 8×8. The **light path**
reads the 8×8 features with a 1×1 convolution: :data:`~.allocation.LIGHT_SYMBOLS` complex symbols
per patch. The **high-fidelity path** branches off at 16×16, folds each patch's 2×2 cells into one
(space to depth, so nothing is pooled away) and has its own residual block: up to
:data:`~.allocation.HI_SYMBOLS` per patch, enough to carry a patch's 192 pixel values. A patch sends
the first ``k`` symbols of its path (the allocation's ``k``): training draws ``k`` at random for
every patch, so each path learns to put what matters most first (a prefix code). The symbols a
packet sends are scaled to average power 1 per complex symbol.

Decoder (:class:`ImageDecoder`): the received symbols back in their patches (zeros where nothing
was sent), with each patch's share of each path and its ROI flag, → a convolutional decoder up to
64×64. Encoder and decoder are both told the SNR (FiLM at every level): the effective SNR after
equalisation at the receiver, the SNR the receiver reports at the transmitter.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from semcom_cli.io.patches import GRID, HI_SYMBOLS, LIGHT_SYMBOLS, Allocation

__all__ = ["DualPathEncoder", "ImageDecoder", "SnrFilm", "SnrResBlock", "upsample_block", "downsample_block",
           "symbol_planes", "sent_mask", "normalise_power", "pack", "unpack", "pack_rows", "unpack_rows"]

PLANES = 2 * HI_SYMBOLS + 2 * LIGHT_SYMBOLS + 3  # what a receiver reads per patch (symbol_planes)


class SnrFilm(nn.Module):
    """Scale and shift from the SNR (dB), near identity at the start."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, 2 * channels))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        scale, shift = self.net(snr_db[:, None] / 20.0).chunk(2, dim=-1)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class SnrResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(8, channels),
                                  nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))
        self.film = SnrFilm(channels)

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.film(self.body(x), snr_db))


def downsample_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


def upsample_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, 4 * cout, 3, padding=1), nn.PixelShuffle(2), nn.GroupNorm(8, cout), nn.SiLU())


class DualPathEncoder(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w // 2, 3, padding=1), nn.SiLU())
        self.down32, self.down16 = downsample_block(w // 2, w), downsample_block(w, 2 * w)
        self.down8 = downsample_block(2 * w, 2 * w)
        self.res16, self.res8 = SnrResBlock(2 * w), SnrResBlock(2 * w)
        self.light = nn.Conv2d(2 * w, 2 * LIGHT_SYMBOLS, 1)
        self.hi_fold = nn.Conv2d(8 * w, 4 * w, 1)  # 16×16 → 8×8 by space to depth
        self.hi_res = SnrResBlock(4 * w)
        self.hi = nn.Conv2d(4 * w, 2 * HI_SYMBOLS, 1)

    def forward(self, images: torch.Tensor, snr_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, 3, 64, 64] in [0, 1] → (hi [B, HI, 2, 8, 8], light [B, LIGHT, 2, 8, 8]), unscaled."""
        x = self.stem(images * 2 - 1)
        x16 = self.res16(self.down16(self.down32(x)), snr_db)
        x8 = self.res8(self.down8(x16), snr_db)
        hi = self.hi(self.hi_res(self.hi_fold(F.pixel_unshuffle(x16, 2)), snr_db))
        b = images.shape[0]
        return hi.view(b, HI_SYMBOLS, 2, GRID, GRID), self.light(x8).view(b, LIGHT_SYMBOLS, 2, GRID, GRID)


class ImageDecoder(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.inlet = nn.Conv2d(PLANES, 4 * w, 1)
        self.res8a, self.res8b = SnrResBlock(4 * w), SnrResBlock(4 * w)
        self.up16, self.res16 = upsample_block(4 * w, 2 * w), SnrResBlock(2 * w)
        self.up32, self.res32 = upsample_block(2 * w, w), SnrResBlock(w)
        self.up64 = upsample_block(w, w // 2)
        self.out = nn.Conv2d(w // 2, 3, 3, padding=1)

    def forward(self, hi: torch.Tensor, light: torch.Tensor, uses: torch.Tensor, roi: torch.Tensor,
                snr_db: torch.Tensor) -> torch.Tensor:
        """Received symbols in their patches (hi [B, HI, 2, 8, 8], light [B, LIGHT, 2, 8, 8], zeros
        where not sent), symbols per patch [B, 64], ROI flags [B, 64] → images [B, 3, 64, 64] in [0, 1]."""
        x = symbol_planes(hi, light, uses, roi)
        x = self.res8b(self.res8a(self.inlet(x), snr_db), snr_db)
        x = self.res16(self.up16(x), snr_db)
        x = self.res32(self.up32(x), snr_db)
        return torch.sigmoid(self.out(self.up64(x)))


def symbol_planes(hi: torch.Tensor, light: torch.Tensor, uses: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """What a receiver network reads per patch, as planes over the 8×8 patches [B, PLANES, 8, 8]: the
    received symbols of both paths (zeros where nothing came), the ROI flag, and each path's share."""
    b = hi.shape[0]
    roi = roi.view(b, 1, GRID, GRID).float()
    k = uses.view(b, 1, GRID, GRID).float()
    shares = [roi * k / HI_SYMBOLS, (1 - roi) * k / LIGHT_SYMBOLS]
    return torch.cat([hi.flatten(1, 2), light.flatten(1, 2), roi, *shares], 1)


def sent_mask(uses: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symbols per patch [B, 64] and ROI flags [B, 64] → which symbols each path sends:
    (hi [B, HI, 1, 8, 8], light [B, LIGHT, 1, 8, 8]) bool."""
    b = uses.shape[0]
    k = uses.view(b, 1, 1, GRID, GRID)
    r = roi.view(b, 1, 1, GRID, GRID)
    hi = (torch.arange(HI_SYMBOLS, device=uses.device).view(1, -1, 1, 1, 1) < k) & r
    light = (torch.arange(LIGHT_SYMBOLS, device=uses.device).view(1, -1, 1, 1, 1) < k) & ~r
    return hi, light


def normalise_power(hi: torch.Tensor, light: torch.Tensor, uses: torch.Tensor, roi: torch.Tensor):
    """Zero what is not sent and scale what is to average power 1 per complex symbol, per image."""
    mh, ml = sent_mask(uses, roi)
    hi, light = hi * mh, light * ml
    power = (hi.pow(2).flatten(1).sum(1) + light.pow(2).flatten(1).sum(1)) / uses.sum(1).clamp_min(1)
    scale = power.clamp_min(1e-12).rsqrt().view(-1, 1, 1, 1, 1)
    return hi * scale, light * scale


def _per_patch(hi: torch.Tensor, light: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """Each patch's symbols on its path, light rows zero-padded to HI: [B, 64, HI, 2]."""
    hi_rows = hi.flatten(3).permute(0, 3, 1, 2)        # [B, 64, HI, 2]
    light_rows = F.pad(light.flatten(3).permute(0, 3, 1, 2), (0, 0, 0, HI_SYMBOLS - LIGHT_SYMBOLS))
    return torch.where(roi[:, :, None, None], hi_rows, light_rows)


def _slot_mask(uses: torch.Tensor) -> torch.Tensor:
    """[B, 64, HI] bool: which of each patch's symbol slots are sent (its first ``k``)."""
    return torch.arange(HI_SYMBOLS, device=uses.device) < uses[..., None]


def pack_rows(hi: torch.Tensor, light: torch.Tensor, uses: torch.Tensor, roi: torch.Tensor) -> list[torch.Tensor]:
    """A batch's sent symbols as one stream [N_b, 2] each, patch by patch in raster order, each patch its
    first ``k`` symbols on its path (hi [B, HI, 2, 8, 8], light [B, LIGHT, 2, 8, 8], uses [B, 64], roi [B, 64])."""
    sent = _per_patch(hi, light, roi)[_slot_mask(uses)]  # rows one after the other, in raster order
    return list(sent.split(uses.sum(1).tolist()))


def unpack_rows(received: torch.Tensor, uses: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`pack_rows` under the receiver's allocations: the streams [B, N, 2] (zero-padded at
    the end; a row holding fewer symbols than its allocation asks for is padded with zeros) → (hi [B, HI, 2,
    8, 8], light [B, LIGHT, 2, 8, 8])."""
    b = uses.shape[0]
    want = uses.sum(1)
    longest = int(want.max()) if b else 0
    if received.shape[1] < longest:  # a box read wrong can ask for more symbols than came
        received = F.pad(received, (0, 0, 0, longest - received.shape[1]))
    taken = torch.arange(received.shape[1], device=uses.device) < want[:, None]
    per_patch = torch.zeros(b, GRID * GRID, HI_SYMBOLS, 2, dtype=received.dtype, device=received.device)
    per_patch[_slot_mask(uses)] = received[taken]
    hi = (per_patch * roi[:, :, None, None]).permute(0, 2, 3, 1).reshape(b, HI_SYMBOLS, 2, GRID, GRID)
    light = (per_patch[:, :, :LIGHT_SYMBOLS] * ~roi[:, :, None, None]).permute(0, 2, 3, 1)
    return hi, light.reshape(b, LIGHT_SYMBOLS, 2, GRID, GRID)


def pack(hi: torch.Tensor, light: torch.Tensor, alloc: Allocation) -> torch.Tensor:
    """One image's stream [N, 2] (:func:`pack_rows` for one)."""
    return pack_rows(hi[None], light[None], alloc.uses[None], alloc.roi[None])[0]


def unpack(stream: torch.Tensor, alloc: Allocation) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`pack` under the receiver's allocation → (hi [HI, 2, 8, 8], light [LIGHT, 2, 8, 8])."""
    hi, light = unpack_rows(stream[None], alloc.uses[None], alloc.roi[None])
    return hi[0], light[0]
