"""The SemcomModel's checkpoint folder: the one checkpoint protocol (:mod:`semcom_cli.io.checkpoint`,
kind ``semcom``) with the preset in the manifest and the LoRA adapter beside the parts.

::

    <checkpoint>/
      manifest.json                 format, preset, base model id + sha256, versions,
                                    training summary, content hash
      vision/config.json            constructor arguments of the part
      vision/model.safetensors      its weights
      projector/ channel_encoder/ channel_decoder/   (the same)
      adapter/                      the LoRA adapter as peft saves it

A semantic file records the content hash, so a file made with one checkpoint is refused by another
(:func:`semcom_cli.io.check_checkpoint`). A manifest written by an older semcom is read with the
defaults of fields added since (``config.migrate_saved_preset``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

from semcom_cli.config.preset import apply_overrides, migrate_saved_preset, preset_from_dict
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.resources import default_checkpoint
from semcom_cli.core.runtime import versions
from semcom_cli.io import checkpoint as protocol
from semcom_cli.io.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    HASH_SCHEME,
    RUN_RECORDS,
    checkpoint_hash,
    load_part,
    publish_folder,
    record_metrics,
    rehash,
    save_part,
    staged_folder,
    verified_hash,
)

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_hash", "read_manifest", "read_history", "staged_folder",
           "publish_folder", "rehash", "record_metrics", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "HASH_SCHEME",
           "RUN_RECORDS", "KIND"]

KIND = "semcom"


def save_checkpoint(model, folder: str | Path, training: dict[str, Any] | None = None, *, weights: str = "float32",
                    extra: Callable[[Path], dict[str, Any]] | None = None) -> str:
    """Write the checkpoint folder atomically; returns its content hash. ``weights="int8"`` stores the
    parts' matrices as int8 rows + scales (:mod:`semcom_cli.models.int8`); ``extra`` writes more
    into the staged folder (a compressed LLM) and returns manifest fields, in place of the adapter."""
    folder = Path(folder)
    if folder.exists() and not (folder / "manifest.json").is_file():
        raise SemcomError(f"{folder}: exists and is not a checkpoint; refusing to replace it")
    with staged_folder(folder) as tmp:
        for name in model.PARTS:
            part = getattr(model, name)
            save_part(tmp, name, part, part.config, weights)
        llm = model.llm
        if extra is not None:  # its files stand in for the base model's adapter
            added = extra(tmp)
        else:
            added = {}
            _write_adapter(model, tmp / "adapter")
        manifest = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "hash_scheme": HASH_SCHEME,
            "name": folder.name,
            "embed_dim": model.embed_dim,
            "preset": model.preset.model_dump(exclude={"device"}),  # where it ran is not what it is
            "base_model": {"id": llm.model_id if llm else None,
                           "sha256": llm.sha256 if llm else model.base_model_sha256},
            "versions": versions(),
            "training": training or {},
            **added,
        }
        return publish_folder(tmp, folder, manifest)


def _write_adapter(model, folder: Path) -> None:
    """The LoRA adapter: the one being trained, or the one the checkpoint was loaded with."""
    llm = model.llm
    if llm is not None and hasattr(llm.model, "peft_config"):
        llm.model.save_pretrained(folder)
        _pin_adapter_base(folder, llm.model_id)
    elif model.adapter_dir is not None:
        shutil.copytree(model.adapter_dir, folder)


def _pin_adapter_base(adapter: Path, model_id: str) -> None:
    # peft records the local cache path of the base model, in its config and in a model-card
    # template; record the model id instead and drop the card, so the adapter's bytes do not
    # depend on where the cache lives. peft keeps target_modules as a set, so its order follows
    # the process's hash seed: sorted, the same seed gives the same bytes in every process.
    (adapter / "README.md").unlink(missing_ok=True)
    cfg_file = adapter / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = model_id
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a SemcomModel checkpoint; one line for anything else (a reconstruct checkpoint too)."""
    return protocol.read_manifest(folder, KIND)


def read_history(folder: str | Path) -> list[dict]:
    """The training stages a checkpoint went through (its manifest's summary), oldest first."""
    training = read_manifest(folder).get("training")
    stages = training.get("stages") if isinstance(training, dict) else None
    return stages if isinstance(stages, list) else []


def load_checkpoint(cls, folder: str | Path | None = None, preset_overrides=None, device: str | None = None):
    """Rebuild a ``cls`` (a SemcomModel) from a checkpoint folder, verifying its content hash."""
    folder = Path(folder) if folder is not None else default_checkpoint()
    manifest = read_manifest(folder)
    digest = verified_hash(folder, manifest)
    if not isinstance(manifest.get("preset"), dict) or not isinstance(manifest.get("embed_dim"), int):
        raise SemcomError(f"{folder}/manifest.json: damaged (no preset or embed_dim)")
    preset = preset_from_dict(migrate_saved_preset(manifest["preset"]), f"{folder}/manifest.json")
    preset = apply_overrides(preset, {**(preset_overrides or {}), "device": device})
    model = cls(preset, int(manifest["embed_dim"]))
    for name in cls.PARTS:
        load_part(folder, name, getattr(model, name), getattr(model, name).config, "preset")
    model.eval()
    model.requires_grad_(False)
    if (folder / "adapter").is_dir():
        model.adapter_dir = folder / "adapter"
    model.name = manifest.get("name", folder.name)
    model.hash = digest
    model.base_model_sha256 = manifest.get("base_model", {}).get("sha256")
    model.metrics = manifest.get("metrics") if isinstance(manifest.get("metrics"), dict) else {}
    model.folder = folder
    compression = manifest.get("compression")
    if compression is not None and not (isinstance(compression, dict) and (folder / "llm").is_dir()):
        raise SemcomError(f"{folder}: a compressed checkpoint without its compressed LLM (llm/)")
    model.compression = compression
    return model


if __name__ == "__main__":
    import sys

    usage = ("usage: python -m semcom_cli.system.checkpoint --rehash CHECKPOINT_FOLDER\n"
             "       python -m semcom_cli.system.checkpoint --record-metrics CHECKPOINT_FOLDER METRICS.json")
    try:
        if len(sys.argv) == 3 and sys.argv[1] == "--rehash":
            print(rehash(sys.argv[2]))
        elif len(sys.argv) == 4 and sys.argv[1] == "--record-metrics":
            from semcom_cli.core.files import read_json_file  # the command line's own needs

            print(record_metrics(sys.argv[2], read_json_file(sys.argv[3], "json", "metrics JSON file")))
        else:
            sys.exit(usage)
    except SemcomError as err:
        sys.exit(f"semcom: error: {err}")
