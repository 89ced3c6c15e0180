"""The generative decoder's files in a reconstruct checkpoint, each with its settings in the manifest.

::

    vae.safetensors        the AutoencoderKL and the posterior network (fast mode); manifest "image_vae"
    diffusion.safetensors  the conditional UNet (quality mode);                     manifest "image_diffusion"
    features.safetensors   the scene classifier behind the KID measure;             manifest "scene_features"

Weights are kept as float16 (half the bytes; loaded as float32), the latents' scale as float32.
A checkpoint may hold the VAE without the UNet: then only ``--decoder fast`` applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.reconstruct.generative.autoencoder import FastDecoder
from semcom_cli.reconstruct.generative.denoiser import build_scheduler, build_unet
from semcom_cli.reconstruct.generative.features import FeatureSettings, SceneClassifier
from semcom_cli.reconstruct.generative.train import DiffusionTrain, FeatureTrain, VaeTrain

__all__ = ["StoredPart", "PARTS", "save_weights", "load_fast", "load_denoiser", "load_features", "settings_of",
           "as_manifest", "has"]


@dataclass(frozen=True)
class StoredPart:
    """One generative stage's trace in a checkpoint: its weights file, its manifest entry, its settings'
    type, and the stages its new weights make stale (they were trained on the old ones)."""

    file: str
    manifest_key: str
    settings: type
    stale: tuple[str, ...] = ()


# the generative stages, by stage name, in training order
PARTS: Registry[StoredPart] = Registry("generative stage")
PARTS.register("image-vae", StoredPart("vae.safetensors", "image_vae", VaeTrain, stale=("image-diffusion",)))
PARTS.register("image-diffusion", StoredPart("diffusion.safetensors", "image_diffusion", DiffusionTrain))
PARTS.register("scene-features", StoredPart("features.safetensors", "scene_features", FeatureTrain))


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """Float weights as float16; one-value tensors (the latents' scale) and integers as they are."""
    tensors = {k: (v.half() if v.is_floating_point() and v.numel() > 1 else v).detach().cpu().contiguous()
               for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def as_manifest(cfg) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def settings_of(stage: str, manifest: dict):
    """The stage's training settings from the manifest (unknown keys ignored, lists back to tuples)."""
    part = PARTS.lookup(stage)
    known = {f.name for f in fields(part.settings)}
    return part.settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest[part.manifest_key].items()
                  if k in known})


def _load(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    try:
        tensors = load_file(str(path))
        module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except (SafetensorError, OSError, RuntimeError) as err:
        raise SemcomError(f"{path}: not this model's weights ({str(err).splitlines()[0][:100]})") from None
    return module.eval()


def has(folder: Path, manifest: dict, stage: str) -> bool:
    part = PARTS.lookup(stage)
    return (Path(folder) / part.file).is_file() and part.manifest_key in manifest


def load_fast(folder: Path, manifest: dict) -> FastDecoder:
    if not has(folder, manifest, "image-vae"):
        raise SemcomError(f"{folder}: holds no generative decoder (semcom finetune --stage image-vae first; "
                          f"--decoder codec decodes with part 1's decoder)")
    return _load(FastDecoder(settings_of("image-vae", manifest).autoencoder()), Path(folder) / PARTS["image-vae"].file)


def load_denoiser(folder: Path, manifest: dict, latent_channels: int):
    """(UNet, DDIM scheduler, settings) of the quality mode."""
    if not has(folder, manifest, "image-diffusion"):
        raise SemcomError(f"{folder}: holds no diffusion model, so --decoder quality and auto cannot run "
                          f"(semcom finetune --stage image-diffusion adds one; --decoder fast needs none)")
    settings = settings_of("image-diffusion", manifest).denoiser(latent_channels)
    unet = _load(build_unet(settings), Path(folder) / PARTS["image-diffusion"].file)
    return unet, build_scheduler(settings), settings


def load_features(folder: Path, manifest: dict) -> SceneClassifier:
    if not has(folder, manifest, "scene-features"):
        raise SemcomError(f"{folder}: holds no scene classifier for the KID measure "
                          f"(semcom finetune --stage scene-features)")
    cfg = settings_of("scene-features", manifest)
    return _load(SceneClassifier(FeatureSettings(cfg.width)), Path(folder) / PARTS["scene-features"].file)
