"""Partial runs: a training stage in progress, saved so that ``--resume`` continues it exactly.

One format for every stage: a folder (``<output>.partial``) holding ``resume.safetensors`` — the
:class:`~semcom_cli.training.trainer.ResumeState`'s tensors (optimizer moments, generator states, and the
weights of the modules a stage trains outside a checkpoint) with the step, loss log, schedule, the other
generator states and the stage's settings as JSON in its header. A model stage (and the federated
server's rounds) also keeps the checkpoint as it stands (``checkpoint/``), and the header names its hash.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes, partial_path, refuse_foreign_partial
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import read_history
from semcom_cli.training.trainer import Checkpointing, ResumeState

__all__ = ["save_partial", "load_partial", "save_resume", "load_resume", "start_partial", "finish_partial",
           "keep_partials", "PARTIAL_FORMAT", "RESUME_FILE"]

PARTIAL_FORMAT = "semcom-partial-run"
RESUME_FILE = "resume.safetensors"


def save_resume(folder: str | Path, stage: str, state: ResumeState, **header_fields) -> None:
    """Write ``folder/resume.safetensors`` atomically: the state's tensors, and its step and meta (with
    ``header_fields``: the checkpoint's hash, the stage's settings) as JSON in the header."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = {"format": PARTIAL_FORMAT, "format_version": 1, "stage": stage, "step": state.step,
              "state": state.meta, **header_fields}
    tensors = {name: value.cpu().contiguous() for name, value in state.tensors.items()}
    atomic_write_bytes(folder / RESUME_FILE, save(tensors, metadata={"semcom": json.dumps(header, sort_keys=True)}))


def load_resume(folder: str | Path, stage: str) -> tuple[ResumeState, dict]:
    """The resume state of a partial run of ``stage`` and its header; one line for anything else."""
    folder = Path(folder)
    resume = folder / RESUME_FILE
    if not resume.is_file():
        raise SemcomError(f"{folder}: no partial run to resume (no {RESUME_FILE})")
    try:
        with safe_open(resume, framework="pt") as f:
            header = json.loads((f.metadata() or {}).get("semcom", "{}"))
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, ValueError, OSError, RecursionError) as err:
        raise SemcomError(f"{resume}: corrupted ({(str(err).splitlines() or [type(err).__name__])[0]})") from None
    if not isinstance(header, dict) or header.get("format") != PARTIAL_FORMAT:
        raise SemcomError(f"{resume}: not a semcom partial run")
    if not (isinstance(header.get("step"), int) and isinstance(header.get("state"), dict)):
        raise SemcomError(f"{resume}: a damaged partial run (its step or state is missing)")
    if header.get("stage") != stage:
        raise SemcomError(f"{folder}: is a partial '{header.get('stage')}' run, not '{stage}'")
    return ResumeState(int(header["step"]), tensors, header["state"]), header


def start_partial(output: Path, stage: str, resume: bool) -> tuple[Path, ResumeState | None, dict | None]:
    """Where a stage that keeps no checkpoint in its partial run (the image stages) writing ``output`` keeps
    it (``<output>.partial``), and on ``resume`` the state and the settings it ran with. A fresh run refuses
    a partial run that is already there (:func:`~semcom_cli.core.files.refuse_foreign_partial`): it was made
    by another run, which ``--resume`` continues or the user removes; nothing is deleted here."""
    folder = partial_path(Path(output))
    if resume:
        state, header = load_resume(folder, stage)
        return folder, state, header.get("settings")
    refuse_foreign_partial(Path(output), resume)
    return folder, None, None


def finish_partial(folder: Path) -> None:
    """Remove the partial run a stage made, once the checkpoint it led to is written."""
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


def keep_partials(folder: Path, stage: str, every: int, resume: ResumeState | None, settings: dict) -> Checkpointing:
    """Save the stage's snapshots every ``every`` steps into ``folder`` with its ``settings`` (so a resumed run
    goes on with them), starting from ``resume``."""
    return Checkpointing(every, lambda snapshot: save_resume(folder, stage, snapshot, settings=settings), resume)


def save_partial(folder: str | Path, model: SemcomModel, stage: str, state: ResumeState,
                 history: list[dict]) -> None:
    """Save a model stage in progress: the checkpoint as it stands, then the state to resume from.

    The resume file names the checkpoint's hash, so a crash between the two writes
    leaves a pair that ``load_partial`` refuses rather than one that resumes wrongly.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digest = model.save_pretrained(folder / "checkpoint", training={"stages": history})
    save_resume(folder, stage, state, checkpoint_hash=digest)


def load_partial(folder: str | Path, stage: str, device: str | None = None
                 ) -> tuple[SemcomModel, ResumeState, list[dict]]:
    """The model, resume state and earlier stages' history of a partial run of ``stage``."""
    folder = Path(folder)
    state, header = load_resume(folder, stage)
    if not isinstance(header.get("checkpoint_hash"), str):
        raise SemcomError(f"{folder / RESUME_FILE}: a damaged partial run (its checkpoint hash is missing)")
    model = SemcomModel.from_pretrained(folder / "checkpoint", device=device)
    if model.hash != header["checkpoint_hash"]:
        raise SemcomError(f"{folder}: the checkpoint and the resume state were saved at different steps")
    return model, state, read_history(folder / "checkpoint")
