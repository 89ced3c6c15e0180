"""Checkpoint folders: a manifest, one folder per trained part, and the LoRA adapter.

::

    <checkpoint>/
      manifest.json                 format, preset, base model id + sha256, versions,
                                    training summary, content hash
      vision/config.json            constructor arguments of the part
      vision/model.safetensors      its weights
      projector/ channel_encoder/ channel_decoder/   (the same)
      adapter/                      the LoRA adapter as peft saves it

Nothing is pickled. The content hash covers every file but the manifest; a
semantic file records it, so a file made with one checkpoint is refused by another
(:func:`semcom_cli.io.check_checkpoint`). A manifest written by an older semcom is
read with the defaults of fields added since (``config.migrate_saved_preset``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semcom_cli.config.preset import apply_overrides, migrate_saved_preset, preset_from_dict, short_repr
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes, current_umask, read_json_file
from semcom_cli.core.resources import default_checkpoint
from semcom_cli.core.runtime import versions
from semcom_cli.models.int8 import INT8_SUFFIX, pack_state, unpack_state

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_hash", "read_manifest", "read_history", "staged_folder",
           "publish_folder",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "semcom-checkpoint"
CHECKPOINT_VERSION = 1


HASH_SCHEME = 3  # 1: the files but the manifest; 2: the manifest too; 3: but for the measured figures
# Manifest fields the hash leaves out: the hash itself, and the records of how the run went (loss log,
# wall-clock seconds, library versions) and what was measured on it afterwards (``metrics``), which
# differ between bit-identical trainings and decide nothing of what the model computes. Everything
# else (preset, base model, embed_dim, name) is covered.
RUN_RECORDS = {2: ("hash", "training", "versions"), 3: ("hash", "training", "versions", "metrics")}


def _files_digest(folder: Path):
    """sha256 over every file but the manifest (path and content): hash scheme 1, and the start of 2."""
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"):
        digest.update(f.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest


def checkpoint_hash(folder: Path, manifest: dict[str, Any] | None = None) -> str:
    """sha256 over every file's path and content and over the manifest but its run records."""
    if manifest is None:
        manifest = json.loads((folder / "manifest.json").read_text())
    digest = _files_digest(folder)
    left_out = RUN_RECORDS.get(manifest.get("hash_scheme"), RUN_RECORDS[HASH_SCHEME])
    covered = {k: v for k, v in manifest.items() if k not in left_out}
    digest.update(b"manifest.json")
    digest.update(hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).digest())
    return digest.hexdigest()


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
            (tmp / name).mkdir()
            (tmp / name / "config.json").write_text(
                json.dumps({"class": type(part).__name__, **part.config}, indent=2, sort_keys=True) + "\n")
            state = {k: v.detach().cpu().contiguous() for k, v in part.state_dict().items()}
            save_file(pack_state(state) if weights == "int8" else state, tmp / name / "model.safetensors")
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


@contextmanager
def staged_folder(folder: Path):
    """A temporary folder beside ``folder`` to build a checkpoint in (removed unless published)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; a plain mkdir follows the umask
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_folder(tmp: Path, folder: Path, manifest: dict[str, Any]) -> str:
    """Hash the staged folder with its manifest, write the manifest, and put the folder in ``folder``'s
    place in one rename; returns the content hash."""
    digest = manifest["hash"] = checkpoint_hash(tmp, manifest)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return digest


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
    folder = Path(folder)
    if not folder.is_dir():
        raise SemcomError(f"{folder}: no such checkpoint folder")
    if not (folder / "manifest.json").is_file():
        raise SemcomError(f"{folder}: not a semcom checkpoint (no manifest.json)")
    manifest = read_json_file(folder / "manifest.json", "manifest", "checkpoint manifest (corrupted)")
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise SemcomError(f"{folder}: not a semcom checkpoint (format {short_repr(found)})")
    if manifest.get("format_version") != CHECKPOINT_VERSION:
        raise SemcomError(f"{folder}: checkpoint format version {manifest.get('format_version')} "
                          f"is not supported (this semcom reads {CHECKPOINT_VERSION})")
    return manifest


def read_history(folder: str | Path) -> list[dict]:
    """The training stages a checkpoint went through (its manifest's summary), oldest first."""
    training = read_manifest(folder).get("training")
    stages = training.get("stages") if isinstance(training, dict) else None
    return stages if isinstance(stages, list) else []


def load_checkpoint(cls, folder: str | Path | None = None, preset_overrides=None, device: str | None = None):
    """Rebuild a ``cls`` (a SemcomModel) from a checkpoint folder, verifying its content hash."""
    folder = Path(folder) if folder is not None else default_checkpoint()
    manifest = read_manifest(folder)
    if manifest.get("hash_scheme") not in RUN_RECORDS:
        raise SemcomError(f"{folder}: saved by an older semcom whose hash leaves out manifest.json; check the "
                          f"manifest, then re-hash it once: python -m semcom_cli.system.checkpoint --rehash {folder}")
    digest = checkpoint_hash(folder, manifest)
    if digest != manifest.get("hash"):
        raise SemcomError(f"{folder}: checkpoint files do not match the manifest's hash (changed or corrupted)")
    if not isinstance(manifest.get("preset"), dict) or not isinstance(manifest.get("embed_dim"), int):
        raise SemcomError(f"{folder}/manifest.json: damaged (no preset or embed_dim)")
    preset = preset_from_dict(migrate_saved_preset(manifest["preset"]), f"{folder}/manifest.json")
    preset = apply_overrides(preset, {**(preset_overrides or {}), "device": device})
    model = cls(preset, int(manifest["embed_dim"]))
    for name in cls.PARTS:
        _load_part(folder, name, getattr(model, name))
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


def _load_part(folder: Path, name: str, part) -> None:
    weights = folder / name / "model.safetensors"
    config_file = folder / name / "config.json"
    if not weights.is_file() or not config_file.is_file():
        raise SemcomError(f"{folder}: checkpoint part '{name}' is missing")
    saved = json.loads(config_file.read_text())
    saved.pop("class", None)
    if saved != part.config:
        raise SemcomError(f"{folder}: part '{name}' was saved with {saved}, the preset builds {part.config}")
    try:
        state = load_file(weights, device=str(next(part.parameters()).device))
        part.load_state_dict(unpack_state(state) if any(k.endswith(INT8_SUFFIX) for k in state) else state,
                             strict=True)
    except (SafetensorError, RuntimeError, OSError) as err:
        raise SemcomError(f"{weights}: cannot load ({str(err).splitlines()[0]})") from None


def rehash(folder: str | Path) -> str:
    """Bring a checkpoint saved before its manifest was hashed to the current scheme (after checking
    its manifest by eye: from here on an edit of it is detected). Returns the new hash."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("hash_scheme") is None and _files_digest(folder).hexdigest() != manifest.get("hash"):
        raise SemcomError(f"{folder}: checkpoint files do not match the manifest's hash (changed or corrupted)")
    manifest["hash_scheme"] = HASH_SCHEME
    manifest["hash"] = checkpoint_hash(folder, manifest)
    atomic_write_bytes(folder / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest["hash"]


def record_metrics(folder: str | Path, metrics: dict[str, Any], merge: bool = False) -> str:
    """Write the figures measured on a checkpoint (and the commands that measured them) into its
    manifest's ``metrics`` (``merge``: these keys only, the others kept), after checking the
    checkpoint is intact. The hash leaves them out (scheme 3), so it does not change. Returns the hash."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("hash_scheme") != HASH_SCHEME or checkpoint_hash(folder, manifest) != manifest.get("hash"):
        raise SemcomError(f"{folder}: not an intact checkpoint of hash scheme {HASH_SCHEME} (re-hash it first)")
    old = manifest.get("metrics") if merge and isinstance(manifest.get("metrics"), dict) else {}
    manifest["metrics"] = {**old, **metrics}
    atomic_write_bytes(folder / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest["hash"]


if __name__ == "__main__":
    import sys

    usage = ("usage: python -m semcom_cli.system.checkpoint --rehash CHECKPOINT_FOLDER\n"
             "       python -m semcom_cli.system.checkpoint --record-metrics CHECKPOINT_FOLDER METRICS.json")
    try:
        if len(sys.argv) == 3 and sys.argv[1] == "--rehash":
            print(rehash(sys.argv[2]))
        elif len(sys.argv) == 4 and sys.argv[1] == "--record-metrics":
            from semcom_cli.core.files import read_json_file

            print(record_metrics(sys.argv[2], read_json_file(sys.argv[3], "json", "metrics JSON file")))
        else:
            sys.exit(usage)
    except SemcomError as err:
        sys.exit(f"semcom: error: {err}")
