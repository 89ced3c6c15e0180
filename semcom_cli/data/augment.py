"""Pictures the training set does not have: easy-vqa images moved about, and shapes drawn anew.

Users send their own pictures: a shape drawn by another program, rotated, larger or smaller,
off-centre, on another pale background, in a slightly different shade, saved as JPEG. Two sources
of such pictures train the vision encoder and projector (``align``) and the LLM (``instruct``):

- :func:`augment_batch` transforms easy-vqa images: the shape is cut from its background (its
  distance from the corner colour), rotated, scaled and shifted, its colour jittered, put on a new
  pale background, and sometimes JPEG-compressed.
- :func:`render_shapes` draws a coloured circle, rectangle or triangle with PIL: another program
  than easy-vqa's, with its own sizes, aspect ratios, edge smoothing and palettes (the CSS colour
  and the matplotlib "tab" colour of each name, jittered).

Every random choice comes from the ``random.Random`` passed in, so a seed gives the same pictures.
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from semcom_cli.data.easyvqa import IMAGE_SIZE

__all__ = ["augment_batch", "augment_image", "render_shape", "render_shapes", "polygon_corners", "PALETTES"]

# Renderings of each colour name: easy-vqa's (the CSS colour), another CSS shade where the name
# has one, and matplotlib's "tab:" colour. Jitter is added on top.
PALETTES = {
    "red": [(255, 0, 0), (220, 20, 60), (214, 39, 40)],
    "green": [(0, 255, 0), (0, 128, 0), (44, 160, 44), (50, 205, 50)],
    "blue": [(0, 0, 255), (31, 119, 180), (0, 0, 205), (65, 105, 225)],
    "black": [(0, 0, 0), (30, 30, 30)],
    "gray": [(128, 128, 128), (127, 127, 127), (105, 105, 105), (160, 160, 160)],
    "teal": [(0, 128, 128), (0, 139, 139), (23, 190, 207)],
    "brown": [(165, 42, 42), (140, 86, 75), (139, 69, 19)],
    "yellow": [(255, 255, 0), (255, 215, 0), (238, 238, 0)],
}


def _pale(rng: random.Random) -> tuple[float, float, float]:
    """A background: white, a light grey, or a pale tint."""
    kind = rng.random()
    if kind < 0.25:
        return (1.0, 1.0, 1.0)
    if kind < 0.45:
        g = rng.uniform(0.85, 0.97)
        return (g, g, g)
    return tuple(rng.uniform(0.86, 1.0) for _ in range(3))


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """[3, H, W] in [0, 1] through JPEG at ``quality`` and back."""
    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).float() / 255.0


def augment_image(image: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """One easy-vqa image [3, 64, 64] in [0, 1]: its shape rotated, scaled, shifted, recoloured
    slightly, on a new pale background, sometimes saved as JPEG."""
    background = image[:, :2, :2].mean(dim=(1, 2))
    # how far each pixel is from the background: 1 inside the shape, between 0 and 1 on its edge
    alpha = ((image - background[:, None, None]).abs().sum(0, keepdim=True) / 0.45).clamp(0, 1)
    # where the shape is (centre and reach, in [-1, 1] coordinates), so it is moved but never cut off
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, IMAGE_SIZE), torch.linspace(-1, 1, IMAGE_SIZE), indexing="ij")
    weight = alpha[0] / alpha[0].sum().clamp_min(1e-6)
    centre = ((xs * weight).sum(), (ys * weight).sum())
    inside = alpha[0] > 0.5
    reach = float(((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2)[inside].max().sqrt()) if inside.any() else 0.3
    angle = rng.uniform(0, 2 * math.pi)
    scale = math.exp(rng.uniform(math.log(0.6), math.log(1.3)))
    scale = min(scale, 0.9 / max(reach, 1e-3))  # the scaled shape still fits in the frame
    room = max(0.0, 0.95 - reach * scale)
    target = (rng.uniform(-room, room), rng.uniform(-room, room))
    # the sampling grid maps output to input coordinates: p_in = A (p_out − target) + centre,
    # A rotating by −angle and scaling by 1/scale
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    shift = (float(centre[0]) - (cos * target[0] - sin * target[1]),
             float(centre[1]) - (sin * target[0] + cos * target[1]))
    theta = torch.tensor([[cos, -sin, shift[0]], [sin, cos, shift[1]]], dtype=image.dtype)[None]
    grid = F.affine_grid(theta, [1, 4, IMAGE_SIZE, IMAGE_SIZE], align_corners=True)
    # the shape's own colour fills its pixels, so edges take the new background, not the old one
    colour = (image * alpha).sum(dim=(1, 2)) / alpha.sum().clamp_min(1e-6)
    moved = F.grid_sample(torch.cat([image, alpha])[None], grid, align_corners=True, padding_mode="zeros")[0]
    alpha = moved[3:]
    solid = torch.where(alpha > 0.99, moved[:3], colour[:, None, None])
    gain = torch.tensor([rng.uniform(0.88, 1.08) for _ in range(3)])
    bias = torch.tensor([rng.uniform(-0.05, 0.05) for _ in range(3)])
    solid = (solid * gain[:, None, None] + bias[:, None, None]).clamp(0, 1)
    new_background = torch.tensor(_pale(rng))[:, None, None]
    out = alpha * solid + (1 - alpha) * new_background
    if rng.random() < 0.4:
        out = _jpeg(out, rng.randrange(25, 95))
    return out


def augment_batch(images: torch.Tensor, rng: random.Random, fraction: float) -> torch.Tensor:
    """Images [B, 3, 64, 64] in [0, 1], each augmented with probability ``fraction``."""
    if fraction <= 0:
        return images
    out = images.clone()
    for i in range(len(images)):
        if rng.random() < fraction:
            out[i] = augment_image(images[i].cpu(), rng).to(images.device)
    return out


def polygon_corners(shape: str, rng: random.Random, size: float) -> list[tuple[float, float]]:
    """Corners of a rectangle or triangle of about ``size`` pixels, centred on 0, rotated."""
    if shape == "rectangle":
        aspect = math.exp(rng.uniform(math.log(0.45), math.log(2.2)))
        w, h = size * math.sqrt(aspect), size / math.sqrt(aspect)
        corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    else:  # a triangle: equilateral, isosceles or right-angled
        kind = rng.randrange(3)
        if kind == 0:
            corners = [(size * math.cos(a), size * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
            corners = [(x * 0.6, y * 0.6) for x, y in corners]
        elif kind == 1:
            corners = [(0, -size / 2), (size * rng.uniform(0.3, 0.6), size / 2), (-size * rng.uniform(0.3, 0.6),
                                                                                  size / 2)]
        else:
            corners = [(-size / 2, -size / 2), (size / 2, size / 2), (-size / 2, size / 2)]
    turn = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(turn), math.sin(turn)
    return [(x * c - y * s, x * s + y * c) for x, y in corners]


def render_shape(color: str, shape: str, rng: random.Random) -> torch.Tensor:
    """A picture [3, 64, 64] in [0, 1] of one ``color`` ``shape`` drawn with PIL."""
    smooth = rng.choice([1, 2, 4])  # drawn at 1×, 2× or 4× and reduced: hard, soft or smooth edges
    side = IMAGE_SIZE * smooth
    background = tuple(int(v * 255 + 0.5) for v in _pale(rng))
    im = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(im)
    base = rng.choice(PALETTES[color])
    fill = tuple(int(min(255, max(0, v + rng.randint(-12, 12)))) for v in base)
    size = rng.uniform(14, 46) * smooth
    margin = size * 0.75
    cx, cy = rng.uniform(margin, side - margin), rng.uniform(margin, side - margin)
    outline = rng.random() < 0.2
    outline_colour = tuple(int(v * 0.6) for v in fill) if outline else None
    width = max(1, smooth) if outline else 0
    if shape == "circle":
        r = size / 2
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline_colour, width=width)
    else:
        points = [(cx + x, cy + y) for x, y in polygon_corners(shape, rng, size)]
        draw.polygon(points, fill=fill, outline=outline_colour, width=width)
    if smooth > 1:
        im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    out = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0
    if rng.random() < 0.4:
        out = _jpeg(out, rng.randrange(25, 95))
    return out


def render_shapes(captions: list[tuple[str, str]], rng: random.Random) -> torch.Tensor:
    """[B, 3, 64, 64] pictures of the (colour, shape) ``captions``."""
    return torch.stack([render_shape(color, shape, rng) for color, shape in captions])
