"""Scenes made in batches of tensors on the trainer's device: data at the speed of the trainer.

:func:`.generator.generate_scene` makes one scene at a time with PIL and numpy, several hundred a second
on one core; a codec trainer on a GPU eats tens of thousands a minute. :class:`SceneBatcher` draws the
same scenes, in distribution, as whole batches of tensors with no loop over the scenes:

- the layout: 2 to 5 objects, each colour, shape, size, position, angle and aspect drawn as
  :func:`.generator._draw_object` draws them; a layout that fails the visibility rules
  (:data:`.generator.MIN_VISIBLE`, :data:`.generator.MIN_PIXELS`) or puts two objects of one colour
  in touch is drawn again, as the reference does. Each scene gets several candidate layouts at once
  and keeps the first valid one (the first valid draw of an i.i.d. sequence, as the reference's
  loop keeps); only scenes with none valid are drawn again.
- the pixels: each object's polygon (:func:`.generator.object_polygon`: circles are its 48-gon) is
  filled by the scan-line rule of PIL's ``ImageDraw.polygon``, reproduced on tensors
  (:func:`fill_polygons`), so the masks are PIL's, not a near copy. Later objects are on top; a mask
  is the pixels that show its object.
- the background: a plain pale colour, or one of ``crops`` photograph crops drawn once at
  construction by :func:`.backgrounds.photo_crop` (the split's own photographs) and lightened per
  scene as :func:`.backgrounds.lighten` does.

The same (seed, generator state, device) gives the same tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from semcom_cli.data.scenes.backgrounds import PHOTOS, photo_crop
from semcom_cli.data.scenes.generator import COLOR_RGB, MIN_PIXELS, MIN_VISIBLE
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["SceneBatch", "SceneBatcher", "MAX_OBJECTS", "fill_objects", "fill_polygons", "object_outlines",
           "visible_masks"]

MAX_OBJECTS = 5  # object slots per scene (a scene holds 2 to 5)
CIRCLE_SIDES = 48  # object_polygon's circle
MAX_ROUNDS = 200  # the reference gives up after 200 layouts; more than that means impossible settings


def _unit_outlines() -> torch.Tensor:
    """[shapes, 48, 2] float64: object_polygon's corners before scale, rotation and shift, in the
    order of :data:`SHAPES`; rectangles and triangles repeat their last corner (a repeated corner
    adds an edge of length 0, which the fill ignores)."""
    circle = [(math.cos(2 * math.pi * k / CIRCLE_SIDES), math.sin(2 * math.pi * k / CIRCLE_SIDES))
              for k in range(CIRCLE_SIDES)]
    rectangle = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]  # y times the aspect below
    triangle = [(math.cos(math.radians(90 + 120 * k)), -math.sin(math.radians(90 + 120 * k))) for k in range(3)]
    corners = {"circle": circle, "rectangle": rectangle, "triangle": triangle}
    padded = [corners[s] + [corners[s][-1]] * (CIRCLE_SIDES - len(corners[s])) for s in SHAPES]
    return torch.tensor(padded, dtype=torch.float64)


UNIT_OUTLINES = _unit_outlines()


@lru_cache(maxsize=8)
def _unit_outlines_on(device: torch.device) -> torch.Tensor:
    return UNIT_OUTLINES.to(device)


RECTANGLE = SHAPES.index("rectangle")
CIRCLE = SHAPES.index("circle")
PALETTE = torch.tensor([COLOR_RGB[c] for c in COLORS], dtype=torch.uint8)  # [colours, 3]


def object_outlines(shapes: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor, angles: torch.Tensor,
                    aspects: torch.Tensor, sides: int = CIRCLE_SIDES) -> torch.Tensor:
    """[..., sides, 2] float64 polygon vertices in pixels, as :func:`.generator.object_polygon`
    computes them (same operations in the same order, in float64). ``sides`` < 48 keeps the
    first corners only: enough for rectangles and triangles (4 and 3 corners)."""
    unit = _unit_outlines_on(centers.device)[shapes][..., :sides, :]  # [..., sides, 2]
    ux, uy = unit[..., 0], unit[..., 1] * torch.where(shapes == RECTANGLE, aspects, 1.0)[..., None]
    a = angles * (math.pi / 180.0)  # math.radians
    cos, sin = torch.cos(a)[..., None], torch.sin(a)[..., None]
    r = radii[..., None]
    x = centers[..., 0, None] + r * (ux * cos + uy * sin)
    y = centers[..., 1, None] + r * (-ux * sin + uy * cos)
    return torch.stack([x, y], -1)


def _round_up(v: torch.Tensor) -> torch.Tensor:
    """PIL's ROUND_UP in float32 (half away from zero; ``v + 0.5F`` is rounded to float32 first)."""
    return torch.where(v >= 0, torch.floor(v + 0.5), -torch.floor(v.abs() + 0.5))


def _round_down(v: torch.Tensor) -> torch.Tensor:
    """PIL's ROUND_DOWN in float32 (half toward zero)."""
    return torch.where(v >= 0, torch.ceil(v - 0.5), -torch.ceil(v.abs() - 0.5))


def fill_polygons(vertices: torch.Tensor, size: int) -> torch.Tensor:
    """[N, size, size] bool: N polygons ([N, V, 2] vertices in pixels, x right, y down; convex before
    rounding) filled as PIL's ``ImageDraw.polygon(..., fill=1)`` fills them.

    PIL's rule (Pillow's Draw.c, ``polygon_generic``), reproduced: vertices are cut to integers
    toward zero (C's ``(int)``); pixel centres sit at integer coordinates; pixel row y crosses each
    edge that spans it at the float32 ``x = (y - y0)·dx + x0``, and the pixels from ROUND_UP(leftmost
    crossing) to ROUND_DOWN(rightmost crossing) are filled, so the fill reaches half a pixel beyond the
    outline to the left and right but not above or below; a horizontal edge is filled whole.
    Leftmost to rightmost is PIL's pairing of the sorted crossings wherever a row meets the outline
    twice, which rounding keeps true for convex shapes: rounding is monotone, so each side of the
    outline stays monotone in y. Left out: PIL widens a top or bottom vertex's row when both of its
    edges lean the same way by more than a pixel per row, which needs a corner sharper than 45°; the
    sharpest here is the triangle's 60° (measured: identical to PIL on 9,000 objects of the
    reference's distribution at 16, 64 and 128 pixels).
    """
    n, device = vertices.shape[0], vertices.device
    inf = torch.tensor(float("inf"), device=device)
    if n == 0:
        return torch.zeros(0, size, size, dtype=torch.bool, device=device)
    v = torch.trunc(vertices).to(torch.int32)
    x0, y0 = v[..., 0], v[..., 1]  # each edge runs from vertex i to vertex i + 1, as PIL builds it
    x1, y1 = torch.roll(x0, -1, 1), torch.roll(y0, -1, 1)
    slanted = y0 != y1
    dx = (x1 - x0).float() / torch.where(slanted, y1 - y0, 1).float()  # float32, as PIL
    top, bottom = torch.minimum(y0, y1), torch.maximum(y0, y1)
    # the rows each edge spans, as [N, edges, most rows any edge spans]: circles' edges span 1 to 3
    # rows, so this is far smaller than every row against every edge
    reach = int((bottom - top).max()) + 1
    rows = top[..., None] + torch.arange(reach, device=device, dtype=torch.int32)
    x = (rows - y0[..., None]).float() * dx[..., None] + x0[..., None].float()
    lo = torch.where(slanted[..., None], x, torch.minimum(x0, x1)[..., None].float())
    hi = torch.where(slanted[..., None], x, torch.maximum(x0, x1)[..., None].float())
    counted = (rows <= bottom[..., None]) & (rows >= 0) & (rows < size)
    at = torch.where(counted, rows, size).long().reshape(n, -1)  # row `size` collects what is off the image
    left = torch.full((n, size + 1), float("inf"), device=device).scatter_reduce(
        1, at, torch.where(counted, lo, inf).reshape(n, -1), "amin")[:, :size]
    right = torch.full((n, size + 1), float("-inf"), device=device).scatter_reduce(
        1, at, torch.where(counted, hi, -inf).reshape(n, -1), "amax")[:, :size]
    start = _round_up(left).clamp(0, size).long()  # rows the polygon misses (inf, -inf) come out empty
    stop = _round_down(right).clamp(-1, size - 1).long()
    return _runs(start, stop, size)


def _runs(start: torch.Tensor, stop: torch.Tensor, size: int) -> torch.Tensor:
    """[..., size] bool rows holding pixels ``start`` to ``stop`` (both included; start in 0 … size,
    stop in -1 … size - 1). Copied from a table of every run: on a CPU far faster than comparing each
    pixel with its row's ends."""
    if size <= 256:  # the table of every (start, stop) takes size³ bytes: 17 MB at 256
        index = start * (size + 1) + stop + 1
        return _run_table(size, start.device).index_select(0, index.flatten()).view(*start.shape, size)
    cols = torch.arange(size, device=start.device)
    return (cols >= start[..., None]) & (cols <= stop[..., None])


@lru_cache(maxsize=8)
def _run_table(size: int, device: torch.device) -> torch.Tensor:
    """[(size + 1)², size] bool: row ``start·(size + 1) + stop + 1`` holds pixels start to stop."""
    cols = torch.arange(size, device=device)
    starts = torch.arange(size + 1, device=device)[:, None, None]
    stops = torch.arange(-1, size, device=device)[None, :, None]
    return ((cols >= starts) & (cols <= stops)).reshape(-1, size)


def fill_objects(shapes: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor, angles: torch.Tensor,
                 aspects: torch.Tensor, size: int) -> torch.Tensor:
    """[N, size, size] bool: the pixels of N objects' polygons, each as :func:`.generator._filled`
    draws it. Circles are filled from 48 vertices, rectangles and triangles from 4."""
    out = torch.zeros(shapes.shape[0], size, size, dtype=torch.bool, device=shapes.device)
    for is_circle, sides in ((True, CIRCLE_SIDES), (False, 4)):
        pick = ((shapes == CIRCLE) == is_circle).nonzero()[:, 0]
        outline = object_outlines(shapes[pick], centers[pick], radii[pick], angles[pick], aspects[pick], sides)
        out[pick] = fill_polygons(outline, size)
    return out


def visible_masks(filled: torch.Tensor) -> torch.Tensor:
    """[..., slots, H, W] bool: what each object shows of its ``filled`` pixels, later slots on top."""
    visible = torch.empty_like(filled)
    covered = torch.zeros_like(filled[..., 0, :, :])
    for k in range(filled.shape[-3] - 1, -1, -1):
        visible[..., k, :, :] = filled[..., k, :, :] & ~covered
        covered |= filled[..., k, :, :]
    return visible


def _same_colour_touch(filled: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    """[N] bool: whether two objects of one colour overlap or touch (``filled`` [N, slots, H, W],
    ``colors`` [N, slots], -1 for an unused slot): :func:`.generator._same_colour_touch` on tensors.
    Only pairs of one colour are looked at (one pair in eight)."""
    first, second = torch.triu_indices(colors.shape[1], colors.shape[1], 1, device=colors.device)
    same = (colors[:, first] == colors[:, second]) & (colors[:, first] >= 0)  # [N, pairs]
    scene, pair = same.nonzero(as_tuple=True)
    a, b = filled[scene, first[pair]], filled[scene, second[pair]]
    grown = a.clone()  # a grown by one pixel (4-neighbourhood)
    grown[:, 1:] |= a[:, :-1]
    grown[:, :-1] |= a[:, 1:]
    grown[:, :, 1:] |= a[:, :, :-1]
    grown[:, :, :-1] |= a[:, :, 1:]
    touch = torch.zeros(colors.shape[0], dtype=torch.bool, device=colors.device)
    touch[scene[_any(grown & b)]] = True
    return touch


def _any(masks: torch.Tensor) -> torch.Tensor:
    """[N] bool: whether each of [N, H, W] masks holds a pixel (max over bytes: far faster than any() on CPU)."""
    return masks.view(torch.uint8).flatten(1).amax(1) > 0 if masks.shape[0] else masks.new_zeros(0)


def _pixels(masks: torch.Tensor) -> torch.Tensor:
    """[...] long: the pixels in each of [..., H, W] masks. A bool sum is slow on a CPU; here the
    mask's bytes (0 or 1) are read 8 at a time as int64 words, added in groups of 16 words (so no
    byte exceeds 16) and each word's 8 bytes folded into one sum."""
    lead, area = masks.shape[:-2], masks.shape[-2] * masks.shape[-1]
    flat = masks.reshape(*lead, area).view(torch.uint8)
    group = 8 * 16
    if area % group:
        flat = torch.nn.functional.pad(flat, (0, group - area % group))
    words = flat.view(torch.int64).reshape(*lead, -1, 16).sum(-1)  # each byte: at most 16
    words = (words & 0x00FF00FF00FF00FF) + ((words >> 8) & 0x00FF00FF00FF00FF)  # 4 sums of 16 bits
    words = (words & 0x0000FFFF0000FFFF) + ((words >> 16) & 0x0000FFFF0000FFFF)  # 2 sums of 32 bits
    words = (words & 0xFFFFFFFF) + (words >> 32)
    return words.sum(-1)


@dataclass
class SceneBatch:
    """A batch of B scenes as tensors on one device. Slots at and past ``count`` are unused: colour
    and shape -1, geometry 0, mask empty."""

    images: torch.Tensor    # [B, 3, H, W] uint8
    masks: torch.Tensor     # [B, 5, H, W] bool: the pixels that show each object (disjoint)
    count: torch.Tensor     # [B] long: objects in the scene, 2 to 5
    colors: torch.Tensor    # [B, 5] long: index into COLORS
    shapes: torch.Tensor    # [B, 5] long: index into SHAPES
    centers: torch.Tensor   # [B, 5, 2] float64: pixels (x to the right, y down)
    radii: torch.Tensor     # [B, 5] float64: pixels
    angles: torch.Tensor    # [B, 5] float64: degrees, counter-clockwise
    aspects: torch.Tensor   # [B, 5] float64: rectangles' height / width, 1 for the other shapes
    textured: torch.Tensor  # [B] bool: on a photograph's crop, else on a plain pale colour


# Layouts drawn per scene and round, by object count: about 1 / the share of layouts that pass
# (0.92, 0.74, 0.53, 0.35 for 2 to 5 objects at 64×64, measured with the reference), so that most
# scenes finish in the first round without drawing many layouts that are thrown away.
CANDIDATES_BY_COUNT = (0, 0, 1, 2, 2, 3)


class SceneBatcher:
    """Draws batches of scenes on ``device`` with the reference's distribution (:mod:`.generator`):
    ``textured_share`` of them on one of ``crops`` crops of ``split``'s photographs, drawn once here
    from ``seed``, the rest on a plain pale colour."""

    def __init__(self, split: str = "train", size: int = 64, device: str | torch.device = "cpu",
                 crops: int = 2048, seed: int = 0, textured_share: float = 0.5):
        if split not in PHOTOS:
            raise ValueError(f"unknown split {split!r} ({', '.join(PHOTOS)})")
        self.split, self.size, self.device = split, int(size), torch.device(device)
        self.textured_share = float(textured_share)
        rng = np.random.default_rng(seed)
        bank = np.stack([photo_crop(rng, self.size, PHOTOS[split])[1] for _ in range(crops)])  # [crops, H, W, 3]
        self.crops = torch.from_numpy(bank).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.palette = PALETTE.to(self.device)

    def draw(self, batch: int, generator: torch.Generator) -> SceneBatch:
        """``batch`` scenes, all random draws from ``generator`` (on this batcher's device)."""
        dev, size = self.device, self.size
        count = torch.randint(2, MAX_OBJECTS + 1, (batch,), generator=generator, device=dev)
        out = {"masks": torch.zeros(batch, MAX_OBJECTS, size, size, dtype=torch.bool, device=dev),
               "colors": torch.full((batch, MAX_OBJECTS), -1, dtype=torch.long, device=dev),
               "shapes": torch.full((batch, MAX_OBJECTS), -1, dtype=torch.long, device=dev),
               "centers": torch.zeros(batch, MAX_OBJECTS, 2, dtype=torch.float64, device=dev),
               "radii": torch.zeros(batch, MAX_OBJECTS, dtype=torch.float64, device=dev),
               "angles": torch.zeros(batch, MAX_OBJECTS, dtype=torch.float64, device=dev),
               "aspects": torch.zeros(batch, MAX_OBJECTS, dtype=torch.float64, device=dev)}
        pending = torch.arange(batch, device=dev)
        per_count = torch.tensor(CANDIDATES_BY_COUNT, device=dev)
        for _ in range(MAX_ROUNDS):
            if pending.numel() == 0:
                break
            owner = torch.repeat_interleave(pending, per_count[count[pending]])  # [C]: each candidate's scene
            layout = self._layouts(count[owner], generator)
            valid = layout.pop("valid")
            first = torch.full((batch,), owner.numel(), device=dev)  # the first valid candidate of each scene
            first.scatter_reduce_(0, owner[valid], torch.arange(owner.numel(), device=dev)[valid], "amin")
            done = pending[first[pending] < owner.numel()]
            for name, value in layout.items():
                out[name][done] = value[first[done]]
            pending = pending[first[pending] == owner.numel()]
        else:
            if pending.numel():  # pragma: no cover - the reference gives up likewise
                raise RuntimeError(f"could not lay out visible objects at {size}×{size}")
        textured, images = self._backgrounds(batch, generator)
        # the masks are disjoint, so painting is a sum: the background where no mask is, plus each
        # object's colour on its mask (in uint8 arithmetic: far faster than torch.where on a CPU)
        masks = out["masks"].view(torch.uint8)
        inks = self.palette[out["colors"].clamp(min=0)]  # [B, 5, 3]
        images = images * (1 - masks.sum(1, keepdim=True, dtype=torch.uint8))
        for k in range(MAX_OBJECTS):
            images += masks[:, k, None] * inks[:, k, :, None, None]
        return SceneBatch(images=images, count=count, textured=textured, **out)

    def _layouts(self, count: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One candidate layout per entry of ``count`` [C], drawn as :func:`.generator._draw_object`
        draws objects, with its visible masks and whether it passes the reference's rules."""
        dev, size, c = self.device, self.size, count.shape[0]
        slots = (c, MAX_OBJECTS)
        used = torch.arange(MAX_OBJECTS, device=dev) < count[:, None]

        def uniform(low: float, high: float, shape=slots) -> torch.Tensor:  # numpy's uniform, in float64
            return low + (high - low) * torch.rand(shape, generator=generator, device=dev, dtype=torch.float64)

        colors = torch.randint(len(COLORS), slots, generator=generator, device=dev)
        radii = uniform(0.09, 0.22) * size
        margin = radii * 0.6  # an object may run a little off the edge, never mostly
        centers = margin[..., None] + (size - margin - margin)[..., None] * uniform(0.0, 1.0, (*slots, 2))
        shapes = torch.randint(len(SHAPES), slots, generator=generator, device=dev)
        aspects = torch.where(shapes == RECTANGLE, uniform(0.55, 1.0), 1.0)
        angles = uniform(0.0, 360.0)
        filled = torch.zeros(c, MAX_OBJECTS, size, size, dtype=torch.bool, device=dev)
        filled[used] = fill_objects(shapes[used], centers[used], radii[used], angles[used], aspects[used], size)
        visible = visible_masks(filled)
        own, seen = _pixels(filled), _pixels(visible)
        seeable = (seen >= MIN_VISIBLE * own.double()) & (seen >= math.ceil(MIN_PIXELS * size * size))
        colors = torch.where(used, colors, -1)
        valid = (seeable | ~used).all(1) & ~_same_colour_touch(filled, colors)
        unused = ~used
        return {"valid": valid, "masks": visible, "colors": colors, "shapes": shapes.masked_fill(unused, -1),
                "centers": centers.masked_fill(unused[..., None], 0.0), "radii": radii.masked_fill(unused, 0.0),
                "angles": angles.masked_fill(unused, 0.0), "aspects": aspects.masked_fill(unused, 0.0)}

    def _backgrounds(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """([B] textured, [B, 3, H, W] uint8): a plain pale colour (each channel 230 to 255, as
        easy-vqa's), or a stored crop lightened as :func:`.backgrounds.lighten` does."""
        dev, size = self.device, self.size
        textured = torch.rand(batch, generator=generator, device=dev) < self.textured_share
        plain = torch.randint(230, 256, (batch, 3, 1, 1), generator=generator, device=dev, dtype=torch.uint8)
        pick = torch.randint(self.crops.shape[0], (batch,), generator=generator, device=dev)
        light = 0.3 + 0.3 * torch.rand(batch, 1, 1, 1, generator=generator, device=dev, dtype=torch.float64)
        images = plain.expand(-1, -1, size, size).clone()
        # lighten() per image as a table of its 256 outcomes (float64, as numpy), looked up per pixel
        levels = torch.arange(256, device=dev, dtype=torch.float64)
        table = torch.clamp(levels * (1 - light[textured, 0, 0]) + 255.0 * light[textured, 0, 0] + 0.5, 0, 255)
        crops = self.crops[pick[textured]]
        images[textured] = table.to(torch.uint8).gather(1, crops.flatten(1).long()).view_as(crops)
        return textured, images
