"""The processes a federated run starts, and ending all of them with the command.

Flower's processes start others (the SuperLink a SuperExec, which starts the ServerApp; a SuperNode one
ClientApp process per message), each in a session of its own, so neither our child's process group nor
its children list finds them all once a parent has gone. Every process we start carries the run's
marker in its environment (inherited by everything it starts); ending the run ends every process group
we started and then every process of this user whose environment carries the marker, SIGTERM first,
SIGKILL for what is still there, until none is left.

SIGTERM unwinds the command like Ctrl-C (:mod:`semcom_cli.core.processes`), so ``finally`` blocks and
``atexit`` handlers run and the run's folders are removed.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

from semcom_cli.core.processes import die_with_parent, process_alive

__all__ = ["RUN_MARKER", "RunProcesses", "marked_processes"]

RUN_MARKER = "SEMCOM_FEDERATED_RUN"  # environment variable: the run's folder, in every process of the run


def _environment_of(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:  # gone, or another user's
        return b""


def marked_processes(marker: str) -> list[int]:
    """Live processes (of this user) whose environment carries ``RUN_MARKER=marker`` (Linux /proc)."""
    wanted = f"{RUN_MARKER}={marker}".encode()
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if name.isdigit() and int(name) != os.getpid() and wanted in _environment_of(int(name)).split(b"\0"):
            found.append(int(name))
    return found


def _signal(pid: int, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class RunProcesses:
    """The processes of one run: started in their own process groups with the run's marker, and all
    ended (with whatever they started) by :meth:`stop`, on the way out of a ``with`` block or at exit."""

    def __init__(self, marker: str | Path):
        self.marker = str(marker)
        self.started: list[subprocess.Popen] = []
        self._stopped = False
        atexit.register(self.stop)

    def env(self, base: dict) -> dict:
        return dict(base, **{RUN_MARKER: self.marker})

    def start(self, args: list[str], env: dict, log: Path | None = None) -> subprocess.Popen:
        out = open(log, "wb") if log is not None else subprocess.DEVNULL
        try:
            process = subprocess.Popen(args, env=self.env(env), stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       preexec_fn=die_with_parent)  # even a SIGKILLed semcom takes it along
        finally:
            if log is not None:
                out.close()  # the child holds its own copy
        self.started.append(process)
        return process

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every process of the run, SIGKILL what is left after ``grace`` seconds; returns once
        none is left (a process that starts another while ending is found on the next pass)."""
        for attempt in range(4):
            ours = [p for p in self.started if p.poll() is None]
            marked = [pid for pid in marked_processes(self.marker) if process_alive(pid)]
            if not ours and not marked:
                break
            sig = signal.SIGTERM if attempt == 0 else signal.SIGKILL
            for p in ours:
                _signal(p.pid, sig, group=True)
            for pid in marked:
                _signal(pid, sig, group=False)
            deadline = time.time() + (grace if attempt == 0 else 2.0)
            while time.time() < deadline:
                if all(p.poll() is not None for p in self.started) and \
                        not any(process_alive(pid) for pid in marked_processes(self.marker)):
                    break
                time.sleep(0.1)
        for p in self.started:
            if p.poll() is None:
                try:
                    p.wait(1)
                except subprocess.TimeoutExpired:
                    pass
        self._stopped = True
        atexit.unregister(self.stop)

    def __enter__(self) -> "RunProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
