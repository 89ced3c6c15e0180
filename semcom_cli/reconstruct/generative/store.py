"""The generative decoder's files in a reconstruct checkpoint, each with its settings in the manifest.

::

    vae.safetensors        the AutoencoderKL and the posterior network (fast mode); manifest "image_vae"
    diffusion.safetensors  the conditional UNet (quality mode);                     manifest "image_diffusion"
    features.safetensors   the scene classifier behind the KID measure;             manifest "scene_features"

Weights are kept as float16 (half the bytes; loaded as float32), the latents' scale as float32.
A checkpoint may hold the VAE without the UNet: then only ``--decoder fast`` applies.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semcom_cli.core.errors import SemcomError
from semcom_cli.reconstruct.generative.autoencoder import FastDecoder
from semcom_cli.reconstruct.generative.denoiser import build_scheduler, build_unet
from semcom_cli.reconstruct.generative.features import FeatureSettings, SceneClassifier
from semcom_cli.reconstruct.generative.train import DiffusionTrain, FeatureTrain, VaeTrain

__all__ = ["FILES", "MANIFEST_KEYS", "save_weights", "load_fast", "load_denoiser", "load_features", "settings_of",
           "as_manifest"]

FILES = {"image-vae": "vae.safetensors", "image-diffusion": "diffusion.safetensors",
         "scene-features": "features.safetensors"}
MANIFEST_KEYS = {"image-vae": "image_vae", "image-diffusion": "image_diffusion", "scene-features": "scene_features"}
_SETTINGS = {"image-vae": VaeTrain, "image-diffusion": DiffusionTrain, "scene-features": FeatureTrain}


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """Float weights as float16; one-value tensors (the latents' scale) and integers as they are."""
    tensors = {k: (v.half() if v.is_floating_point() and v.numel() > 1 else v).detach().cpu().contiguous()
               for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def as_manifest(cfg) -> dict:

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def settings_of(stage: str, manifest: dict):
    """The stage's training settings from the manifest (unknown keys ignored, lists back to tuples)."""
    cls = _SETTINGS[stage]
    known = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest[MANIFEST_KEYS[stage]].items()
                  if k in known})


def _load(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    try:
        tensors = load_file(str(path))
        module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except (SafetensorError, OSError, RuntimeError) as err:
        raise SemcomError(f"{path}: not this model's weights ({str(err).splitlines()[0][:100]})") from None
    return module.eval()


def has(folder: Path, manifest: dict, stage: str) -> bool:
    return (Path(folder) / FILES[stage]).is_file() and MANIFEST_KEYS[stage] in manifest


def load_fast(folder: Path, manifest: dict) -> FastDecoder:
    if not has(folder, manifest, "image-vae"):
        raise SemcomError(f"{folder}: holds no generative decoder (semcom finetune --stage image-vae first; "
                          f"--decoder codec decodes with part 1's decoder)")
    return _load(FastDecoder(settings_of("image-vae", manifest).autoencoder()), Path(folder) / FILES["image-vae"])


def load_denoiser(folder: Path, manifest: dict, latent_channels: int):
    """(UNet, DDIM scheduler, settings) of the quality mode."""
    if not has(folder, manifest, "image-diffusion"):
        raise SemcomError(f"{folder}: holds no diffusion model, so --decoder quality and auto cannot run "
                          f"(semcom finetune --stage image-diffusion adds one; --decoder fast needs none)")
    settings = settings_of("image-diffusion", manifest).denoiser(latent_channels)
    unet = _load(build_unet(settings), Path(folder) / FILES["image-diffusion"])
    return unet, build_scheduler(settings), settings


def load_features(folder: Path, manifest: dict) -> SceneClassifier:
    if not has(folder, manifest, "scene-features"):
        raise SemcomError(f"{folder}: holds no scene classifier for the KID measure "
                          f"(semcom finetune --stage scene-features)")
    cfg = settings_of("scene-features", manifest)
    return _load(SceneClassifier(FeatureSettings(cfg.width)), Path(folder) / FILES["scene-features"])
