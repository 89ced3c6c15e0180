"""Checkpoint folders: a manifest, one folder per trained part, and the LoRA adapter.

::

    <checkpoint>/
      manifest.json                 format, preset, base model id + sha256, versions,
                                    training summary, measured metrics, content hash
      vision/config.json            constructor arguments of the part
      vision/model.safetensors      its weights
      projector/ channel_encoder/ channel_decoder/   (the same)
      adapter/                      the LoRA adapter as peft saves it

Nothing is pickled. The content hash covers every file but the manifest; a
semantic file records it, so a file made with one checkpoint is refused by another.

A training stage in progress is saved as a *partial run*, a folder holding the
checkpoint as it stands and ``resume.safetensors`` (optimizer moments and
generator states as tensors; the step, loss log, schedule and the other
generator states as JSON in its header), from which the stage continues.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_file, save, save_file

from . import __version__
from .config import preset_from_dict
from .errors import SemcomError
from .formats import atomic_write_bytes
from .pipeline import SemcomModel
from .training import ResumeState

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_hash", "read_manifest", "versions",
           "save_partial", "load_partial", "DEFAULT_CHECKPOINT", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "semcom-checkpoint"
CHECKPOINT_VERSION = 1
PARTIAL_FORMAT = "semcom-partial-run"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "semcom-smollm2"


def versions() -> dict[str, str]:
    import peft
    import transformers

    out = {"semcom": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
           "peft": peft.__version__, "python": platform.python_version()}
    from importlib.metadata import version

    for package in ("sionna-no-rt", "pykan", "sacrebleu", "torchmetrics", "pillow"):
        try:
            out[package] = version(package)
        except Exception:  # a version we cannot read is left out, not guessed
            pass
    return out


def checkpoint_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"):
        digest.update(f.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


def save_checkpoint(model: SemcomModel, folder: str | Path, training: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None) -> str:
    """Write the checkpoint folder atomically; returns its content hash."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        for name in SemcomModel.PARTS:
            part = getattr(model, name)
            (tmp / name).mkdir()
            (tmp / name / "config.json").write_text(
                json.dumps({"class": type(part).__name__, **part.config}, indent=2, sort_keys=True) + "\n")
            state = {k: v.detach().contiguous() for k, v in part.state_dict().items()}
            save_file(state, tmp / name / "model.safetensors")
        llm = model.llm
        if llm is not None and hasattr(llm.model, "peft_config"):
            llm.model.save_pretrained(tmp / "adapter")
            _pin_adapter_base(tmp / "adapter", llm.model_id)
        elif model.adapter_dir is not None:
            shutil.copytree(model.adapter_dir, tmp / "adapter")
        digest = checkpoint_hash(tmp)
        manifest = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "name": folder.name,
            "hash": digest,
            "embed_dim": model.embed_dim,
            "preset": model.preset.model_dump(),
            "base_model": {"id": llm.model_id if llm else None,
                           "sha256": llm.sha256 if llm else model.base_model_sha256},
            "versions": versions(),
            "training": training or {},
            "metrics": metrics or {},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return digest


def _pin_adapter_base(adapter: Path, model_id: str) -> None:
    # peft records the local cache path of the base model, in its config and in a model-card
    # template; record the model id instead and drop the card, so the adapter's bytes do not
    # depend on where the cache lives.
    (adapter / "README.md").unlink(missing_ok=True)
    cfg_file = adapter / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["base_model_name_or_path"] = model_id
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SemcomError(f"{folder}: no such checkpoint folder")
    path = folder / "manifest.json"
    if not path.is_file():
        raise SemcomError(f"{folder}: not a semcom checkpoint (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        raise SemcomError(f"{path}: corrupted manifest (not JSON)") from None
    if manifest.get("format") != CHECKPOINT_FORMAT:
        raise SemcomError(f"{folder}: not a semcom checkpoint (format {manifest.get('format')!r})")
    if manifest.get("format_version") != CHECKPOINT_VERSION:
        raise SemcomError(f"{folder}: checkpoint format version {manifest.get('format_version')} "
                          f"is not supported (this semcom reads {CHECKPOINT_VERSION})")
    return manifest


def load_checkpoint(folder: str | Path = DEFAULT_CHECKPOINT, preset_overrides=None) -> SemcomModel:
    """Rebuild a SemcomModel from a checkpoint folder, verifying its content hash."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    digest = checkpoint_hash(folder)
    if digest != manifest.get("hash"):
        raise SemcomError(f"{folder}: checkpoint files do not match the manifest's hash (changed or corrupted)")
    preset = preset_from_dict(manifest["preset"], f"{folder}/manifest.json")
    if preset_overrides:
        from .config import apply_overrides

        preset = apply_overrides(preset, preset_overrides)
    model = SemcomModel(preset, int(manifest["embed_dim"]))
    for name in SemcomModel.PARTS:
        part = getattr(model, name)
        weights = folder / name / "model.safetensors"
        config_file = folder / name / "config.json"
        if not weights.is_file() or not config_file.is_file():
            raise SemcomError(f"{folder}: checkpoint part '{name}' is missing")
        saved = json.loads(config_file.read_text())
        saved.pop("class", None)
        if saved != part.config:
            raise SemcomError(f"{folder}: part '{name}' was saved with {saved}, the preset builds {part.config}")
        try:
            part.load_state_dict(load_file(weights), strict=True)
        except (SafetensorError, RuntimeError, OSError) as err:
            raise SemcomError(f"{weights}: cannot load ({str(err).splitlines()[0]})") from None
    model.eval()
    model.requires_grad_(False)
    if (folder / "adapter").is_dir():
        model.adapter_dir = folder / "adapter"
    model.name = manifest.get("name", folder.name)
    model.hash = digest
    model.base_model_sha256 = manifest.get("base_model", {}).get("sha256")
    return model


def save_partial(folder: str | Path, model: SemcomModel, stage: str, state: ResumeState,
                 history: list[dict]) -> None:
    """Save a stage in progress: the checkpoint as it stands, then the state to resume from.

    The resume file names the checkpoint's hash, so a crash between the two writes
    leaves a pair that ``load_partial`` refuses rather than one that resumes wrongly.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest = save_checkpoint(model, folder / "checkpoint", training={"stages": history})
    header = {"format": PARTIAL_FORMAT, "format_version": 1, "stage": stage, "step": state.step,
              "checkpoint_hash": digest, "state": state.meta}
    tensors = {name: value.contiguous() for name, value in state.tensors.items()}
    atomic_write_bytes(folder / "resume.safetensors",
                       save(tensors, metadata={"semcom": json.dumps(header, sort_keys=True)}))


def load_partial(folder: str | Path, stage: str) -> tuple[SemcomModel, ResumeState, list[dict]]:
    """The model, resume state and earlier stages' history of a partial run of ``stage``."""
    folder = Path(folder)
    resume = folder / "resume.safetensors"
    if not resume.is_file():
        raise SemcomError(f"{folder}: no partial run to resume (no resume.safetensors)")
    try:
        with safe_open(resume, framework="pt") as f:
            header = json.loads((f.metadata() or {}).get("semcom", "{}"))
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, ValueError, OSError) as err:
        raise SemcomError(f"{resume}: corrupted ({str(err).splitlines()[0]})") from None
    if header.get("format") != PARTIAL_FORMAT:
        raise SemcomError(f"{resume}: not a semcom partial run")
    if header["stage"] != stage:
        raise SemcomError(f"{folder}: is a partial '{header['stage']}' run, not '{stage}'")
    model = load_checkpoint(folder / "checkpoint")
    if model.hash != header["checkpoint_hash"]:
        raise SemcomError(f"{folder}: the checkpoint and the resume state were saved at different steps")
    history = read_manifest(folder / "checkpoint").get("training", {}).get("stages", [])
    return model, ResumeState(int(header["step"]), tensors, header["state"]), history
