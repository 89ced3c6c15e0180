"""The reconstruct checkpoint's two training stages as library calls (``semcom finetune --stage
guidance | image-codec`` runs them): train, keep a partial run beside the output every
``save_every`` steps, write the checkpoint folder, remove the partial run."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

from semcom_cli.config.preset import load_preset
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import partial_path
from semcom_cli.models.llm import load_backbone
from semcom_cli.reconstruct.guidance.store import save_guide, train_guide
from semcom_cli.reconstruct.guidance.train import GuidanceTrain
from semcom_cli.reconstruct.imaging.train import CodecTrain, train_codec
from semcom_cli.reconstruct.model import LLM_PRESET, codec_settings, save_codec, write_checkpoint
from semcom_cli.reconstruct.partial import load_state, save_state
from semcom_cli.training.stages import STAGES, Stage

__all__ = ["build_guidance", "build_codec"]


def _start(output: Path, stage: str, resume: bool, settings: dict):
    partial = partial_path(output)
    if resume:
        state = load_state(partial, stage)
        return partial, state, state.settings
    if output.exists() and not (output / "manifest.json").is_file():
        raise SemcomError(f"{output}: exists and is not a checkpoint; refusing to overwrite it")
    shutil.rmtree(partial, ignore_errors=True)
    return partial, None, settings


def build_guidance(output: Path, cfg, resume: bool = False, save_every: int = 250, on_log=None) -> str:
    partial, state, settings = _start(output, "guidance", resume, asdict(cfg))
    cfg = GuidanceTrain(**{k: v for k, v in settings.items() if k != "rng"})
    started = time.time()

    def keep(step, modules, optimiser, schedule, rng_state):
        save_state(partial, "guidance", step, modules, optimiser, schedule, {**asdict(cfg), "rng": rng_state})

    guide = train_guide(load_backbone(load_preset(LLM_PRESET).backbone), cfg, on_log, resume=state,
                        save_every=save_every, on_save=keep)
    partial.mkdir(parents=True, exist_ok=True)
    weights = save_guide(partial, guide, cfg)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None}
    digest = write_checkpoint(output, {"guidance.safetensors": weights},
                              {"guidance": asdict(cfg), "query_layer": guide.reader.layer,
                               "training": {"guidance": summary}})
    shutil.rmtree(partial, ignore_errors=True)
    return digest


def build_codec(output: Path, source: Path | None, cfg: CodecTrain, resume: bool = False, save_every: int = 250,
                on_log=None) -> str:
    if source is not None and Path(source).resolve() != Path(output).resolve() and not resume:
        if not (Path(source) / "guidance.safetensors").is_file():
            raise SemcomError(f"{source}: holds no guide (semcom finetune --stage guidance -o {source} first)")
        if output.exists():
            raise SemcomError(f"{output}: exists; give a new folder, or the same folder as -c to add the codec")
        shutil.copytree(source, output)
    partial, state, settings = _start(output, "image-codec", resume, codec_settings(cfg))
    cfg = CodecTrain(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
    started = time.time()

    def keep(step, modules, optimiser, schedule):
        save_state(partial, "image-codec", step, modules, optimiser, schedule, codec_settings(cfg))

    encoder, decoder = train_codec(cfg, on_log=on_log, resume=state, save_every=save_every, on_save=keep)
    partial.mkdir(parents=True, exist_ok=True)
    save_codec(partial / "codec.safetensors", encoder, decoder)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1),
               "resumed_at": state.step if state else None}
    # the generative decoder read the old codec's symbols: a new codec makes it stale
    stale = (("vae.safetensors", "image_vae"), ("diffusion.safetensors", "image_diffusion"))
    digest = write_checkpoint(output, {"codec.safetensors": partial / "codec.safetensors"},
                              {"codec": codec_settings(cfg), "training": {"image-codec": summary}}, stale)
    shutil.rmtree(partial, ignore_errors=True)
    return digest


STAGES.register("guidance", Stage("reconstruct", "the guide: referent parser + the image network marking it",
                                  build_guidance))
STAGES.register("image-codec", Stage("reconstruct", "the dual-path image encoder and its decoder", build_codec))
