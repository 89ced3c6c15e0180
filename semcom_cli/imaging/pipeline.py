"""The reconstruct link as library calls: image (+ query) → symbols → received symbols → image.

:func:`encode_images` runs the guide (when a query is given and the method is ``importance``), turns
its map into a ROI box and an allocation, encodes, and writes each packet as one stream: the side
information's QPSK symbols, then the patches' symbols. :func:`decode_streams` decodes the side
information, recomputes the allocation from the box it read, equalises (one-tap MMSE, perfect
channel knowledge) and decodes the pixels. Both work on batches; the CLI passes one image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..channel import to_complex, to_real
from ..channel.equalizer import mmse_equalize
from .allocation import SIDE_USES, Allocation, Box, allocate, roi_box
from .codec import normalise_power, pack, unpack
from .side import read_side, side_symbols

__all__ = ["Packet", "METHODS", "guide_boxes", "encode_images", "decode_streams"]

METHODS = ("importance", "uniform")


@dataclass
class Packet:
    stream: torch.Tensor        # [N, 2] real: the complex symbols sent, power 1
    allocation: Allocation
    box: Box | None


@torch.no_grad()
def guide_boxes(model, images: torch.Tensor, queries: list[str]):
    """Images [B, 3, 64, 64] and a query each → (patch maps [B, 8, 8], boxes, referents, logits)."""
    from ..guidance.model import patch_map

    logits, referents = model.guide.logits(images, queries)
    maps = patch_map(logits)
    return maps, [roi_box(m, model.roi_threshold) for m in maps], referents, logits


@torch.no_grad()
def encode_images(model, images: torch.Tensor, boxes: list[Box | None], budget: int, roi_share: float,
                  snr_db: torch.Tensor | float, method: str = "importance") -> list[Packet]:
    """Images [B, 3, 64, 64] in [0, 1] with their ROI boxes → one packet each. ``snr_db``: the SNR the
    receiver reports (the encoder is conditioned on it)."""
    guided = method == "importance"
    allocations = [allocate(budget, box, roi_share, guided) for box in boxes]
    uses = torch.stack([a.uses for a in allocations])
    roi = torch.stack([a.roi for a in allocations])
    snr = torch.as_tensor(snr_db, dtype=torch.float32).expand(images.shape[0]).contiguous()
    hi, light = normalise_power(*model.encoder(images, snr), uses, roi)
    side = to_real(side_symbols(boxes)) if guided else None
    packets = []
    for b, alloc in enumerate(allocations):
        data = pack(hi[b], light[b], alloc)
        stream = torch.cat([side[b], data]) if guided else data
        packets.append(Packet(stream, alloc, boxes[b] if guided else None))
    return packets


@torch.no_grad()
def decode_streams(model, streams: list[torch.Tensor], gains: list[torch.Tensor], snr_db: float, budget: int,
                   roi_share: float, method: str = "importance") -> tuple[torch.Tensor, list[Box | None]]:
    """Received streams [N, 2] (real) with their gains (complex: a scalar, or one per symbol) →
    images [B, 3, 64, 64] and the boxes the receiver read."""
    guided = method == "importance"
    ys = [to_complex(y) for y in streams]
    hs = [h.reshape(-1) if h.numel() > 1 else h.reshape(1).expand(y.shape[0]) for y, h in zip(ys, gains)]
    boxes: list[Box | None] = [None] * len(ys)
    if guided:  # every packet's side information decoded in one batch
        boxes = read_side(torch.stack([y[:SIDE_USES] for y in ys]), torch.stack([h[:SIDE_USES] for h in hs]), snr_db)
        ys, hs = [y[SIDE_USES:] for y in ys], [h[SIDE_USES:] for h in hs]
    his, lights, uses, rois, snrs = [], [], [], [], []
    for y, h, box in zip(ys, hs, boxes):
        alloc = allocate(budget, box, roi_share, guided)
        x = mmse_equalize(y[None], h[None], snr_db)[0]
        want = int(alloc.uses.sum())
        if x.shape[0] < want:  # a box read wrong can ask for more symbols than came
            x = torch.cat([x, torch.zeros(want - x.shape[0], dtype=x.dtype)])
        hi, light = unpack(to_real(x[:want]), alloc)
        power = h.abs().pow(2).mean().clamp_min(1e-12)  # the decoder is told the effective SNR
        his.append(hi)
        lights.append(light)
        uses.append(alloc.uses)
        rois.append(alloc.roi)
        snrs.append(snr_db + 10 * torch.log10(power))
    images = model.decoder(torch.stack(his), torch.stack(lights), torch.stack(uses), torch.stack(rois),
                           torch.stack(snrs).float())
    return images, boxes
