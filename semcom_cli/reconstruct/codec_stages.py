"""The reconstruct checkpoint's two training stages as library calls (``semcom finetune --stage
guidance | image-codec`` runs them): train, keep a partial run beside the output every
``save_every`` steps, write the checkpoint folder, remove the partial run."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from semcom_cli.config.base import settings_from
from semcom_cli.config.preset import load_preset
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import partial_path
from semcom_cli.io.checkpoint import read_manifest
from semcom_cli.models.llm import load_backbone
from semcom_cli.reconstruct.generative.store import PARTS
from semcom_cli.reconstruct.guidance.store import GUIDE_PARTS, save_guide, train_guide
from semcom_cli.reconstruct.guidance.train import GuidanceTrain
from semcom_cli.reconstruct.imaging.train import CodecTrain, train_codec
from semcom_cli.reconstruct.model import KIND, LLM_PRESET, codec_settings, save_codec, write_checkpoint
from semcom_cli.training.partial import load_resume, save_resume
from semcom_cli.training.stages import STAGES, Stage
from semcom_cli.training.trainer import Checkpointing

__all__ = ["build_guidance", "build_codec"]


def _start(output: Path, stage: str, resume: bool, settings: dict):
    """(partial folder, the state to resume from or None, the run's settings: its own when resumed)."""
    partial = partial_path(output)
    if resume:
        state, header = load_resume(partial, stage)
        return partial, state, header.get("settings", settings)
    if output.exists() and not (output / "manifest.json").is_file():
        raise SemcomError(f"{output}: exists and is not a checkpoint; refusing to overwrite it")
    if output.exists():
        read_manifest(output, KIND)  # before the training, not after it: a reconstruct checkpoint of this layout
    shutil.rmtree(partial, ignore_errors=True)
    return partial, None, settings


def _checkpointing(partial: Path, stage: str, state, save_every: int, settings: dict) -> Checkpointing:
    """Partial runs in the one format every stage keeps (:mod:`semcom_cli.training.partial`)."""
    return Checkpointing(save_every, lambda snapshot: save_resume(partial, stage, snapshot, settings=settings), state)


def build_guidance(output: Path, cfg, resume: bool = False, save_every: int = 250, on_log=None) -> str:
    partial, state, settings = _start(output, "guidance", resume, cfg.model_dump(mode="json"))
    cfg = settings_from(GuidanceTrain, settings, "guidance settings")
    started = time.time()
    guide = train_guide(load_backbone(load_preset(LLM_PRESET).backbone), cfg, on_log,
                        _checkpointing(partial, "guidance", state, save_every, cfg.model_dump(mode="json")))
    partial.mkdir(parents=True, exist_ok=True)
    save_guide(partial, guide, cfg)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None}
    digest = write_checkpoint(output, {name: partial / name for name in GUIDE_PARTS},
                              {"guidance": cfg.model_dump(mode="json"), "query_layer": guide.reader.layer,
                               "training": {"guidance": summary}})
    shutil.rmtree(partial, ignore_errors=True)
    return digest


def build_codec(output: Path, source: Path | None, cfg: CodecTrain, resume: bool = False, save_every: int = 250,
                on_log=None) -> str:
    if source is not None and Path(source).resolve() != Path(output).resolve() and not resume:
        read_manifest(Path(source), KIND)
        if not all((Path(source) / name).is_dir() for name in GUIDE_PARTS):
            raise SemcomError(f"{source}: holds no guide (semcom finetune --stage guidance -o {source} first)")
        if output.exists():
            raise SemcomError(f"{output}: exists; give a new folder, or the same folder as -c to add the codec")
        shutil.copytree(source, output)
    partial, state, settings = _start(output, "image-codec", resume, codec_settings(cfg))
    cfg = settings_from(CodecTrain, settings, "image-codec settings")
    started = time.time()
    encoder, decoder = train_codec(cfg, on_log=on_log,
                                   checkpointing=_checkpointing(partial, "image-codec", state, save_every,
                                                                codec_settings(cfg)))
    partial.mkdir(parents=True, exist_ok=True)
    save_codec(partial, encoder, decoder, cfg)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None}
    # the generative decoder read the old codec's symbols: a new codec makes it stale
    stale = tuple((part.part, part.manifest_key) for part in PARTS.values() if part.reads_codec)
    digest = write_checkpoint(output, {"encoder": partial / "encoder", "decoder": partial / "decoder"},
                              {"codec": codec_settings(cfg), "training": {"image-codec": summary}}, stale)
    shutil.rmtree(partial, ignore_errors=True)
    return digest


STAGES.register("guidance", Stage("reconstruct", "the guide: referent parser + the image network marking it",
                                  build_guidance))
STAGES.register("image-codec", Stage("reconstruct", "the dual-path image encoder and its decoder", build_codec))
