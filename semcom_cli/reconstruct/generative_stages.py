"""The generative decoder's stages as library calls (``semcom finetune --stage image-vae |
image-diffusion | scene-features -c CKPT -o OUT``): train with a partial run beside the output every
``save_every`` steps, write the file into the reconstruct checkpoint, remove the partial run.
:func:`install_trained` puts files trained elsewhere (``benchmarks/generative_gpu.py``) into one.

Order matters: the VAE's posterior reads part 1's symbols, and the diffusion model works in the
VAE's latent space, so a new codec drops the VAE and the diffusion model, and a new VAE drops the
diffusion model (the checkpoint then says what is missing when asked for it).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from semcom_cli.config.base import settings_from
from semcom_cli.core.errors import SemcomError
from semcom_cli.io.checkpoint import refuse_non_finite, staged_folder
from semcom_cli.models.embedding import embed_sentences
from semcom_cli.reconstruct.generative.autoencoder import FastDecoder
from semcom_cli.reconstruct.generative.data import QueryScenePool
from semcom_cli.reconstruct.generative.denoiser import build_unet
from semcom_cli.reconstruct.generative.features import FeatureSettings, SceneClassifier
from semcom_cli.reconstruct.generative.store import (
    PARTS,
    load_fast,
    save_stage,
    settings_of,
)
from semcom_cli.reconstruct.generative.train import (
    train_diffusion,
    train_features,
    train_vae,
)
from semcom_cli.reconstruct.model import ReconstructModel, write_checkpoint
from semcom_cli.training.memory import check_memory
from semcom_cli.training.partial import finish_partial, keep_partials, start_partial
from semcom_cli.training.stages import STAGES, Stage

__all__ = ["build_generative", "install_trained", "default_settings"]


def default_settings(stage: str):
    """The stage's training settings as the recipe sets them."""
    return PARTS.lookup(stage).settings()


def _drop(stage: str) -> tuple:
    return tuple((PARTS[d].part, PARTS[d].manifest_key) for d in PARTS[stage].stale)


def _source(output: Path, source: Path | None) -> Path:
    """The reconstruct checkpoint a stage reads (and the new one starts from): ``source``, or ``output``
    itself when no other is given."""
    if source is not None:
        return Path(source)
    if not (Path(output) / "manifest.json").is_file():
        raise SemcomError(f"{output}: no reconstruct checkpoint to add the stage to (give -c CKPT)")
    return Path(output)


def _embeddings(pool) -> dict:
    texts = pool.texts()
    return dict(zip(texts, embed_sentences(texts)))


def build_generative(stage: str, output: Path, source: Path | None, cfg, resume: bool = False,
                     save_every: int = 250, on_log=None) -> str:
    """Train one stage into the reconstruct checkpoint ``output``: ``source``'s checkpoint with the stage
    added, in place of what is at ``output`` (``source`` None: the stage added to ``output``); returns the
    new content hash. Nothing is written at ``output`` before the training ends: a failed run leaves it as
    it was (or absent)."""

    PARTS.check(stage)
    output = Path(output)
    base = _source(output, source)
    model = ReconstructModel.from_pretrained(base, need_codec=stage != "scene-features")  # one line if not one
    if output.exists() and output.resolve() != base.resolve() and not (output / "manifest.json").is_file():
        raise SemcomError(f"{output}: exists and is not a checkpoint; refusing to overwrite it")
    partial, state, saved = start_partial(output, stage, resume)
    if saved is not None:  # a resumed run goes on with its own settings
        cfg = settings_from(type(cfg), saved, f"{partial}: settings")
    check_memory(f"stage {stage}", cfg.memory())
    settings = cfg.model_dump(mode="json")
    started = time.time()
    workers = min(2, os.cpu_count() or 1)
    pool = QueryScenePool(cfg.pool, workers=workers)

    common = dict(on_log=on_log, checkpointing=keep_partials(partial, stage, save_every, state, settings))
    latent_channels = None
    if stage == "image-vae":
        module = train_vae(cfg, pool, model.encoder, _embeddings(pool), **common)
    elif stage == "image-diffusion":
        fast = load_fast(base, model.manifest)
        latent_channels = fast.settings.latent_channels
        module, _ = train_diffusion(cfg, pool, model.encoder, fast, _embeddings(pool), **common)
    else:
        module = train_features(cfg, pool, **common)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1), "device": "cpu",
               "threads": _threads(), "resumed_at": state.step if state else None}
    with staged_folder(output) as trained:
        save_stage(trained, stage, module, cfg, latent_channels)
        digest = write_checkpoint(output, {PARTS[stage].part: trained / PARTS[stage].part},
                                  {PARTS[stage].manifest_key: settings, "training": {stage: summary}},
                                  _drop(stage), base=base)
    finish_partial(partial)
    return digest


def _threads() -> int:
    return torch.get_num_threads()


def install_trained(output: Path, trained: Path) -> str:
    """Put the networks ``benchmarks/generative_gpu.py`` trained (``trained``: fast, unet and features
    weights and settings.json) into the reconstruct checkpoint ``output`` as its generative parts."""
    records = json.loads((Path(trained) / "settings.json").read_text())
    update: dict = {"training": {}}
    for stage in PARTS:
        record = records[stage]
        update[PARTS[stage].manifest_key] = dict(record["settings"])
        update["training"][stage] = {"steps": record["settings"]["steps"], "seconds": record["seconds"],
                                     "device": records["device"], "torch": records["torch"]}
        earlier = records.get("init", {}).get(stage)
        if earlier is not None and earlier != record:  # this run went on from an earlier one's weights
            update["training"][stage]["continued_from"] = {"steps": earlier["settings"]["steps"],
                                                           "seconds": earlier["seconds"],
                                                           "lr": earlier["settings"]["lr"]}
    vae, diffusion, features = (settings_of(stage, update) for stage in PARTS)  # read back as the loaders will
    fast = FastDecoder(vae.autoencoder())
    unet = build_unet(diffusion.denoiser(vae.latent_channels))
    net = SceneClassifier(FeatureSettings(features.width))
    with staged_folder(Path(output)) as staged:
        for stage, module, name, cfg in (("image-vae", fast, "fast", vae),
                                         ("image-diffusion", unet, "unet", diffusion),
                                         ("scene-features", net, "features", features)):
            state = load_file(str(Path(trained) / f"{name}.safetensors"))
            module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
            refuse_non_finite(module, f"{trained}: {name}.safetensors")
            save_stage(staged, stage, module, cfg, vae.latent_channels)
        return write_checkpoint(Path(output), {PARTS[stage].part: staged / PARTS[stage].part for stage in PARTS},
                                update)


STAGES.register("image-vae", Stage("generative", "the generative decoder's fast mode (SNR-conditioned VAE)",
                                   functools.partial(build_generative, "image-vae")))
STAGES.register("image-diffusion", Stage("generative", "its quality mode (conditional latent diffusion)",
                                         functools.partial(build_generative, "image-diffusion")))
STAGES.register("scene-features", Stage("generative", "the scene classifier behind the KID measure",
                                        functools.partial(build_generative, "scene-features")))
