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
from semcom_cli.reconstruct.model import KIND, LLM_PRESET, save_codec, write_checkpoint
from semcom_cli.training.partial import keep_partials, start_partial
from semcom_cli.training.stages import STAGES, Stage

__all__ = ["build_guidance", "build_codec"]


def _start(output: Path, stage: str, resume: bool, settings: dict):
    """(partial folder, the state to resume from or None, the run's settings: its own when resumed)."""
    if not resume and output.exists():
        if not (output / "manifest.json").is_file():
            raise SemcomError(f"{output}: exists and is not a checkpoint; refusing to overwrite it")
        read_manifest(output, KIND)  # before the training, not after it: a reconstruct checkpoint of this layout
    partial = partial_path(output)
    state, saved = start_partial(partial, stage, resume)
    return partial, state, saved or settings


def build_guidance(output: Path, cfg, resume: bool = False, save_every: int = 250, on_log=None) -> str:
    partial, state, settings = _start(output, "guidance", resume, cfg.model_dump(mode="json"))
    cfg = settings_from(GuidanceTrain, settings, "guidance settings")
    settings = cfg.model_dump(mode="json")  # as validated: what the partial runs and the manifest record
    started = time.time()
    guide = train_guide(load_backbone(load_preset(LLM_PRESET).backbone), cfg, on_log,
                        keep_partials(partial, "guidance", save_every, state, settings))
    partial.mkdir(parents=True, exist_ok=True)
    save_guide(partial, guide, cfg)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None}
    digest = write_checkpoint(output, {name: partial / name for name in GUIDE_PARTS},
                              {"guidance": settings, "query_layer": guide.reader.layer,
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
    partial, state, settings = _start(output, "image-codec", resume, cfg.model_dump(mode="json"))
    cfg = settings_from(CodecTrain, settings, "image-codec settings")
    settings = cfg.model_dump(mode="json")  # as validated: what the partial runs and the manifest record
    started = time.time()
    encoder, decoder = train_codec(cfg, on_log=on_log,
                                   checkpointing=keep_partials(partial, "image-codec", save_every, state, settings))
    partial.mkdir(parents=True, exist_ok=True)
    save_codec(partial, encoder, decoder, cfg)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None}
    # the generative decoder read the old codec's symbols: a new codec makes it stale
    stale = tuple((part.part, part.manifest_key) for part in PARTS.values() if part.reads_codec)
    digest = write_checkpoint(output, {"encoder": partial / "encoder", "decoder": partial / "decoder"},
                              {"codec": settings, "training": {"image-codec": summary}}, stale)
    shutil.rmtree(partial, ignore_errors=True)
    return digest


STAGES.register("guidance", Stage("reconstruct", "the guide: referent parser + the image network marking it",
                                  build_guidance))
STAGES.register("image-codec", Stage("reconstruct", "the dual-path image encoder and its decoder", build_codec))
