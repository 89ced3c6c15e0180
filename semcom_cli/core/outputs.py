"""The one rule for an output that is already there, for every command.

A command writes to a new path, or to an empty folder. An existing output is replaced only when it is
the command's own kind (a checkpoint of its kind, a semantic file, a results file, a picture, …) and
``--force`` is given; anything else (another command's output, a folder holding other files, a device,
a FIFO) is refused in one line, before any work starts, and left as it was.

Each command names its kind with an :class:`OutputKind`: what it is called in the message, whether it
is a folder, and how to recognise one on disk. The recognisers live beside the formats they know
(``io.semantic``, ``io.checkpoint``, ``retrieval.kb``); the few that only sniff a file's first bytes are
here.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import what_is_there, writable_target
from semcom_cli.core.limits import MAX_BYTES

__all__ = ["OutputKind", "check_output", "check_outputs", "claim_output", "is_png", "is_text_file", "json_with_key",
           "FORCE_HELP", "RESULTS_OUTPUT", "DECODED_OUTPUT", "PNG_OUTPUT", "CSV_OUTPUT", "check_companions",
           "claim_for_run", "release_claims"]

FORCE_HELP = "Replace an existing output of the same kind (anything else is never replaced)."


@dataclass(frozen=True)
class OutputKind:
    name: str                           # "semcom checkpoint", "semantic file", …
    recognise: Callable[[Path], bool]   # is the thing at this path one of these?
    folder: bool = False
    describe: Callable[[Path], str | None] | None = None  # what another kind's output is, for the message


def claim_output(path: str | Path | None, kind: OutputKind, force: bool) -> None:
    """Refuse, in one line, an output path this command may not write; return when it may.

    ``-`` (stdout) and None (no output) are always fine. A folder output may be a new path or an empty
    folder; a file output a new path. What is there already is replaced only when ``kind.recognise``
    says it is this command's kind and ``force`` is set.
    """
    if path is None or str(path) == "-":
        return
    path = Path(path)
    there = what_is_there(path)
    if there is None:
        return
    if kind.folder and path.is_symlink():  # the folder is replaced by a rename: the link, not what it names
        raise SemcomError(f"{path}: a symbolic link; give the folder it names ({os.path.realpath(path)}) or a new "
                          "path")
    if there not in ("a file", "a folder"):
        raise SemcomError(f"{path}: {there}, not a regular file or folder; semcom never writes its outputs to one")
    wanted = "a folder" if kind.folder else "a file"
    if there != wanted:
        raise SemcomError(f"{path}: {there} is there, not {wanted}; semcom writes a {kind.name} only to a new "
                          f"path or over its own output")
    if kind.folder and not any(path.iterdir()):
        return
    if not kind.recognise(path):
        other = kind.describe(path) if kind.describe is not None else None
        held = f"is {other}" if other else "holds other files" if kind.folder else "is another kind of file"
        raise SemcomError(f"{path}: {held}, not a {kind.name}; semcom replaces only its own output (choose a new "
                          "path)")
    if not force:
        raise SemcomError(f"{path}: a {kind.name} is already there; add --force to replace it")


# Outputs this process is writing: one lock each (an open descriptor holding flock), released when the
# command ends (cli.common.fail_cleanly) or the process exits.
_CLAIMS: dict[str, int] = {}


def _claims_folder() -> Path | None:
    """This user's folder of output locks (outside every folder the user names); None where it cannot be
    trusted (another user's, or a link)."""
    folder = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"semcom-outputs-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return None
    return folder


def claim_for_run(path: str | Path) -> None:
    """Take ``path`` for this command until it ends: a second semcom command writing the same output at
    the same time (two trainings, two sweeps to one ``-o``) is refused in one line instead of both
    writing it (and its partial run) and one losing the other's work."""
    if os.environ.get("RANK", "0") != "0":  # under torchrun the first process writes, the others help
        return
    folder = _claims_folder()
    key = hashlib.sha256(os.path.realpath(path).encode(errors="surrogateescape")).hexdigest()[:32]
    if folder is None or key in _CLAIMS:  # claimed already by this command
        return
    try:
        fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SemcomError(f"{path}: another semcom command is writing it now; wait for it to end, or choose "
                          "another path") from None
    _CLAIMS[key] = fd


def release_claims() -> None:
    while _CLAIMS:
        os.close(_CLAIMS.popitem()[1])


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def is_png(path: Path) -> bool:
    return _head(path, 8) == b"\x89PNG\r\n\x1a\n"


def is_text_file(path: Path) -> bool:
    """UTF-8 text without NUL bytes (a decoded sentence, a CSV, a Markdown table)."""
    head = _head(path, 64 * 1024)
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:  # a multi-byte character cut at the end of the sample is fine
        return err.start >= len(head) - 3
    return True


def json_with_key(*keys: str) -> Callable[[Path], bool]:
    """A recogniser for a JSON object holding all of ``keys`` (a results file, a report)."""

    def recognise(path: Path) -> bool:
        try:
            if os.path.getsize(path) > MAX_BYTES["json"]:
                return False
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return False
        return isinstance(doc, dict) and all(k in doc for k in keys)

    return recognise


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(inner: Path, outer: Path) -> bool:
    inner, outer = inner.resolve(), outer.resolve()
    return inner == outer or outer in inner.parents


def check_output(output: str | Path | None, inputs=(), folder: bool = False, kind: OutputKind | None = None,
                 force: bool = False) -> None:
    """Refuse an output that would overwrite an input, sit under an existing file, or be a folder
    where a file is written (or a file where a folder is); with ``kind``, also anything
    :func:`claim_output` refuses. ``-`` (stdout) and None are always fine."""
    if output is None or str(output) == "-":
        return
    if kind is not None:
        folder = kind.folder
    out = Path(output)
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SemcomError(f"{output}: cannot write there, {parent} is a file")
            break
    if kind is None and what_is_there(out) not in (None, "a file", "a folder"):
        writable_target(out)  # the writer's own refusal of a device, a FIFO, a socket
    if kind is None and out.exists() and out.is_dir() != folder:
        raise SemcomError(f"{output}: exists and is {'not ' if folder else ''}a folder")
    for given in inputs:
        if given is None or str(given) == "-":
            continue
        source = Path(given)
        if _same(out, source):
            raise SemcomError(f"{output}: is the input {given}; write the output elsewhere")
        if source.is_dir() and _inside(out, source):  # a checkpoint's or share set's folder stays as it is
            raise SemcomError(f"{output}: is inside the input folder {given}; write the output elsewhere")
    if kind is not None:
        claim_output(out, kind, force)
        claim_for_run(out)


def check_outputs(paths, inputs) -> None:
    """Every file a command writes (a share set's, say) checked against every input file."""
    for path in paths:
        check_output(path, inputs)


# File outputs recognised by their first bytes or their JSON keys (the semantic file's kind is in io.semantic,
# the checkpoints' in io.checkpoint, a share set's in link.share_set)
RESULTS_OUTPUT = OutputKind("semcom results file (JSON)", json_with_key("points"))
DECODED_OUTPUT = OutputKind("decoded result (JSON)", json_with_key("answer"))
PNG_OUTPUT = OutputKind("picture (PNG)", is_png)
CSV_OUTPUT = OutputKind("CSV table", is_text_file)


def check_companions(results: str | Path | None, force: bool) -> None:
    """The files a results JSON is written with: its CSV (``OUT.csv``) and its plots (``OUT-*.png``), under
    the same rule as the JSON. The plots' names depend on what is measured, so every ``OUT-*.png`` already
    there is claimed before the run starts."""
    if results is None or str(results) == "-":
        return
    results = Path(results)
    check_output(results.with_suffix(".csv"), kind=CSV_OUTPUT, force=force)
    stem = results.with_suffix("")
    for plot in sorted(stem.parent.glob(glob.escape(stem.name) + "-*.png")):
        check_output(plot, kind=PNG_OUTPUT, force=force)
