"""Train, validation and test scenes by seed: scene ``i`` of a split is generated from the seed
(split, i), so the splits never share a scene and each scene can be made on its own. Half the
scenes of every split sit on a textured background, each split's from its own photographs."""

from __future__ import annotations

import numpy as np

from semcom_cli.data.scenes.backgrounds import PHOTOS
from semcom_cli.data.scenes.generator import Scene, generate_scene

__all__ = ["SPLITS", "scene_seed", "scene_at"]

SPLITS = ("train", "val", "test")


def scene_seed(split: str, index: int) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} ({', '.join(SPLITS)})")
    if index < 0:
        raise ValueError(f"scene index must be ≥ 0 (got {index})")
    return int(np.random.SeedSequence([SPLITS.index(split), int(index)]).generate_state(1)[0])


def scene_at(split: str, index: int, size: int = 64, textured: bool | None = None) -> Scene:
    """Scene ``index`` of ``split``; ``textured`` None: odd indices textured, even plain."""
    textured = bool(index % 2) if textured is None else textured
    return generate_scene(scene_seed(split, index), size, textured=textured, textures=PHOTOS[split])
