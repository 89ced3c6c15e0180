"""The reconstruct checkpoint (MLLM-SC): the guide and the dual-path codec, beside SmolLM2.

::

    <checkpoint>/                       (shipped: checkpoints/semcom-scenes)
      manifest.json          format, the settings of both stages, the LLM preset, versions,
                             training summaries, measured figures, content hash
      guidance.safetensors   the guide's image network and referent parser (settings in its metadata)
      codec.safetensors      the encoder's and decoder's weights
      vae.safetensors        the generative decoder (:mod:`semcom_cli.reconstruct.generative.store`):
      diffusion.safetensors  the fast mode's VAE, the quality mode's diffusion model and the scene
      features.safetensors   classifier behind the KID measure

``semcom finetune --stage guidance -o DIR`` writes the first two files, ``--stage image-codec``
the codec; each stage keeps what the folder already holds. The content hash covers the weights and
the manifest but its run records (:func:`semcom_cli.system.checkpoint.checkpoint_hash`); a packet
records it, so a packet is decoded only by the codec that made it.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, fields
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semcom_cli.config.preset import load_preset
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import read_json_file
from semcom_cli.core.resources import default_checkpoint
from semcom_cli.core.runtime import versions
from semcom_cli.io.patches import ROI_THRESHOLD
from semcom_cli.models.llm import load_backbone
from semcom_cli.reconstruct.generative.decoder import GenerativeDecoder
from semcom_cli.reconstruct.generative.store import PARTS
from semcom_cli.reconstruct.guidance.store import load_guide
from semcom_cli.reconstruct.imaging.codec import DualPathEncoder, ImageDecoder
from semcom_cli.reconstruct.imaging.train import CodecTrain
from semcom_cli.system.checkpoint import HASH_SCHEME, checkpoint_hash, publish_folder, staged_folder

__all__ = ["RECONSTRUCT_FORMAT", "ReconstructModel", "default_scenes_checkpoint", "write_checkpoint"]

RECONSTRUCT_FORMAT = "semcom-reconstruct-checkpoint"
SCENES_CHECKPOINT_NAME = "semcom-scenes"
LLM_PRESET = "smollm2"  # whose backbone reads the queries
CODEC_FILE = "codec.safetensors"


def default_scenes_checkpoint() -> Path:
    return default_checkpoint().parent / SCENES_CHECKPOINT_NAME


def write_checkpoint(folder: Path, files: dict[str, Path | None], manifest_update: dict, drop: tuple = ()) -> str:
    """Write ``folder`` atomically: the files it already holds, replaced by ``files`` (name → a file to
    copy in), less the files named in ``drop`` (and their manifest keys: ``drop`` holds (file, key)
    pairs), its manifest updated; returns the content hash."""
    folder = Path(folder)
    old: dict = {}
    if folder.exists():
        if not (folder / "manifest.json").is_file():
            raise SemcomError(f"{folder}: exists and is not a checkpoint; refusing to replace it")
        old = read_json_file(folder / "manifest.json", "manifest", "checkpoint manifest (corrupted)")
    with staged_folder(folder) as tmp:
        dropped = {name for name, _ in drop}
        for name in ("guidance.safetensors", CODEC_FILE, *(part.file for part in PARTS.values())):
            source = files.get(name) or (folder / name if (folder / name).is_file() else None)
            if name in dropped and name not in files:
                continue
            if source is not None:
                shutil.copyfile(source, tmp / name)
        manifest = {**old, "format": RECONSTRUCT_FORMAT, "format_version": 1, "hash_scheme": HASH_SCHEME,
                    "name": folder.name, "llm_preset": LLM_PRESET, "versions": versions()}
        for key, value in manifest_update.items():
            if key == "training":
                manifest["training"] = {**manifest.get("training", {}), **value}
            else:
                manifest[key] = value
        for _, key in drop:
            manifest.pop(key, None)
        manifest.pop("hash", None)
        return publish_folder(tmp, folder, manifest)


def save_codec(path: Path, encoder: DualPathEncoder, decoder: ImageDecoder) -> None:
    tensors = {f"encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    tensors |= {f"decoder.{k}": v.contiguous() for k, v in decoder.state_dict().items()}
    save_file(tensors, str(path))


class ReconstructModel:
    """A loaded reconstruct checkpoint. The guide (and with it SmolLM2) loads on first use."""

    def __init__(self, folder: Path, manifest: dict, encoder: DualPathEncoder, decoder: ImageDecoder):
        self.folder, self.manifest = folder, manifest
        self.encoder, self.decoder = encoder, decoder
        self.name, self.hash = folder.name, manifest["hash"]
        self._guide = None
        self._generative = None

    @classmethod
    def from_pretrained(cls, folder: Path | None = None, need_codec: bool = True) -> "ReconstructModel":
        folder = Path(folder) if folder is not None else default_scenes_checkpoint()
        if not (folder / "manifest.json").is_file():
            raise SemcomError(f"{folder}: not a semcom checkpoint (no manifest.json)")
        manifest = read_json_file(folder / "manifest.json", "manifest", "checkpoint manifest (corrupted)")
        if not isinstance(manifest, dict) or manifest.get("format") != RECONSTRUCT_FORMAT:
            raise SemcomError(f"{folder}: not a reconstruct checkpoint (task reconstruct needs one such as "
                              f"checkpoints/{SCENES_CHECKPOINT_NAME}; 'make checkpoint-scenes' builds it)")
        if manifest.get("hash") != checkpoint_hash(folder, manifest):
            raise SemcomError(f"{folder}: its files do not match the manifest's hash (damaged or edited)")
        encoder = decoder = None
        if need_codec:
            if not (folder / CODEC_FILE).is_file() or "codec" not in manifest:
                raise SemcomError(f"{folder}: holds no image codec yet (semcom finetune --stage image-codec)")
            known = {f.name for f in fields(CodecTrain)}
            cfg = CodecTrain(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in manifest["codec"].items() if k in known})
            encoder, decoder = DualPathEncoder(cfg.width), ImageDecoder(cfg.width)
            try:
                tensors = load_file(str(folder / CODEC_FILE))
                encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
                decoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
            except (SafetensorError, OSError, RuntimeError) as err:
                raise SemcomError(f"{folder / CODEC_FILE}: not this codec's weights ({str(err).splitlines()[0][:100]})"
                                  ) from None
            encoder.eval()
            decoder.eval()
        return cls(folder, manifest, encoder, decoder)

    @property
    def guide(self):
        if self._guide is None:

            llm = load_backbone(load_preset(self.manifest.get("llm_preset", LLM_PRESET)).backbone)
            self._guide = load_guide(self.folder, llm)
        return self._guide

    @property
    def generative(self):
        """The generative decoder (:class:`semcom_cli.reconstruct.generative.decoder.GenerativeDecoder`), loaded on
        first use; a checkpoint without one says so in one line."""
        if self._generative is None:

            self._generative = GenerativeDecoder(self.folder, self.manifest)
        return self._generative

    @property
    def roi_threshold(self) -> float:
        return float(self.manifest.get("roi_threshold", ROI_THRESHOLD))


def codec_settings(cfg: CodecTrain) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
