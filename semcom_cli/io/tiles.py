"""Pictures of any size as tiles of the codec's 64×64: the grid, padding, cutting and stitching.

The dual-path codec and its allocation (:mod:`.patches`) are built for 64×64 pictures. A picture of
another size is padded on the right and at the bottom to whole tiles, by repeating its edge pixels
(a black border would be an edge the codec spends symbols on), cut into tiles in raster order, each
sent as one packet; the receiver stitches the tiles back and crops the padding off. A 64×64 picture
is one tile with no padding: exactly the packet it always was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semcom_cli.core.errors import SemcomError
from semcom_cli.io.patches import IMAGE_SIZE, PATCH

__all__ = ["TILE", "MAX_TILES", "TileGrid", "tile_grid", "pad_to_tiles", "cut_tiles", "stitch_tiles",
           "patch_importance", "picture_box"]

TILE = IMAGE_SIZE
# 1024×1024 pixels: the packet of the largest budget stays far below a semantic file's byte limit,
# also after a fading channel adds a gain per symbol
MAX_TILES = 256


@dataclass(frozen=True)
class TileGrid:
    """How a picture of ``width``×``height`` pixels is cut: ``cols``×``rows`` tiles, raster order."""

    width: int
    height: int

    @property
    def cols(self) -> int:
        return -(-self.width // TILE)

    @property
    def rows(self) -> int:
        return -(-self.height // TILE)

    @property
    def count(self) -> int:
        return self.cols * self.rows

    @property
    def single(self) -> bool:
        """A 64×64 picture: one tile, nothing padded (the packet and header of before tiling)."""
        return (self.width, self.height) == (TILE, TILE)

    def origin(self, tile: int) -> tuple[int, int]:
        """(x, y) in pixels of tile ``tile``'s top left corner."""
        row, col = divmod(tile, self.cols)
        return col * TILE, row * TILE


def tile_grid(width: int, height: int, source: str = "the picture") -> TileGrid:
    """The grid of a picture, refusing one of more than :data:`MAX_TILES` tiles in one line."""
    if width < 1 or height < 1:
        raise SemcomError(f"{source}: a picture of {width}×{height} pixels holds nothing to send")
    grid = TileGrid(int(width), int(height))
    if grid.count > MAX_TILES:
        raise SemcomError(f"{source}: a picture of {width}×{height} pixels is {grid.cols}×{grid.rows} tiles of "
                          f"{TILE}×{TILE}; task reconstruct sends at most {MAX_TILES} tiles (1024×1024 pixels)")
    return grid


def pad_to_tiles(picture: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """[C, H, W] → [C, rows·64, cols·64]: the right and bottom edges repeated."""
    right, bottom = grid.cols * TILE - grid.width, grid.rows * TILE - grid.height
    if right == 0 and bottom == 0:
        return picture
    return F.pad(picture[None], (0, right, 0, bottom), mode="replicate")[0]


def cut_tiles(padded: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """[C, rows·64, cols·64] → [rows·cols, C, 64, 64], raster order."""
    c = padded.shape[0]
    return (padded.reshape(c, grid.rows, TILE, grid.cols, TILE).permute(1, 3, 0, 2, 4)
            .reshape(grid.count, c, TILE, TILE))


def stitch_tiles(tiles: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """[rows·cols, C, 64, 64] → the picture [C, H, W], its padding cropped."""
    c = tiles.shape[1]
    whole = (tiles.reshape(grid.rows, grid.cols, c, TILE, TILE).permute(2, 0, 3, 1, 4)
             .reshape(c, grid.rows * TILE, grid.cols * TILE))
    return whole[:, : grid.height, : grid.width]


def patch_importance(probabilities: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """A per-pixel importance map [H, W] → each 8×8 patch's importance over the padded picture,
    [rows·8, cols·8]: the mean over the patch's pixels inside the picture (padding is never important,
    and a patch the picture's edge cuts is judged by what it shows)."""
    right, bottom = grid.cols * TILE - grid.width, grid.rows * TILE - grid.height
    padded = F.pad(probabilities[None, None], (0, right, 0, bottom))
    inside = F.pad(torch.ones_like(probabilities)[None, None], (0, right, 0, bottom))
    return (F.avg_pool2d(padded, PATCH) / F.avg_pool2d(inside, PATCH).clamp_min(1e-6))[0, 0]


def picture_box(boxes: list, grid: TileGrid) -> list[int] | None:
    """The tiles' ROI boxes (:class:`~.patches.Box` or None each, raster order) as one box of 8×8 patches
    over the whole picture, [x0, y0, x1, y1] inclusive (None: no tile has one). One tile: its own box."""
    found = [(b, *grid.origin(t)) for t, b in enumerate(boxes) if b is not None]
    if not found:
        return None
    return [min(b.x0 + x // PATCH for b, x, _ in found), min(b.y0 + y // PATCH for b, _, y in found),
            max(b.x1 + x // PATCH for b, x, _ in found), max(b.y1 + y // PATCH for b, _, y in found)]



def tile_layout(image_info: dict, channel_uses: int) -> tuple[TileGrid, list[int]]:
    """A reconstruct packet's ``image`` header (checked by :mod:`.semantic`) → its grid and each tile's channel
    uses. A header without ``size`` is a 64×64 picture's single packet, as every file before tiling."""
    if "size" not in image_info:
        return TileGrid(TILE, TILE), [channel_uses]
    width, height = image_info["size"]
    return TileGrid(width, height), list(image_info["tile_uses"])
