"""Partial runs: a training stage in progress, saved so that ``--resume`` continues it exactly.

A partial run is a folder holding the checkpoint as it stands (``checkpoint/``) and
``resume.safetensors``: optimizer moments and generator states as tensors; the step,
loss log, schedule and the other generator states as JSON in its header.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import read_history
from semcom_cli.training.trainer import ResumeState

__all__ = ["save_partial", "load_partial", "PARTIAL_FORMAT"]

PARTIAL_FORMAT = "semcom-partial-run"


def save_partial(folder: str | Path, model: SemcomModel, stage: str, state: ResumeState,
                 history: list[dict]) -> None:
    """Save a stage in progress: the checkpoint as it stands, then the state to resume from.

    The resume file names the checkpoint's hash, so a crash between the two writes
    leaves a pair that ``load_partial`` refuses rather than one that resumes wrongly.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest = model.save_pretrained(folder / "checkpoint", training={"stages": history})
    header = {"format": PARTIAL_FORMAT, "format_version": 1, "stage": stage, "step": state.step,
              "checkpoint_hash": digest, "state": state.meta}
    tensors = {name: value.cpu().contiguous() for name, value in state.tensors.items()}
    atomic_write_bytes(folder / "resume.safetensors",
                       save(tensors, metadata={"semcom": json.dumps(header, sort_keys=True)}))


def load_partial(folder: str | Path, stage: str, device: str | None = None
                 ) -> tuple[SemcomModel, ResumeState, list[dict]]:
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
    if not isinstance(header, dict) or header.get("format") != PARTIAL_FORMAT:
        raise SemcomError(f"{resume}: not a semcom partial run")
    if not (isinstance(header.get("step"), int) and isinstance(header.get("state"), dict)
            and isinstance(header.get("checkpoint_hash"), str)):
        raise SemcomError(f"{resume}: a damaged partial run (its step, state or checkpoint hash is missing)")
    if header.get("stage") != stage:
        raise SemcomError(f"{folder}: is a partial '{header.get('stage')}' run, not '{stage}'")
    model = SemcomModel.from_pretrained(folder / "checkpoint", device=device)
    if model.hash != header["checkpoint_hash"]:
        raise SemcomError(f"{folder}: the checkpoint and the resume state were saved at different steps")
    return model, ResumeState(int(header["step"]), tensors, header["state"]), read_history(folder / "checkpoint")
