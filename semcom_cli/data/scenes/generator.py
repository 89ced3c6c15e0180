"""Seeded scenes of several shapes with an exact mask per object (MLLM-SC's data).

easy-vqa shows one shape per image, so "which region does the query mean" has a trivial answer
there. A scene here holds 2 to 5 of easy-vqa's shapes in its 8 colours (the same RGB values, so
the shipped VQA checkpoint knows them), of varied size, position, rotation and overlap, on a pale
plain background or a crop of a photograph that an installed package ships
(:mod:`.backgrounds`). Objects are drawn in order without anti-aliasing, so each object's mask is
exactly the pixels that show it: its polygon minus what later objects cover. An object whose
visible part is too small to point at, or that touches another of its colour (the two would read
as one blob), is drawn again elsewhere.

The same (seed, size, background kind) gives the same scene, byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from semcom_cli.data.scenes.backgrounds import textured_background
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["COLOR_RGB", "SceneObject", "Scene", "generate_scene", "object_polygon", "MIN_VISIBLE"]

# easy-vqa's colours (CSS names, read off its images)
COLOR_RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0),
             "gray": (128, 128, 128), "teal": (0, 128, 128), "brown": (165, 42, 42), "yellow": (255, 255, 0)}
assert tuple(COLOR_RGB) == COLORS

MIN_VISIBLE = 0.5  # an object keeps at least this share of its own area visible …
MIN_PIXELS = 0.012  # … and at least this share of the image's pixels (49 at 64×64)


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    center: tuple[float, float]  # pixels (x to the right, y down)
    radius: float                # half the object's extent before rotation
    angle: float                 # degrees, counter-clockwise
    aspect: float = 1.0          # rectangles: height / width

    def to_json(self) -> dict:
        return {"shape": self.shape, "color": self.color, "center": [round(c, 3) for c in self.center],
                "radius": round(self.radius, 3), "angle": round(self.angle, 3), "aspect": round(self.aspect, 3)}


@dataclass
class Scene:
    image: np.ndarray        # [H, W, 3] uint8
    masks: np.ndarray        # [N, H, W] bool: the pixels that show each object (disjoint)
    objects: tuple[SceneObject, ...]
    background: str          # "plain" or the photograph's name
    seed: int

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def areas(self) -> list[int]:
        return [int(m.sum()) for m in self.masks]


def object_polygon(obj: SceneObject) -> list[tuple[float, float]]:
    """The object's outline as polygon vertices in pixels."""
    cx, cy = obj.center
    if obj.shape == "circle":
        corners = [(math.cos(2 * math.pi * k / 48), math.sin(2 * math.pi * k / 48)) for k in range(48)]
    elif obj.shape == "rectangle":
        h = obj.aspect
        corners = [(-1.0, -h), (1.0, -h), (1.0, h), (-1.0, h)]
    elif obj.shape == "triangle":
        corners = [(math.cos(math.radians(90 + 120 * k)), -math.sin(math.radians(90 + 120 * k))) for k in range(3)]
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
    a = math.radians(obj.angle)
    cos, sin = math.cos(a), math.sin(a)
    return [(cx + obj.radius * (x * cos + y * sin), cy + obj.radius * (-x * sin + y * cos)) for x, y in corners]


def _filled(obj: SceneObject, size: int) -> np.ndarray:
    canvas = Image.new("1", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(object_polygon(obj), fill=1)
    return np.asarray(canvas, dtype=bool)


def _draw_object(rng: np.random.Generator, size: int, color: str) -> SceneObject:
    radius = float(rng.uniform(0.09, 0.22) * size)
    margin = radius * 0.6  # an object may run a little off the edge, never mostly
    center = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    aspect = float(rng.uniform(0.55, 1.0)) if shape == "rectangle" else 1.0
    return SceneObject(shape, color, center, radius, float(rng.uniform(0.0, 360.0)), aspect)


def _same_colour_touch(filled: np.ndarray, colors: list[str]) -> bool:
    """Whether two objects of one colour overlap or touch: they would read as one blob."""
    grown = filled.copy()  # each mask grown by one pixel (4-neighbourhood)
    grown[:, 1:] |= filled[:, :-1]
    grown[:, :-1] |= filled[:, 1:]
    grown[:, :, 1:] |= filled[:, :, :-1]
    grown[:, :, :-1] |= filled[:, :, 1:]
    return any(colors[i] == colors[j] and bool((grown[i] & filled[j]).any())
               for i in range(len(colors)) for j in range(i + 1, len(colors)))


def generate_scene(seed: int, size: int = 64, n_objects: int | None = None, textured: bool = False,
                   textures: tuple[str, ...] | None = None) -> Scene:
    """One scene from ``seed``: 2 to 5 objects (or ``n_objects``), on a pale background, or with
    ``textured`` on a crop of one of ``textures`` (the split's photographs)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(size), int(textured)]))
    n = int(rng.integers(2, 6)) if n_objects is None else int(n_objects)
    if not 1 <= n <= 8:
        raise ValueError(f"a scene holds 1 to 8 objects (got {n})")
    for _ in range(200):  # redraw the layout until every object can be pointed at
        colors = [COLORS[int(rng.integers(len(COLORS)))] for _ in range(n)]
        objects = [_draw_object(rng, size, c) for c in colors]
        filled = np.stack([_filled(o, size) for o in objects])
        covered = np.zeros((size, size), dtype=bool)
        visible = np.zeros_like(filled)
        for k in range(n - 1, -1, -1):  # later objects are drawn on top
            visible[k] = filled[k] & ~covered
            covered |= filled[k]
        own = filled.sum((1, 2))
        seen = visible.sum((1, 2))
        if bool(((seen >= MIN_VISIBLE * own) & (seen >= MIN_PIXELS * size * size)).all()) \
                and not _same_colour_touch(filled, colors):
            break
    else:  # pragma: no cover - 200 failures in a row would mean impossible settings
        raise RuntimeError(f"could not lay out {n} visible objects at {size}×{size}")
    if textured:
        name, image = textured_background(rng, size, textures)
    else:
        name = "plain"
        image = np.empty((size, size, 3), dtype=np.uint8)
        image[:] = rng.integers(230, 256, size=3, dtype=np.uint8)  # easy-vqa's pale backgrounds
    image = image.copy()
    for k, obj in enumerate(objects):
        image[visible[k]] = COLOR_RGB[obj.color]
    return Scene(image, visible, tuple(objects), name, int(seed))
