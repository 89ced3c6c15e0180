"""Converting a reconstruct checkpoint written before every model shared one checkpoint layout.

Until then a reconstruct checkpoint (format ``semcom-reconstruct-checkpoint``) kept its networks as flat
files (``guidance.safetensors`` with ``net.*`` and ``parser.*``, ``codec.safetensors`` with ``encoder.*``
and ``decoder.*``, ``vae``/``diffusion``/``features.safetensors``). Converting puts each network in a
part folder (``config.json`` + ``model.safetensors``, :mod:`semcom_cli.io.checkpoint`) with the same
tensors, byte for byte; the manifest keeps every setting, record and measured figure, and notes the
old format and hash under ``training.converted``. The content hash changes (the files did); nothing a
network computes does.

    python -m semcom_cli.reconstruct.convert OLD_FOLDER [NEW_FOLDER]   (in place without NEW_FOLDER)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import read_json_file
from semcom_cli.io.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    checkpoint_hash,
    publish_folder,
    staged_folder,
    write_part,
)
from semcom_cli.reconstruct.generative.store import PARTS, network_config, settings_of
from semcom_cli.reconstruct.guidance.store import guidance_settings, net_config, parser_config
from semcom_cli.reconstruct.imaging.train import CodecTrain
from semcom_cli.reconstruct.model import KIND, codec_config

__all__ = ["OLD_FORMAT", "convert", "main"]

OLD_FORMAT = "semcom-reconstruct-checkpoint"
# the old flat file of each generative stage, and the class its part is saved as
_OLD_GENERATIVE = {"image-vae": ("vae.safetensors", "FastDecoder"),
                   "image-diffusion": ("diffusion.safetensors", "UNet2DConditionModel"),
                   "scene-features": ("features.safetensors", "SceneClassifier")}


def _tensors(path: Path) -> dict:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise SemcomError(f"{path}: cannot read ({str(err).splitlines()[0][:100]})") from None


def _split(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def convert(folder: str | Path, output: str | Path | None = None) -> str:
    """Convert the old-layout reconstruct checkpoint ``folder`` into ``output`` (``folder`` itself when
    None: replaced in one rename); returns the new content hash."""
    folder = Path(folder)
    output = Path(output) if output is not None else folder
    if not (folder / "manifest.json").is_file():
        raise SemcomError(f"{folder}: not a semcom checkpoint (no manifest.json)")
    old = read_json_file(folder / "manifest.json", "manifest", "checkpoint manifest (corrupted)")
    if not isinstance(old, dict) or old.get("format") != OLD_FORMAT:
        raise SemcomError(f"{folder}: not a reconstruct checkpoint in the old layout (nothing to convert)")
    if old.get("hash") != checkpoint_hash(folder, old):
        raise SemcomError(f"{folder}: its files do not match the manifest's hash (damaged or edited); not converted")
    if output != folder and output.exists():
        raise SemcomError(f"{output}: exists; give a new folder (or none, to convert in place)")
    try:
        return _convert(folder, output, old)
    except (KeyError, TypeError, ValueError) as err:  # a manifest or file the old semcom did not write
        raise SemcomError(f"{folder}: damaged, not converted ({type(err).__name__}: {str(err)[:80]})") from None


def _convert(folder: Path, output: Path, old: dict) -> str:
    with staged_folder(output) as tmp:
        if (folder / "guidance.safetensors").is_file():
            tensors = _tensors(folder / "guidance.safetensors")
            parser = _split(tensors, "parser.")
            write_part(tmp, "guide_net", "GuidanceNet", net_config(guidance_settings(old)), _split(tensors, "net."))
            # the parser as the old layout had it: from before "unknown" (version 1), which the guide then
            # refuses in one line naming the stage that retrains it (guide-checks)
            old_parser = {k: v for k, v in parser_config(int(parser["norm.weight"].shape[0])).items() if k != "version"}
            write_part(tmp, "referent_parser", "ReferentParser", old_parser, parser)
        if (folder / "codec.safetensors").is_file():
            tensors = _tensors(folder / "codec.safetensors")
            cfg = codec_config(CodecTrain(**{k: v for k, v in old["codec"].items() if k == "width"}))
            write_part(tmp, "encoder", "DualPathEncoder", cfg, _split(tensors, "encoder."))
            write_part(tmp, "decoder", "ImageDecoder", cfg, _split(tensors, "decoder."))
        latent = settings_of("image-vae", old).latent_channels if "image_vae" in old else None
        for stage, (name, class_name) in _OLD_GENERATIVE.items():
            if (folder / name).is_file() and PARTS[stage].manifest_key in old:
                write_part(tmp, PARTS[stage].part, class_name,
                           network_config(stage, settings_of(stage, old), latent), _tensors(folder / name))
        manifest = {**old, "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "kind": KIND}
        manifest["training"] = {**old.get("training", {}),
                                "converted": {"from_format": OLD_FORMAT, "from_hash": old["hash"]}}
        manifest.pop("hash", None)
        return publish_folder(tmp, output, manifest)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m semcom_cli.reconstruct.convert OLD_FOLDER [NEW_FOLDER]", file=sys.stderr)
        return 2
    try:
        print(json.dumps({"converted": args[0], "to": args[-1], "hash": convert(*args)}))
    except SemcomError as err:
        print(f"semcom: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
