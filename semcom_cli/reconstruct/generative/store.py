"""The generative decoder's parts in a reconstruct checkpoint (the one checkpoint layout,
:mod:`semcom_cli.io.checkpoint`), each with its training settings in the manifest::

    vae/             the AutoencoderKL and the posterior network (fast mode); manifest "image_vae"
    diffusion/       the conditional UNet (quality mode);                     manifest "image_diffusion"
    scene_features/  the scene classifier behind the KID measure;             manifest "scene_features"

Weights are kept as float16 (half the bytes; loaded as float32), the latents' scale as float32.
A checkpoint may hold the VAE without the UNet: then only ``--decoder fast`` applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from semcom_cli.config.base import settings_from
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.io.checkpoint import load_part, save_part
from semcom_cli.reconstruct.generative.autoencoder import FastDecoder
from semcom_cli.reconstruct.generative.denoiser import build_scheduler, build_unet
from semcom_cli.reconstruct.generative.features import FeatureSettings, SceneClassifier
from semcom_cli.reconstruct.generative.train import DiffusionTrain, FeatureTrain, VaeTrain

__all__ = ["StoredPart", "PARTS", "network_config", "save_stage", "save_weights", "load_fast", "load_denoiser",
           "load_features", "settings_of", "has"]


@dataclass(frozen=True)
class StoredPart:
    """One generative stage's trace in a checkpoint: its part (a folder), its manifest entry, its settings'
    type, the stages its new weights make stale (they were trained on the old ones), and whether it read
    the codec's symbols (a new codec makes it stale too)."""

    part: str
    manifest_key: str
    settings: type
    stale: tuple[str, ...] = ()
    reads_codec: bool = False


# the generative stages, by stage name, in training order
PARTS: Registry[StoredPart] = Registry("generative stage")
PARTS.register("image-vae", StoredPart("vae", "image_vae", VaeTrain, stale=("image-diffusion",), reads_codec=True))
PARTS.register("image-diffusion", StoredPart("diffusion", "image_diffusion", DiffusionTrain, reads_codec=True))
PARTS.register("scene-features", StoredPart("scene_features", "scene_features", FeatureTrain))


def network_config(stage: str, cfg, latent_channels: int | None = None) -> dict:
    """The arguments that rebuild a stage's network (its part's ``config.json``), from its settings; the
    diffusion model's also from the VAE's latent channels."""
    if stage == "image-vae":
        return asdict(cfg.autoencoder())
    if stage == "image-diffusion":
        d = cfg.denoiser(latent_channels)
        return {"channels": list(d.channels), "latent_channels": d.latent_channels,
                "train_timesteps": d.train_timesteps}
    return {"width": cfg.width}


def save_stage(folder: Path, stage: str, module: torch.nn.Module, cfg, latent_channels: int | None = None) -> None:
    """A trained generative network as its part of ``folder``, in float16."""
    save_part(Path(folder), PARTS.lookup(stage).part, module, network_config(stage, cfg, latent_channels), "float16")


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """A network's state alone, float weights as float16 (one-value tensors and integers as they are): what
    ``benchmarks/generative_gpu.py`` hands back, before ``install_trained`` makes parts of it."""
    tensors = {k: (v.half() if v.is_floating_point() and v.numel() > 1 else v).detach().cpu().contiguous()
               for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def settings_of(stage: str, manifest: dict):
    """The stage's training settings from the manifest (keys a later semcom added ignored)."""
    part = PARTS.lookup(stage)
    return settings_from(part.settings, manifest[part.manifest_key], f"manifest: {part.manifest_key}", known_only=True)


def has(folder: Path, manifest: dict, stage: str) -> bool:
    part = PARTS.lookup(stage)
    return (Path(folder) / part.part).is_dir() and part.manifest_key in manifest


def load_fast(folder: Path, manifest: dict) -> FastDecoder:
    if not has(folder, manifest, "image-vae"):
        raise SemcomError(f"{folder}: holds no generative decoder (semcom finetune --stage image-vae first; "
                          f"--decoder codec decodes with part 1's decoder)")
    cfg = settings_of("image-vae", manifest)
    fast = FastDecoder(cfg.autoencoder())
    load_part(Path(folder), PARTS["image-vae"].part, fast, network_config("image-vae", cfg))
    return fast.eval()


def load_denoiser(folder: Path, manifest: dict, latent_channels: int):
    """(UNet, DDIM scheduler, settings) of the quality mode."""
    if not has(folder, manifest, "image-diffusion"):
        raise SemcomError(f"{folder}: holds no diffusion model, so --decoder quality and auto cannot run "
                          f"(semcom finetune --stage image-diffusion adds one; --decoder fast needs none)")
    cfg = settings_of("image-diffusion", manifest)
    settings = cfg.denoiser(latent_channels)
    unet = build_unet(settings)
    load_part(Path(folder), PARTS["image-diffusion"].part, unet,
                network_config("image-diffusion", cfg, latent_channels))
    return unet.eval(), build_scheduler(settings), settings


def load_features(folder: Path, manifest: dict) -> SceneClassifier:
    if not has(folder, manifest, "scene-features"):
        raise SemcomError(f"{folder}: holds no scene classifier for the KID measure "
                          f"(semcom finetune --stage scene-features)")
    cfg = settings_of("scene-features", manifest)
    net = SceneClassifier(FeatureSettings(cfg.width))
    load_part(Path(folder), PARTS["scene-features"].part, net, network_config("scene-features", cfg))
    return net.eval()
