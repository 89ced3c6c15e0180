"""Reading inputs and writing outputs: stdin/stdout for ``-``, and never a half-written file."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import MAX_BYTES

__all__ = ["read_input_bytes", "read_json_file", "atomic_write_bytes", "write_json", "write_stdout", "stdout_error",
           "partial_path", "refuse_foreign_partial", "current_umask", "writable_target", "what_is_there", "folder_lock", "wait_for_flock"]


def partial_path(output: Path) -> Path:
    """Where a stage or a sweep writing ``output`` keeps its resumable partial run."""
    return output.with_name(output.name + ".partial")


def refuse_foreign_partial(output: Path, resume: bool) -> None:
    """A fresh run never replaces a partial run it did not make: resume it, or remove it first."""
    if not resume and partial_path(output).exists():
        raise SemcomError(f"{partial_path(output)}: an interrupted run is there; continue it with --resume, "
                          "or remove it")


def stdout_error(err: BaseException | None = None) -> SemcomError:
    """The one line for a stdout that is closed (``err`` None), full, or whose reader is gone."""
    why = "it is closed" if err is None else (getattr(err, "strerror", None) or err)
    return SemcomError(f"cannot write to stdout ({why})")


def write_stdout(data: bytes) -> None:
    stream = getattr(sys.stdout, "buffer", None)
    if stream is None:  # started with stdout closed
        raise stdout_error()
    try:
        stream.write(data)
        stream.flush()
    except (OSError, ValueError) as err:
        raise stdout_error(err) from None


def read_input_bytes(path: str, kind: str = "semantic") -> tuple[bytes, str]:
    """Read a whole input file, or stdin for ``-``, of at most ``MAX_BYTES[kind]`` bytes (a device or a
    pipe that goes on is refused once past it). Returns (bytes, display name)."""
    limit = MAX_BYTES[kind]
    if path == "-":
        name = "<stdin>"
        if getattr(sys.stdin, "buffer", None) is None:
            raise SemcomError("cannot read stdin (it is closed)")
        data = sys.stdin.buffer.read(limit + 1)
    else:
        name, p = path, Path(path)
        if not p.exists():
            raise SemcomError(f"{path}: no such file")
        if p.is_dir():
            raise SemcomError(f"{path}: is a folder, not a file")
        try:
            with open(p, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as err:
            raise SemcomError(f"{path}: cannot read it ({err.strerror or err})") from None
    if len(data) > limit:
        raise SemcomError(f"{name}: larger than {limit:,} bytes, the most a {kind} input may be")
    return data, name


def read_json_file(path: str | Path, kind: str, what: str):
    """A JSON file of at most ``MAX_BYTES[kind]`` bytes, parsed; one line naming ``what`` it should be
    when it is missing or does not parse."""
    if not Path(path).is_file():
        raise SemcomError(f"{path}: no such {what}")
    raw, _ = read_input_bytes(str(path), kind)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SemcomError(f"{path}: not a {what} (it does not parse as JSON)") from None


def what_is_there(path: Path) -> str | None:
    """What ``path`` names, in words (following symbolic links): None when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a symbolic link to nothing" if os.path.islink(path) else None
    except OSError as err:
        return f"a path that cannot be looked at ({err.strerror or err})"
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def writable_target(path: str | Path) -> Path:
    """Where an output file is written: a new path, or an existing regular file (through a symbolic link,
    the file it names, so the link stays). A device, a FIFO, a socket or a folder is refused: the atomic
    rename would replace it with a regular file, and such a path is never the command's own output."""
    path = Path(path)
    there = what_is_there(path)
    if there is None:
        return path
    if there != "a file":
        raise SemcomError(f"{path}: {there}, not a regular file; semcom writes its outputs only to regular "
                          "files and new paths")
    return Path(os.path.realpath(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename, so no half-written file is left; only a new
    path or a regular file is written (:func:`writable_target`)."""
    if str(path) == "-":
        write_stdout(data)
        return
    path = writable_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise SemcomError(f"{path}: cannot write it ({err.strerror or err})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a plain open would follow the umask
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise SemcomError(f"{path}: cannot write it ({err.strerror or err})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data) -> None:
    """Pretty, key-sorted JSON, written atomically (``-``: stdout)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


@contextmanager
def folder_lock(folder: str | Path, timeout_s: float = 120.0):
    """Hold an exclusive lock on ``folder`` itself (``flock`` on its descriptor: no file is added, so a
    checkpoint's content hash is untouched) while a file in it is read, changed and written, so two
    commands updating it take turns instead of one losing the other's change."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise SemcomError(f"{folder}: cannot lock it ({err.strerror or err})") from None
    try:
        wait_for_flock(fd, fcntl.LOCK_EX, timeout_s, f"{folder}: another command has been updating it for "
                                                     f"{timeout_s:.0f} s; try again when it is done")
        yield
    finally:
        os.close(fd)  # releases the lock


def wait_for_flock(fd: int, mode: int, timeout_s: float, busy: str) -> None:
    """Take ``flock(fd, mode)``, polling (a blocked flock would not let Ctrl-C through) with a growing pause;
    ``busy``, the one line, when another holder keeps it past ``timeout_s``."""
    deadline, pause = time.monotonic() + timeout_s, 0.005
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SemcomError(busy) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
