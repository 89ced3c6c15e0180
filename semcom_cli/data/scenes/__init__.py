"""Scenes of several shapes with exact masks and referring queries (MLLM-SC).

- :mod:`.generator`: a seeded scene, its objects and a mask per object.
- :mod:`.backgrounds`: textured backgrounds from the photographs installed packages ship.
- :mod:`.queries`: phrases and questions that refer to exactly one object, in training and
  test-only wordings.
- :mod:`.splits`: train, validation and test scenes by seed.
- :mod:`.batched`: the same scenes drawn in batches of tensors on the trainer's device.
"""

from semcom_cli.data.scenes.batched import SceneBatch, SceneBatcher
from semcom_cli.data.scenes.generator import COLOR_RGB, Scene, SceneObject, generate_scene
from semcom_cli.data.scenes.queries import (
    ABSENT,
    QUERY_KINDS,
    REFERENT_VALUES,
    Query,
    Referent,
    absent_queries,
    referring_queries,
)
from semcom_cli.data.scenes.splits import SPLITS, scene_at

__all__ = ["COLOR_RGB", "Scene", "SceneObject", "generate_scene", "QUERY_KINDS", "REFERENT_VALUES", "Query",
           "Referent", "referring_queries", "absent_queries", "ABSENT",
           "SPLITS", "scene_at", "SceneBatch", "SceneBatcher"]
