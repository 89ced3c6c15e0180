"""Evaluation presets (``kind: evaluate``): what ``semcom evaluate --preset`` measures, and its floors.

Method and metric names are checked against their registries (:mod:`.methods`, :mod:`.metrics`), so a
method registered before a plan is loaded is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, ValidationError, field_validator

from semcom_cli.channel.image_codecs import CODECS, codec_names

from semcom_cli.config.preset import ChannelName, Strict, TaskName, first_error_line, read_yaml, registered
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import MAX_CHANNEL_USES, MAX_SEED, SNR_RANGE_DB
from semcom_cli.evaluation.methods import METHODS
from semcom_cli.evaluation.metrics import METRICS

__all__ = ["EvalPlan", "Floor", "load_eval_plan"]

MethodName = Annotated[str, registered(lambda: METHODS)]
MetricName = Annotated[str, registered(lambda: METRICS)]


class Floor(Strict):
    """A regression gate: the point's metric must reach ``min`` (fractions for accuracy, 0–100 BLEU)."""

    method: MethodName
    task: TaskName
    channel: ChannelName = "awgn"
    snr_db: Optional[float] = Field(None, ge=SNR_RANGE_DB[0], le=SNR_RANGE_DB[1])
    channel_uses: Union[Literal["matched"], int] = "matched"
    metric: MetricName
    min: float


class EvalPlan(Strict):
    """An evaluation preset (``kind: evaluate``): what ``semcom evaluate --preset`` measures."""

    kind: Literal["evaluate"]
    name: str = "evaluate"
    checkpoint: Optional[str] = None
    mlp_checkpoint: Optional[str] = None
    methods: list[MethodName] = ["semantic"]
    tasks: list[TaskName] = ["vqa"]
    channels: list[ChannelName] = ["awgn"]
    snrs: list[Annotated[float, Field(ge=SNR_RANGE_DB[0], le=SNR_RANGE_DB[1])]] = [-5.0, 0.0, 10.0, 20.0]
    # "auto": the rate table's budget for the SNR (methods uniform and importance)
    channel_uses: list[Union[Literal["matched", "auto"], Annotated[int, Field(gt=0, le=MAX_CHANNEL_USES)]]] = \
        ["matched"]
    target_accuracy: float = Field(0.95, gt=0.0, le=1.0)  # what the auto rate policy aims for
    limit: int = Field(200, ge=0)  # questions (captions, sentences) per point; 0: all
    seed: int = Field(0, ge=0, le=MAX_SEED)
    batch_size: int = Field(64, gt=0)
    # the digital baseline's image codecs, each measured (a comma list or "all" from --image-codec)
    image_codec: list[Literal[CODECS]] = ["webp"]
    mcs: str = "auto"
    floors: list[Floor] = []

    @field_validator("image_codec", mode="before")
    @classmethod
    def _codec_list(cls, value):
        return codec_names(value) if isinstance(value, (str, list)) else value




def load_eval_plan(name_or_path: str | Path) -> EvalPlan:
    """Load an evaluation preset (``kind: evaluate``) by name or path."""
    path, data = read_yaml(name_or_path, evaluation=True)
    if data.get("kind") != "evaluate":
        raise SemcomError(f"{path}: not an evaluation preset (it needs `kind: evaluate`)")
    try:
        return EvalPlan.model_validate(data)
    except ValidationError as err:
        raise SemcomError(first_error_line(err, str(path))) from None
