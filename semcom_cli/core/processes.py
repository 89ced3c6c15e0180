"""Child processes that never outlive their command, and SIGTERM handled the way Ctrl-C is.

Python's default SIGTERM ends the process on the spot: no ``finally`` runs, so staging folders stay and
children go on. :func:`handle_sigterm` makes SIGTERM raise :class:`Terminated` where the program is, so
the same cleanup that runs on Ctrl-C runs. Each child starts in a process group of its own
(:func:`child_process`), and the whole group is ended when the command leaves the block for any reason,
so a child's own children go too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager

__all__ = ["Terminated", "handle_sigterm", "sigterm_raises", "child_process", "run_child", "end_group",
           "die_with_parent", "process_alive"]

GRACE_S = 5.0  # how long a child group has between SIGTERM and SIGKILL


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C (cleanup runs), exit 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def handle_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread (a no-op off it)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def sigterm_raises():
    """Within the block SIGTERM raises :class:`Terminated` (for library callers that are not the ``semcom``
    command, whose entry point calls :func:`handle_sigterm` once); the handler before is put back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has ended: only its parent has yet to collect it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b")")[-1].split()[0] != b"Z"
    except FileNotFoundError:
        if os.path.isdir("/proc"):
            return False
    except OSError:
        return False
    try:  # no /proc (not Linux)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def end_group(process: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM ``process``'s group, then SIGKILL it if anything is left after ``grace_s``."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:  # the leader may be gone while its children are not
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def die_with_parent() -> None:
    """In the child, before it runs: the kernel sends it SIGKILL if semcom itself is killed (SIGKILL gives
    semcom no chance to end its children)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextmanager
def child_process(args, **popen_kwargs):
    """``subprocess.Popen(args)`` in its own process group, ended with everything it started when the
    block is left (normally, by an error, by Ctrl-C or by SIGTERM); on Linux it also dies with semcom."""
    if sys.platform.startswith("linux"):
        popen_kwargs.setdefault("preexec_fn", die_with_parent)
    process = subprocess.Popen(args, start_new_session=True, **popen_kwargs)
    try:
        yield process
    finally:
        end_group(process)


def run_child(args, timeout: float | None = None, **popen_kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` with :func:`child_process`'s guarantee, stdout and stderr captured as text. The
    output goes through temporary files, not pipes: a grandchild left holding a pipe would keep the read
    waiting; here the child's exit ends the wait, and the group is ended before the output is read."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with child_process(args, stdout=out, stderr=err, **popen_kwargs) as process:
            process.wait(timeout)
        out.seek(0)
        err.seek(0)
        text = [f.read().decode(errors="replace") for f in (out, err)]
    return subprocess.CompletedProcess(args, process.returncode, *text)
