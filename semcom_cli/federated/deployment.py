"""Flower's deployment engine on this machine: a SuperLink, one SuperNode per device, ``flwr run``.

This is how a lab runs the job across machines (README: one SuperLink on the server, one
``flower-supernode`` per device with its ``partition-id``); here every process runs on localhost,
each Flower process with its own ``FLWR_HOME`` under a temporary folder. Nothing is installed at run
time: the SuperLink's dependency installation is off, and the app (``flower_app/``) uses the
environment semcom is installed in.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.optional import require

__all__ = ["APP_DIR", "local_federation", "run_in_deployment"]

APP_DIR = Path(__file__).resolve().parent / "flower_app"
CONNECTION = "semcom-local"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flower_env(home: Path) -> dict:
    # Flower's processes start others by name (flower-superexec, flwr-serverapp, flwr-clientapp)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, PATH=path, FLWR_HOME=str(home), FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
               FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", OMP_WAIT_POLICY="PASSIVE")
    return env


def _tool(name: str) -> str:
    """A Flower command from this environment's bin folder (beside this Python)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise SemcomError(f"{name} not found: Flower is not installed in this environment (pip install flwr)")
        return found
    return str(path)


def _wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SemcomError(f"the SuperLink stopped at start (exit {process.returncode}); see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SemcomError(f"the SuperLink did not answer on port {port} within {timeout:.0f} s")


@contextmanager
def local_federation(devices: int, workdir: Path | None = None):
    """Start a SuperLink and ``devices`` SuperNodes on localhost; yields (workdir, port, processes) and
    stops them all (SIGTERM, then SIGKILL) on the way out."""
    root = Path(workdir or tempfile.mkdtemp(prefix="semcom-flower-"))
    processes: dict[str, subprocess.Popen] = {}
    finished = False
    try:
        port = _free_port()
        (root / "link").mkdir(parents=True, exist_ok=True)
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        processes["superlink"] = subprocess.Popen(
            [_tool("flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(port),
             "--disable-runtime-dependency-installation"],
            env=_flower_env(root / "link"), stdout=open(logs / "superlink.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        _wait_healthy(port, processes["superlink"])
        for device in range(devices):
            home = root / f"device{device}"
            home.mkdir(exist_ok=True)
            processes[f"device{device}"] = subprocess.Popen(
                [_tool("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{port}", "--host", "127.0.0.1",
                 "--port", str(_free_port()), "--node-config", f"partition-id={device} num-partitions={devices}"],
                env=_flower_env(home), stdout=open(logs / f"device{device}.log", "wb"), stderr=subprocess.STDOUT,
                start_new_session=True)
        cli = root / "cli"
        cli.mkdir(exist_ok=True)
        (cli / "config.toml").write_text(f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
                                         f'address = "127.0.0.1:{port}"\ninsecure = true\n')
        yield root, port, processes
        finished = True
    finally:
        stop(processes.values())
        if finished and workdir is None:  # logs are kept only when something went wrong
            shutil.rmtree(root, ignore_errors=True)


def stop(processes) -> None:
    """SIGTERM each process group, then SIGKILL what is still there."""
    processes = list(processes)
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + 10
    for p in processes:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _run_config(values: dict) -> str:
    """``flwr run -c`` syntax: TOML values, space-separated."""

    def toml(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string

    return " ".join(f"{k}={toml(v)}" for k, v in values.items())


def run_in_deployment(job, devices: int, timeout: float | None = None, on_started=None) -> None:
    """Run ``job`` with the deployment engine on localhost (``devices`` SuperNodes); raises with one line
    if the run does not finish well. ``on_started(processes)`` is called once everything is up."""
    require("flwr")
    with local_federation(devices) as (root, port, processes):
        if on_started is not None:
            on_started(processes)
        log = root / "logs" / "run.log"
        command = [_tool("flwr"), "run", str(APP_DIR), CONNECTION, "--stream", "-c", _run_config(job.run_config())]
        with open(log, "wb") as out:
            try:
                code = subprocess.run(command, env=_flower_env(root / "cli"), stdout=out, stderr=subprocess.STDOUT,
                                      timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                raise SemcomError(f"the federated run did not finish within {timeout:.0f} s (logs: {root / 'logs'})")
        text = log.read_text(errors="replace")
        if code != 0 or "Traceback" in text or "failed" in text.lower().split("finished")[-1][:200]:
            last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
            raise SemcomError(f"the federated run failed (logs: {root / 'logs'}): {last[0][:300]}")
