"""The one checkpoint protocol: a folder with a manifest, and each trained part as its constructor's
config beside its weights (the way diffusers saves ``config.json`` beside ``model.safetensors``).

::

    <checkpoint>/
      manifest.json               format, kind, name, versions, training summary, measured figures,
                                  the kind's own fields, content hash
      <part>/config.json          {"class": …, the arguments that rebuild the part}
      <part>/model.safetensors    its weights (float32; float16 or int8 rows + scales where a saver
                                  chose them: read back as float32)

Every model uses it: :class:`semcom_cli.system.SemcomModel` (kind ``semcom``: the VQA, caption and
text model, with its LoRA adapter beside the parts) and :class:`semcom_cli.reconstruct.model.ReconstructModel`
(kind ``reconstruct``: the guide, the dual-path codec and the generative decoder). A folder is built in
a temporary folder beside it and put in place in one rename (:func:`staged_folder`, :func:`publish_folder`).

Nothing is pickled. The content hash covers every file's path and content and the manifest but its run
records (:data:`RUN_RECORDS`): what was trained, not how long it took or what was measured on it after.
A semantic file records it, so a packet made with one checkpoint is refused by another.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semcom_cli.config.preset import short_repr
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes, current_umask, folder_lock, read_json_file, what_is_there
from semcom_cli.core.outputs import OutputKind
from semcom_cli.models.int8 import INT8_SUFFIX, pack_state, unpack_state

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "HASH_SCHEME", "RUN_RECORDS", "checkpoint_hash",
           "staged_folder", "publish_folder", "read_manifest", "verified_hash", "write_part", "save_part", "load_part",
           "part_config", "rehash", "record_metrics", "kind_of", "checkpoint_output", "replace_folder", "refuse_non_finite"]

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
        manifest = read_json_file(folder / "manifest.json", "manifest", "checkpoint manifest (corrupted)")
    digest = _files_digest(folder)
    left_out = RUN_RECORDS.get(manifest.get("hash_scheme"), RUN_RECORDS[HASH_SCHEME])
    covered = {k: v for k, v in manifest.items() if k not in left_out}
    digest.update(b"manifest.json")
    digest.update(hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).digest())
    return digest.hexdigest()


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
    replace_folder(tmp, folder)
    return digest


def replace_folder(new: Path, folder: Path) -> None:
    """Put the finished folder ``new`` at ``folder``: a rename onto a new path or an empty folder; an
    existing folder (the command's own output, checked before the work began) is moved aside first and
    removed only once the new one is in place, so a failure leaves one of the two whole. Anything but a
    folder at ``folder`` is refused, never removed."""
    there = what_is_there(folder)
    if there not in (None, "a folder") or folder.is_symlink():
        raise SemcomError(f"{folder}: {there or 'a symbolic link'} is there, not a folder; it is left as it is")
    if there is None or not any(folder.iterdir()):
        os.replace(new, folder)
        return
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-old-"))
    os.replace(folder, old / "previous")
    try:
        os.replace(new, folder)
    except OSError:
        os.replace(old / "previous", folder)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_output(kind: str = "semcom") -> OutputKind:
    """The output kind of a command that writes a ``kind`` checkpoint (core.outputs' replace rule)."""

    def recognise(folder: Path) -> bool:
        try:
            return kind_of(read_manifest(folder)) == kind
        except SemcomError:
            return False

    def describe(folder: Path) -> str | None:
        try:
            return f"a {kind_of(read_manifest(folder))} checkpoint"
        except SemcomError:
            return None

    return OutputKind(f"{kind} checkpoint", recognise, folder=True, describe=describe)


def kind_of(manifest: dict[str, Any]) -> str:
    """The model a checkpoint holds: ``semcom`` (the VQA, caption and text model) or ``reconstruct``."""
    return manifest.get("kind", "semcom")


def read_manifest(folder: str | Path, kind: str | None = None) -> dict[str, Any]:
    """The manifest of a checkpoint folder (of ``kind``, when given), or one line saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SemcomError(f"{folder}: no such checkpoint folder")
    if not (folder / "manifest.json").is_file():
        raise SemcomError(f"{folder}: not a semcom checkpoint (no manifest.json)")
    manifest = read_json_file(folder / "manifest.json", "manifest", "checkpoint manifest (corrupted)")
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found == "semcom-reconstruct-checkpoint":
        raise SemcomError(f"{folder}: a reconstruct checkpoint in the layout before parts had folders; convert it "
                          f"once: python -m semcom_cli.reconstruct.convert {folder}")
    if not isinstance(manifest, dict) or found != CHECKPOINT_FORMAT:
        raise SemcomError(f"{folder}: not a semcom checkpoint (format {short_repr(found)})")
    if manifest.get("format_version") != CHECKPOINT_VERSION:
        raise SemcomError(f"{folder}: checkpoint format version {manifest.get('format_version')} "
                          f"is not supported (this semcom reads {CHECKPOINT_VERSION})")
    if kind is not None and kind_of(manifest) != kind:
        raise SemcomError(f"{folder}: a {kind_of(manifest)} checkpoint, not a {kind} one")
    return manifest


def verified_hash(folder: Path, manifest: dict[str, Any]) -> str:
    """The folder's content hash, refused in one line when it is not the manifest's."""
    if manifest.get("hash_scheme") not in RUN_RECORDS:
        raise SemcomError(f"{folder}: saved by an older semcom whose hash leaves out manifest.json; check the "
                          f"manifest, then re-hash it once: python -m semcom_cli.system.checkpoint --rehash {folder}")
    digest = checkpoint_hash(folder, manifest)
    if digest != manifest.get("hash"):
        raise SemcomError(f"{folder}: checkpoint files do not match the manifest's hash (changed or corrupted)")
    return digest


def write_part(folder: Path, name: str, class_name: str, config: dict[str, Any],
               tensors: dict[str, torch.Tensor]) -> None:
    """``folder/name/config.json`` (the class and ``config``) and ``folder/name/model.safetensors``."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / "config.json").write_text(
        json.dumps({"class": class_name, **config}, indent=2, sort_keys=True) + "\n")
    save_file({k: v.contiguous() for k, v in tensors.items()}, folder / name / "model.safetensors")


def save_part(folder: Path, name: str, module: torch.nn.Module, config: dict[str, Any],
              weights: str = "float32") -> None:
    """Save ``module`` as the part ``name``: ``weights`` ``float32`` as trained, ``float16`` (half the bytes;
    one-value tensors and integers kept as they are) or ``int8`` (matrices as int8 rows + scales)."""
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if weights == "float16":
        state = {k: v.half() if v.is_floating_point() and v.numel() > 1 else v for k, v in state.items()}
    elif weights == "int8":
        state = pack_state(state)
    write_part(folder, name, type(module).__name__, config, state)


def part_config(folder: Path, name: str) -> dict[str, Any]:
    """The arguments a part was saved with (its class name left out)."""
    config_file = Path(folder) / name / "config.json"
    if not config_file.is_file() or not (Path(folder) / name / "model.safetensors").is_file():
        raise SemcomError(f"{folder}: checkpoint part '{name}' is missing")
    saved = read_json_file(config_file, "manifest", f"part '{name}' config (corrupted)")
    if not isinstance(saved, dict):
        raise SemcomError(f"{config_file}: damaged (not an object)")
    saved.pop("class", None)
    return saved


def load_part(folder: Path, name: str, module: torch.nn.Module, config: dict[str, Any] | None = None,
              source: str = "settings") -> None:
    """Load ``folder/name`` into ``module``; with ``config``, first check the part was saved with it (the
    ``source`` of ``config`` names it in the error: the preset, the settings)."""
    saved = part_config(folder, name)
    if config is not None and saved != json.loads(json.dumps(config)):
        raise SemcomError(f"{folder}: part '{name}' was saved with {saved}, the {source} builds {config}")
    weights = Path(folder) / name / "model.safetensors"
    try:
        first = next(module.parameters(), None)
        state = load_file(weights, device=str(first.device if first is not None else "cpu"))
        if any(k.endswith(INT8_SUFFIX) for k in state):
            state = unpack_state(state)
        state = {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}
        module.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as err:
        raise SemcomError(f"{weights}: cannot load ({str(err).splitlines()[0][:120]})") from None
    refuse_non_finite(module, f"{folder}: part '{name}'")


def refuse_non_finite(module: torch.nn.Module, where: str) -> None:
    """One line naming the first tensor of ``module`` holding inf or NaN: weights from a run that diverged
    (or a damaged file) never load, so they never decode to a black picture or a nonsense answer."""
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SemcomError(f"{where}: its weights hold non-finite values (inf or NaN, in {name[:80]}); "
                              "the run that made them diverged: train the stage again")


def rehash(folder: str | Path) -> str:
    """Bring a checkpoint saved before its manifest was hashed to the current scheme (after checking
    its manifest by eye: from here on an edit of it is detected). Returns the new hash."""
    folder = Path(folder)
    read_manifest(folder)  # one line for what is not a checkpoint, before locking it
    with folder_lock(folder):
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
    read_manifest(folder)
    with folder_lock(folder):  # read, merged and written by one command at a time: no record is lost
        manifest = read_manifest(folder)
        if manifest.get("hash_scheme") != HASH_SCHEME or checkpoint_hash(folder, manifest) != manifest.get("hash"):
            raise SemcomError(f"{folder}: not an intact checkpoint of hash scheme {HASH_SCHEME} (re-hash it first)")
        old = manifest.get("metrics") if merge and isinstance(manifest.get("metrics"), dict) else {}
        manifest["metrics"] = {**old, **metrics}
        atomic_write_bytes(folder / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest["hash"]
