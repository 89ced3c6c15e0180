"""Textured backgrounds: crops of the photographs that installed packages ship.

scikit-image's ``data`` module ships colour and grey photographs (and textures such as grass and
brick); scikit-learn ships two more (china, flower). Each split draws from its own photographs,
so test scenes sit on backgrounds no training scene used (images "from other renderers").
A crop is taken at a random position and scale, resized to the scene, and lightened toward white
by a random share so the shapes on it stay visible, as a pale page would keep them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = ["PHOTOS", "textured_background", "photo_crop", "lighten", "load_photo"]

PHOTOS = {
    "train": ("astronaut", "coffee", "rocket", "grass", "brick", "camera", "china"),
    "val": ("moon", "immunohistochemistry"),
    "test": ("chelsea", "hubble_deep_field", "gravel", "coins", "flower", "colorwheel"),
}


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A photograph as [H, W, 3] uint8 (grey ones repeated over the channels)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image  # heavy: scikit-learn, for its photographs

        image = load_sample_image(f"{name}.jpg")
    else:
        from skimage import data  # heavy: scikit-image, for its photographs

        image = getattr(data, name)()
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def photo_crop(rng: np.random.Generator, size: int,
               photos: tuple[str, ...] | None = None) -> tuple[str, np.ndarray]:
    """(photo name, [size, size, 3] uint8): a random crop of one of ``photos``, resized, not lightened."""
    photos = photos or PHOTOS["train"]
    name = photos[int(rng.integers(len(photos)))]
    photo = load_photo(name)
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.25, 0.9) * min(h, w))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.Resampling.BILINEAR)
    return name, np.asarray(crop)


def lighten(crop: np.ndarray, light: float) -> np.ndarray:
    """``crop`` with the share ``light`` of white mixed in, rounded to uint8."""
    out = crop.astype(np.float64) * (1 - light) + 255.0 * light
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def textured_background(rng: np.random.Generator, size: int,
                        photos: tuple[str, ...] | None = None) -> tuple[str, np.ndarray]:
    """(photo name, [size, size, 3] uint8): a lightened random crop of one of ``photos``."""
    name, crop = photo_crop(rng, size, photos)
    light = float(rng.uniform(0.3, 0.6))  # share of white mixed in
    return name, lighten(crop, light)
