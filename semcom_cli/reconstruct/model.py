"""The reconstruct checkpoint (MLLM-SC): the guide, the dual-path codec and the generative decoder, beside
SmolLM2; the one checkpoint layout (:mod:`semcom_cli.io.checkpoint`, kind ``reconstruct``).

::

    <checkpoint>/                       (shipped: checkpoints/semcom-scenes)
      manifest.json          format, kind "reconstruct", the settings of each stage, the LLM preset,
                             versions, training summaries, measured figures, content hash
      guide_net/ referent_parser/       the guide (:mod:`semcom_cli.reconstruct.guidance.store`)
      encoder/ decoder/                 the dual-path codec
      vae/ diffusion/ scene_features/   the generative decoder's fast and quality modes and the scene
                                        classifier behind the KID measure
                                        (:mod:`semcom_cli.reconstruct.generative.store`)

each part a ``config.json`` beside its ``model.safetensors``. ``semcom finetune --stage guidance -o DIR``
writes the guide, ``--stage image-codec`` the codec; each stage keeps what the folder already holds. A
packet records the content hash, so a packet is decoded only by the codec that made it. A folder in
the layout before parts had folders is converted once: ``python -m semcom_cli.reconstruct.convert DIR``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from semcom_cli.config.base import settings_from
from semcom_cli.config.preset import load_preset
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.resources import default_checkpoint
from semcom_cli.core.runtime import versions
from semcom_cli.io.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    HASH_SCHEME,
    kind_of,
    load_part,
    publish_folder,
    read_manifest,
    save_part,
    staged_folder,
    verified_hash,
)
from semcom_cli.io.patches import ROI_THRESHOLD
from semcom_cli.io.tiles import tile_layout
from semcom_cli.models.llm import load_backbone
from semcom_cli.reconstruct.generative.decoder import DOUBT_SAMPLES, GenerativeDecoder, embed_queries, zero_packet
from semcom_cli.reconstruct.generative.store import PARTS
from semcom_cli.reconstruct.guidance.store import GUIDE_PARTS, load_guide
from semcom_cli.reconstruct.imaging.codec import DualPathEncoder, ImageDecoder
from semcom_cli.reconstruct.imaging.pipeline import receive_streams
from semcom_cli.reconstruct.imaging.train import CodecTrain

__all__ = ["KIND", "ReconstructModel", "default_scenes_checkpoint", "write_checkpoint", "save_codec",
           "codec_config", "RECONSTRUCT_PARTS"]

KIND = "reconstruct"
SCENES_CHECKPOINT_NAME = "semcom-scenes"
LLM_PRESET = "smollm2"  # whose backbone reads the queries
CODEC_PARTS = ("encoder", "decoder")
RECONSTRUCT_PARTS = (*GUIDE_PARTS, *CODEC_PARTS, *(part.part for part in PARTS.values()))


def default_scenes_checkpoint() -> Path:
    return default_checkpoint().parent / SCENES_CHECKPOINT_NAME


def write_checkpoint(folder: Path, parts: dict[str, Path], manifest_update: dict, drop: tuple = (),
                     base: Path | None = None) -> str:
    """Write ``folder`` atomically: the parts of ``base`` (the checkpoint the new one starts from; default
    ``folder`` itself, when it holds one), replaced by ``parts`` (name → a part folder to copy in), less the
    parts named in ``drop`` (and their manifest keys: ``drop`` holds (part, key) pairs), its manifest
    updated; returns the content hash. The new folder is built beside ``folder`` and put in its place in
    one step (``io.checkpoint.replace_folder``): a failure leaves ``folder`` as it was, or absent."""
    folder = Path(folder)
    base = folder if base is None else Path(base)
    old: dict = {}
    if base.exists():
        if not (base / "manifest.json").is_file():
            raise SemcomError(f"{base}: exists and is not a checkpoint; refusing to replace it")
        old = read_manifest(base, KIND)
    with staged_folder(folder) as tmp:
        dropped = {name for name, _ in drop}
        for name in RECONSTRUCT_PARTS:
            source = parts.get(name) or (base / name if (base / name).is_dir() else None)
            if name in dropped and name not in parts:
                continue
            if source is not None:
                shutil.copytree(source, tmp / name)
        manifest = {**old, "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "kind": KIND,
                    "hash_scheme": HASH_SCHEME, "name": folder.name, "llm_preset": LLM_PRESET, "versions": versions()}
        for key, value in manifest_update.items():
            if key == "training":
                manifest["training"] = {**manifest.get("training", {}), **value}
            else:
                manifest[key] = value
        for _, key in drop:
            manifest.pop(key, None)
        manifest.pop("hash", None)
        return publish_folder(tmp, folder, manifest)


def codec_config(cfg: CodecTrain) -> dict:
    return {"width": cfg.width}


def save_codec(folder: Path, encoder: DualPathEncoder, decoder: ImageDecoder, cfg: CodecTrain) -> None:
    """The codec's two parts into ``folder``."""
    save_part(Path(folder), "encoder", encoder, codec_config(cfg))
    save_part(Path(folder), "decoder", decoder, codec_config(cfg))


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
        manifest = read_manifest(folder)
        if kind_of(manifest) != KIND:
            raise SemcomError(f"{folder}: not a reconstruct checkpoint (task reconstruct needs one such as "
                              f"checkpoints/{SCENES_CHECKPOINT_NAME}; 'make checkpoint-scenes' builds it)")
        verified_hash(folder, manifest)
        encoder = decoder = None
        if need_codec:
            if not all((folder / name).is_dir() for name in CODEC_PARTS) or "codec" not in manifest:
                raise SemcomError(f"{folder}: holds no image codec yet (semcom finetune --stage image-codec)")
            cfg = settings_from(CodecTrain, manifest["codec"], f"{folder}/manifest.json: codec", known_only=True)
            encoder, decoder = DualPathEncoder(cfg.width), ImageDecoder(cfg.width)
            load_part(folder, "encoder", encoder, codec_config(cfg))
            load_part(folder, "decoder", decoder, codec_config(cfg))
            encoder.eval()
            # channels-last convolutions: the decoder runs about 15 % faster on this machine's CPU, the
            # encoder slower (benchmarks/reconstruct.py's speed figure)
            decoder.eval().to(memory_format=torch.channels_last)
        return cls(folder, manifest, encoder, decoder)

    @property
    def guide(self):
        if self._guide is None:
            llm = load_backbone(load_preset(self.manifest.get("llm_preset", LLM_PRESET)).backbone)
            self._guide = load_guide(self.folder, self.manifest, llm)
        return self._guide

    @property
    def generative(self):
        """The generative decoder (:class:`semcom_cli.reconstruct.generative.decoder.GenerativeDecoder`), loaded on
        first use; a checkpoint without one says so in one line."""
        if self._generative is None:
            self._generative = GenerativeDecoder(self.folder, self.manifest)
        return self._generative

    @torch.no_grad()
    def warm_up(self, decoder: str, image_info: dict, channel_uses: int, query: bool,
                samples: int | None = None) -> None:
        """Load and run once what decoding this packet will use (``image_info``: its header's ``image``), on
        empty symbols at its batch (its tiles), so that the first decode runs at the steady state's speed:
        Sionna's LDPC code of the side information (its import alone is about a second), the
        equaliser, part 1's decoder (codec; auto's fallback), the VAE and the posterior, the diffusion
        model (quality, auto; auto's step timed here), MiniLM for the query (quality, auto). What it costs
        is load time, apart from any ``--budget-ms``."""
        grid, tile_uses = tile_layout(image_info, channel_uses)
        batch = grid.count
        streams = [torch.zeros(uses, 2) for uses in tile_uses]
        gains = [torch.ones(1, dtype=torch.complex64)] * batch
        for _ in range(2):  # the second run meets what the first left ready (kernels chosen, modules imported)
            receive_streams(streams, gains, 10.0, image_info["budget"], image_info["roi_share"], image_info["method"],
                            image_info.get("side_uses"))
        if decoder in ("codec", "auto") and self.decoder is not None:
            for _ in range(2):
                self.decoder(*zero_packet(batch), torch.zeros(batch))
        if decoder == "codec":
            return
        diffusion = decoder in ("quality", "auto")
        self.generative.warm_up(batch, diffusion, query, DOUBT_SAMPLES if samples is None else samples)
        if diffusion and query:
            embed_queries(["a warm-up query"])  # loads MiniLM and runs it once

    @property
    def roi_threshold(self) -> float:
        return float(self.manifest.get("roi_threshold", ROI_THRESHOLD))

