"""The reconstruct checkpoint's training stages as library calls (``semcom finetune --stage
guidance | guide-checks | image-codec`` runs them): train, keep a partial run beside the output
every ``save_every`` steps, write the checkpoint folder, remove the partial run. ``guide-checks``
retrains the guide's parser and presence check alone (minutes: no partial runs) and measures their
thresholds again."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from semcom_cli.config.base import settings_from
from semcom_cli.config.preset import load_preset
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.runtime import resolve_device
from semcom_cli.io.checkpoint import load_part, read_manifest, staged_folder
from semcom_cli.models.llm import load_backbone
from semcom_cli.reconstruct.generative.store import PARTS
from semcom_cli.reconstruct.guidance.model import GuidanceNet
from semcom_cli.reconstruct.guidance.query import QueryReader
from semcom_cli.reconstruct.guidance.store import (
    CHECK_PARTS,
    GUIDE_PARTS,
    GuideChecksTrain,
    guidance_settings,
    guide_manifest,
    net_config,
    save_checks,
    save_guide,
    train_checks,
    train_guide,
)
from semcom_cli.reconstruct.guidance.train import GuidanceTrain
from semcom_cli.reconstruct.imaging.train import CodecTrain, train_codec
from semcom_cli.reconstruct.model import KIND, LLM_PRESET, ReconstructModel, save_codec, write_checkpoint
from semcom_cli.training.memory import check_memory
from semcom_cli.training.partial import finish_partial, keep_partials, start_partial
from semcom_cli.training.stages import STAGES, Stage

__all__ = ["build_guidance", "build_checks", "build_codec"]


def _start(output: Path, stage: str, resume: bool, cls, settings: dict):
    """(partial folder, the state to resume from or None, the run's settings: its own when resumed, validated
    and checked against the memory a batch needs), before anything is trained. A folder already at
    ``output`` must be a reconstruct checkpoint (the command checked it may be replaced or added to)."""
    if output.exists() and not resume:
        if not (output / "manifest.json").is_file():
            raise SemcomError(f"{output}: exists and is not a checkpoint; refusing to overwrite it")
        read_manifest(output, KIND)  # before the training, not after it: a reconstruct checkpoint of this layout
    partial, state, saved = start_partial(output, stage, resume)
    cfg = settings_from(cls, saved or settings, f"{partial}: settings" if saved else f"{stage} settings")
    check_memory(f"stage {stage}", cfg.memory())
    return partial, state, cfg


def build_guidance(output: Path, cfg, resume: bool = False, save_every: int = 250, on_log=None) -> str:
    """Train the guide into the reconstruct checkpoint ``output`` (a new one, or the guide of the one there
    replaced); returns the content hash. A failed run writes nothing at ``output``."""
    output = Path(output)
    partial, state, cfg = _start(output, "guidance", resume, GuidanceTrain, cfg.model_dump(mode="json"))
    settings = cfg.model_dump(mode="json")  # as validated: what the partial runs and the manifest record
    started = time.time()
    guide, measured = train_guide(load_backbone(load_preset(LLM_PRESET).backbone), cfg, on_log,
                                  keep_partials(partial, "guidance", save_every, state, settings))
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None}
    with staged_folder(output) as trained:
        save_guide(trained, guide, cfg)
        digest = write_checkpoint(output, {name: trained / name for name in GUIDE_PARTS},
                                  {"guidance": settings, **guide_manifest(guide, measured),
                                   "training": {"guidance": summary}})
    finish_partial(partial)
    return digest


def build_checks(output: Path, source: Path | None, cfg: GuideChecksTrain, on_log=None) -> str:
    """Retrain the guide's checks of ``source`` (default: ``output`` itself): the referent parser (its
    "unknown") and the presence check (its "not found"), with their thresholds measured on validation
    queries and scenes; the rest of the checkpoint is kept. Returns the content hash; a failed run
    leaves ``output`` as it was."""
    output = Path(output)
    base = Path(source) if source is not None else output
    manifest = read_manifest(base, KIND)
    if "guidance" not in manifest or not (base / "guide_net").is_dir():
        raise SemcomError(f"{base}: holds no guide to check (semcom finetune --stage guidance first)")
    net = GuidanceNet(guidance_settings(manifest).width)
    load_part(base, "guide_net", net, net_config(guidance_settings(manifest)))
    net.eval()
    llm = load_backbone(load_preset(manifest.get("llm_preset", LLM_PRESET)).backbone)
    reader = QueryReader(llm, layer=int(manifest.get("query_layer", 12)))
    started = time.time()
    guide, measured = train_checks(reader, net, cfg, on_log)
    summary = {"steps": cfg.total_steps, "seconds": round(time.time() - started, 1)}
    with staged_folder(output) as trained:
        save_checks(trained, guide)
        return write_checkpoint(output, {name: trained / name for name in CHECK_PARTS},
                                {**guide_manifest(guide, measured), "guide_checks": cfg.model_dump(mode="json"),
                                 "training": {"guide-checks": summary}},
                                base=None if base.resolve() == output.resolve() else base)


def build_codec(output: Path, source: Path | None, cfg: CodecTrain, resume: bool = False, save_every: int = 250,
                on_log=None, device: str = "cpu") -> str:
    """Train the codec on ``device`` into ``output``: ``source``'s checkpoint (its guide) with the codec added,
    in place of what is at ``output`` (``source`` None or ``output`` itself: the codec added to ``output``).
    Nothing is copied before the training, so a failed run leaves ``output`` as it was; returns the content
    hash. A run stopped on one device goes on (``resume``) on another: the partial run is saved on the CPU."""
    output = Path(output)
    base = None
    if source is not None and Path(source).resolve() != output.resolve():
        ReconstructModel.from_pretrained(Path(source), need_codec=False)  # one line if it is not one, or damaged
        if not all((Path(source) / name).is_dir() for name in GUIDE_PARTS):
            raise SemcomError(f"{source}: holds no guide (semcom finetune --stage guidance -o {source} first)")
        base = Path(source)
    partial, state, cfg = _start(output, "image-codec", resume, CodecTrain, cfg.model_dump(mode="json"))
    settings = cfg.model_dump(mode="json")  # as validated: what the partial runs and the manifest record
    started = time.time()
    device = resolve_device(device)
    encoder, decoder = train_codec(cfg, on_log=on_log, device=device,
                                   checkpointing=keep_partials(partial, "image-codec", save_every, state, settings))
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None, "device": _device_name(device)}
    # the generative decoder read the old codec's symbols: a new codec makes it stale
    stale = tuple((part.part, part.manifest_key) for part in PARTS.values() if part.reads_codec)
    with staged_folder(output) as trained:
        save_codec(trained, encoder, decoder, cfg)
        digest = write_checkpoint(output, {"encoder": trained / "encoder", "decoder": trained / "decoder"},
                                  {"codec": settings, "training": {"image-codec": summary}}, stale, base=base)
    finish_partial(partial)
    return digest


def _device_name(device) -> str:
    """Where a stage trained, as the manifest records it: ``cpu``, or the GPU's model name."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


STAGES.register("guidance", Stage("reconstruct", "the guide: referent parser + the image network marking it",
                                  build_guidance))
STAGES.register("guide-checks", Stage("reconstruct", "the guide's 'unknown' (referent parser) and 'not found' "
                                                     "(presence check), with their thresholds", build_checks))
STAGES.register("image-codec", Stage("reconstruct", "the dual-path image encoder and its decoder", build_codec))
