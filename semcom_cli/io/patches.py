"""From an importance map to channel uses per patch, and what the receiver must be told.

The 64×64 image is cut into 8×8 patches of 8×8 pixels. The region of interest (ROI) is the
smallest box of patches that holds every patch whose importance reaches ``threshold``; the ROI's
patches go through the encoder's high-fidelity path, the rest through its light path. Of a packet's
budget, the side information comes first: the box, :data:`BOX_BITS` bits (a flag and four 3-bit
patch coordinates), protected by a 5G LDPC code and sent in QPSK
(:mod:`semcom_cli.reconstruct.imaging.side`), in :data:`SIDE_USES` channel uses or, where the
reported SNR is low, more (:data:`SIDE_USES_CHOICES`). Of the rest, the ROI gets the share
``roi_share`` and the background what is left, each spread evenly over its patches (the first
patches in raster order take the remainder), up to what a path can carry per patch; what one part
cannot use goes to the other.

A packet without guidance (``uniform``) sends no side information: every patch takes the light path
and an even share of the whole budget. The receiver recomputes the allocation from the box it
decoded, the budget and ``roi_share`` (both in the packet's header, fixed for a session), so a box
lost to noise misplaces the symbols, as it would on a real link.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semcom_cli.core.errors import SemcomError

__all__ = ["IMAGE_SIZE", "PATCH", "GRID", "HI_SYMBOLS", "LIGHT_SYMBOLS", "BOX_BITS", "SIDE_USES", "SIDE_USES_CHOICES",
           "ROI_THRESHOLD",
           "Box",
           "roi_box", "box_of_mask", "Allocation", "allocate", "allocate_rows", "check_budget", "check_roi_share"]

IMAGE_SIZE = 64
PATCH = 8
GRID = IMAGE_SIZE // PATCH       # 8×8 patches
HI_SYMBOLS = 96                  # most complex symbols one ROI patch can take (its 192 pixel values)
LIGHT_SYMBOLS = 32               # most one background patch can take
BOX_BITS = 16                    # flag + 4 × 3-bit coordinates, padded to the shortest 5G LDPC block
SIDE_USES = 24                   # BOX_BITS at code rate 1/3 in QPSK: the shortest side information
SIDE_USES_CHOICES = (24, 48, 96)  # its lengths: longer where the reported SNR is low (imaging.side.side_uses_for)
MIN_BUDGET = SIDE_USES + GRID * GRID  # at least one symbol per patch besides the side information
# a patch is in the region when the map's mean over it reaches this: about 6 of its 64 pixels, so an
# object's edge patches count, a stray pixel does not
ROI_THRESHOLD = 0.1


@dataclass(frozen=True)
class Box:
    """A box of patches, inclusive: columns x0…x1, rows y0…y1, in 0…GRID-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self):
        if not (0 <= self.x0 <= self.x1 < GRID and 0 <= self.y0 <= self.y1 < GRID):
            raise ValueError(f"not a box of patches: {self}")

    def patches(self) -> torch.Tensor:
        """[GRID, GRID] bool: the patches inside."""
        inside = torch.zeros(GRID, GRID, dtype=torch.bool)
        inside[self.y0 : self.y1 + 1, self.x0 : self.x1 + 1] = True
        return inside

    def pixels(self) -> torch.Tensor:
        """[IMAGE_SIZE, IMAGE_SIZE] bool: the pixels inside."""
        return self.patches().repeat_interleave(PATCH, 0).repeat_interleave(PATCH, 1)

    def to_json(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def _box_of(patches: torch.Tensor) -> Box | None:
    rows, cols = patches.nonzero(as_tuple=True)
    if rows.numel() == 0:
        return None
    return Box(int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max()))


def roi_box(patch_map: torch.Tensor, threshold: float = ROI_THRESHOLD) -> Box | None:
    """The box around every patch of ``patch_map`` [GRID, GRID] whose importance reaches
    ``threshold`` (None: none does)."""
    if tuple(patch_map.shape) != (GRID, GRID):
        raise SemcomError(f"an importance map over {GRID}×{GRID} patches is needed (got {list(patch_map.shape)})")
    return _box_of(patch_map >= threshold)


def box_of_mask(mask: torch.Tensor) -> Box | None:
    """The box of patches around a pixel mask [IMAGE_SIZE, IMAGE_SIZE] (training, and the true ROI)."""
    covered = mask.reshape(GRID, PATCH, GRID, PATCH).any(3).any(1)
    return _box_of(covered)


def check_budget(channel_uses: int) -> int:
    if not MIN_BUDGET <= channel_uses <= GRID * GRID * HI_SYMBOLS:
        raise SemcomError(f"--channel-uses must be {MIN_BUDGET} to {GRID * GRID * HI_SYMBOLS} per 64×64 tile of "
                          f"the picture (got {channel_uses})")
    return int(channel_uses)


def check_roi_share(share: float) -> float:
    if not 0.0 < share < 1.0:
        raise SemcomError(f"--roi-share must be between 0 and 1, exclusive (got {share})")
    return float(share)


@dataclass(frozen=True)
class Allocation:
    uses: torch.Tensor       # [GRID*GRID] long: complex symbols per patch, raster order
    roi: torch.Tensor        # [GRID*GRID] bool: patches on the high-fidelity path
    side_uses: int           # channel uses of the side information (0 without guidance)

    @property
    def channel_uses(self) -> int:
        return int(self.uses.sum()) + self.side_uses


def allocate(budget: int, box: Box | None, roi_share: float, guided: bool = True,
             side_uses: int = SIDE_USES) -> Allocation:
    """Channel uses per patch for a packet of ``budget`` uses. ``guided``: the box is sent in ``side_uses``
    channel uses (``box`` None sends the flag "no ROI"); not guided: the uniform codec."""
    side = side_uses if guided else 0
    uses, roi = allocate_rows(torch.tensor([budget]), torch.tensor([box.to_json() if box is not None else [-1] * 4]),
                              torch.tensor([float(roi_share)], dtype=torch.float64), torch.tensor([guided]), side)
    return Allocation(uses[0], roi[0], side)


def _spread_rows(total: torch.Tensor, members: torch.Tensor, cap: int) -> torch.Tensor:
    """``total`` [B] uses spread evenly over the patches ``members`` [B, n] of each row (at most ``cap``
    each; the first in raster order take the remainder) → uses [B, n], zero outside ``members``."""
    count = members.sum(1)
    total = torch.minimum(total, count * cap)
    safe = count.clamp_min(1)
    base, extra = total // safe, total % safe
    rank = members.long().cumsum(1) - 1  # each member's place among its row's members
    return (base[:, None] + (rank < extra[:, None]).long()) * members


def allocate_rows(budget: torch.Tensor, boxes: torch.Tensor, roi_share: torch.Tensor, guided: torch.Tensor,
                  side_uses: torch.Tensor | int = SIDE_USES) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`allocate` for a batch (and the one rule behind it), on the tensors' device with no per-row
    Python (training draws and the batched link): budgets [B], boxes [B, 4] as (x0, y0, x1, y1) with -1
    for "no box", ROI shares [B], guided [B] bool, side uses (an int or [B]) → (uses per patch [B, 64]
    long, ROI flags [B, 64] bool)."""
    device = boxes.device
    budget = torch.as_tensor(budget, device=device).long().expand(boxes.shape[0])
    side = torch.as_tensor(side_uses, device=device).long().expand(boxes.shape[0])
    data = budget - torch.where(guided, side, torch.zeros_like(side))
    col = torch.arange(GRID, device=device).repeat(GRID)          # each patch's column, raster order
    row = torch.arange(GRID, device=device).repeat_interleave(GRID)
    x0, y0, x1, y1 = (boxes[:, i:i + 1] for i in range(4))
    roi = (col >= x0) & (col <= x1) & (row >= y0) & (row <= y1) & (x0 >= 0) & guided[:, None]
    n_roi = roi.sum(1)
    # Python's round() is half to even, as torch.round is; in float64 as allocate computes it
    want_roi = torch.minimum(torch.round(roi_share.double() * data.double()).long(), n_roi * HI_SYMBOLS)
    background = _spread_rows(torch.where(n_roi > 0, data - want_roi, data), ~roi, LIGHT_SYMBOLS)
    left = data - background.sum(1)
    inside = _spread_rows(left, roi, HI_SYMBOLS)
    return torch.where(roi, inside, background), roi
