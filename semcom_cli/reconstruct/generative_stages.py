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
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from semcom_cli.config.base import settings_from
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import partial_path
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
from semcom_cli.training.partial import keep_partials, start_partial
from semcom_cli.training.stages import STAGES, Stage

__all__ = ["build_generative", "install_trained", "default_settings"]


def default_settings(stage: str):
    """The stage's training settings as the recipe sets them."""
    return PARTS.lookup(stage).settings()


def _drop(stage: str) -> tuple:
    return tuple((PARTS[d].part, PARTS[d].manifest_key) for d in PARTS[stage].stale)


def _prepare(output: Path, source: Path | None, resume: bool) -> None:
    if resume:
        return
    if source is not None and Path(source).resolve() != Path(output).resolve():
        if output.exists():
            raise SemcomError(f"{output}: exists; give a new folder, or the same folder as -c to add to it")
        ReconstructModel.from_pretrained(source)  # one line if it is not a reconstruct checkpoint with a codec
        shutil.copytree(source, output)
    elif not (Path(output) / "manifest.json").is_file():
        raise SemcomError(f"{output}: no reconstruct checkpoint to add the stage to (give -c CKPT)")


def _embeddings(pool) -> dict:
    texts = pool.texts()
    return dict(zip(texts, embed_sentences(texts)))


def build_generative(stage: str, output: Path, source: Path | None, cfg, resume: bool = False,
                     save_every: int = 250, on_log=None) -> str:
    """Train one stage into the reconstruct checkpoint ``output`` (copied from ``source`` first when
    that is another folder); returns the new content hash."""

    PARTS.check(stage)
    output = Path(output)
    _prepare(output, source, resume)
    partial = partial_path(output)
    state, saved = start_partial(partial, stage, resume)
    if saved is not None:  # a resumed run goes on with its own settings
        cfg = settings_from(type(cfg), saved, f"{partial}: settings")
    settings = cfg.model_dump(mode="json")
    model = ReconstructModel.from_pretrained(output, need_codec=stage != "scene-features")
    started = time.time()
    workers = min(2, os.cpu_count() or 1)
    pool = QueryScenePool(cfg.pool, workers=workers)

    common = dict(on_log=on_log, checkpointing=keep_partials(partial, stage, save_every, state, settings))
    latent_channels = None
    if stage == "image-vae":
        module = train_vae(cfg, pool, model.encoder, _embeddings(pool), **common)
    elif stage == "image-diffusion":
        fast = load_fast(output, model.manifest)
        latent_channels = fast.settings.latent_channels
        module, _ = train_diffusion(cfg, pool, model.encoder, fast, _embeddings(pool), **common)
    else:
        module = train_features(cfg, pool, **common)
    save_stage(partial, stage, module, cfg, latent_channels)
    summary = {"steps": cfg.steps, "seconds": round(time.time() - started, 1), "device": "cpu",
               "threads": _threads(), "resumed_at": state.step if state else None}
    digest = write_checkpoint(output, {PARTS[stage].part: partial / PARTS[stage].part},
                              {PARTS[stage].manifest_key: settings, "training": {stage: summary}},
                              _drop(stage))
    shutil.rmtree(partial, ignore_errors=True)
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
    staged = partial_path(Path(output))
    shutil.rmtree(staged, ignore_errors=True)
    for stage, module, name, cfg in (("image-vae", fast, "fast", vae), ("image-diffusion", unet, "unet", diffusion),
                                     ("scene-features", net, "features", features)):
        state = load_file(str(Path(trained) / f"{name}.safetensors"))
        module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        save_stage(staged, stage, module, cfg, vae.latent_channels)
    digest = write_checkpoint(Path(output), {PARTS[stage].part: staged / PARTS[stage].part for stage in PARTS},
                              update)
    shutil.rmtree(staged, ignore_errors=True)
    return digest


STAGES.register("image-vae", Stage("generative", "the generative decoder's fast mode (SNR-conditioned VAE)",
                                   functools.partial(build_generative, "image-vae")))
STAGES.register("image-diffusion", Stage("generative", "its quality mode (conditional latent diffusion)",
                                         functools.partial(build_generative, "image-diffusion")))
STAGES.register("scene-features", Stage("generative", "the scene classifier behind the KID measure",
                                        functools.partial(build_generative, "scene-features")))
