"""A scenes folder as ``semcom scenes`` writes it, read back: ``scenes.json`` checked field by field (any
content either loads as a :class:`ScenesDoc` or is refused in one line), and the folder recognised as
semcom's own output (:data:`SCENES_OUTPUT`, for the one replace rule of :mod:`semcom_cli.core.outputs`).

``scenes.json``::

    {"format": "semcom-scenes/1", "split": "test", "size": 64,
     "scenes": [{"index": 0, "seed": …, "background": "plain" | a photograph,
                 "objects": [{"shape", "color", "center": [x, y], "radius", "angle", "aspect"}, …],
                 "areas": [pixels per object], "queries": [{"text", "kind", "target", "referent", "answer"?}]}]}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field, ValidationError, model_validator

from semcom_cli.config.base import FiniteFloat, Strict, first_error_line
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import read_json_file
from semcom_cli.core.limits import MAX_QUESTION_CHARS, MAX_SEED
from semcom_cli.core.outputs import OutputKind
from semcom_cli.data.scenes.backgrounds import PHOTOS
from semcom_cli.data.scenes.queries import QUERY_KINDS, REFERENT_VALUES
from semcom_cli.data.scenes.splits import SPLITS
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["SCENES_FORMAT", "SCENES_FILE", "MAX_SCENES", "ScenesDoc", "load_scenes_json", "scene_file_names",
           "is_scenes_folder", "SCENES_OUTPUT"]

SCENES_FORMAT = "semcom-scenes/1"
SCENES_FILE = "scenes.json"
MAX_SCENES = 10_000          # what `semcom scenes -n` writes at most
MAX_START = 10_000_000       # and its --start
MAX_OBJECTS = 8              # a scene holds 2 to 5
MAX_QUERIES = 256            # per scene: six kinds × at most 4 each, with room

Backgrounds = Literal[("plain", *sorted({p for photos in PHOTOS.values() for p in photos}))]
Pixel = Annotated[FiniteFloat, Field(ge=-1024, le=1024)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS)]


class ObjectRecord(Strict):
    shape: Literal[SHAPES]
    color: Literal[COLORS]
    center: tuple[Pixel, Pixel]
    radius: Annotated[FiniteFloat, Field(gt=0, le=1024)]
    angle: Annotated[FiniteFloat, Field(ge=-3600, le=3600)]
    aspect: Annotated[FiniteFloat, Field(gt=0, le=100)] = 1.0


class ReferentRecord(Strict):
    color: Optional[Literal[REFERENT_VALUES["color"][1:]]] = None
    shape: Optional[Literal[REFERENT_VALUES["shape"][1:]]] = None
    where: Optional[Literal[REFERENT_VALUES["where"][1:]]] = None
    size: Optional[Literal[REFERENT_VALUES["size"][1:]]] = None


class QueryRecord(Strict):
    text: Text
    kind: Literal[QUERY_KINDS]
    target: Annotated[int, Field(ge=0, lt=MAX_OBJECTS)]
    referent: ReferentRecord = ReferentRecord()
    answer: Optional[Text] = None


class SceneRecord(Strict):
    index: Annotated[int, Field(ge=0, lt=MAX_START + MAX_SCENES)]
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)]
    background: Backgrounds
    objects: Annotated[list[ObjectRecord], Field(min_length=1, max_length=MAX_OBJECTS)]
    areas: Annotated[list[Annotated[int, Field(ge=0, le=128 * 128)]], Field(max_length=MAX_OBJECTS)]
    queries: Annotated[list[QueryRecord], Field(max_length=MAX_QUERIES)] = []

    @model_validator(mode="after")
    def _consistent(self) -> "SceneRecord":
        if len(self.areas) != len(self.objects):
            raise ValueError(f"{len(self.areas)} areas for {len(self.objects)} objects")
        if any(q.target >= len(self.objects) for q in self.queries):
            raise ValueError("a query's target is not one of the scene's objects")
        return self


class ScenesDoc(Strict):
    format: Literal[SCENES_FORMAT]
    split: Literal[SPLITS]
    size: Literal[64, 128]
    scenes: Annotated[list[SceneRecord], Field(min_length=1, max_length=MAX_SCENES)]

    @model_validator(mode="after")
    def _distinct(self) -> "ScenesDoc":
        indices = [s.index for s in self.scenes]
        if len(set(indices)) != len(indices):
            raise ValueError("a scene index appears twice")
        if any(a > self.size * self.size for s in self.scenes for a in s.areas):
            raise ValueError(f"an object's area is larger than a {self.size}×{self.size} image")
        return self


def scenes_from(data, source: str) -> ScenesDoc:
    """``data`` (a parsed ``scenes.json``) as a :class:`ScenesDoc`, or one line naming what is wrong."""
    if not isinstance(data, dict):
        raise SemcomError(f"{source}: not a semcom scenes file (not a JSON object)")
    if data.get("format") != SCENES_FORMAT:
        raise SemcomError(f"{source}: not a semcom scenes file (format {SCENES_FORMAT})")
    try:
        return ScenesDoc.model_validate(data)
    except ValidationError as err:
        raise SemcomError(first_error_line(err, source)) from None
    except RecursionError:
        raise SemcomError(f"{source}: nested too deep; not a semcom scenes file") from None


def load_scenes_json(path: str | Path) -> ScenesDoc:
    """A ``scenes.json`` (or the folder holding one), checked; one line for anything else."""
    path = Path(path)
    if path.is_dir():
        path = path / SCENES_FILE
    return scenes_from(read_json_file(path, "json", "semcom scenes file"), str(path))


def scene_file_names(index: int) -> tuple[str, str]:
    """The picture and the mask file of scene ``index`` in a scenes folder."""
    return f"scene-{index:05d}.png", f"scene-{index:05d}.mask.png"


def is_scenes_folder(folder: Path) -> bool:
    """A folder ``semcom scenes`` wrote: its ``scenes.json`` loads, and every other file in it is a scene's
    picture or mask that the file lists (a folder holding anything else is not semcom's to replace)."""
    try:
        doc = load_scenes_json(Path(folder) / SCENES_FILE)
        names = set(os.listdir(folder))
    except (SemcomError, OSError):
        return False
    listed = {name for scene in doc.scenes for name in scene_file_names(scene.index)} | {SCENES_FILE}
    return names <= listed and all((Path(folder) / name).is_file() and not (Path(folder) / name).is_symlink()
                                   for name in names)


SCENES_OUTPUT = OutputKind("semcom scenes folder", is_scenes_folder, folder=True)
