"""Flower's deployment engine on this machine: a SuperLink, one SuperNode per device, ``flwr run``.

This is how a lab runs the job across machines (README: one SuperLink on the server, one
``flower-supernode`` per device with its ``partition-id``); here every process runs on localhost,
each Flower process with its own ``FLWR_HOME`` under the run's temporary folder. Nothing is installed
at run time: the SuperLink's dependency installation is off, and the app (``flower_app/``) uses the
environment semcom is installed in.

No stranger joins: every connection is TLS against a certificate authority made for the run
(:mod:`semcom_cli.federated.credentials`), the SuperLink runs with SuperNode authentication (a
SuperNode registers nothing itself; only the public keys this run registers, one fresh key pair per
device, are let in), and the ServerApp sends only to the node ids those registrations returned (the
job's ``nodes``), so a node someone else registers on the same SuperLink is never sent a message nor
averaged in. Every process of the run is ended with the command, however it ends
(:mod:`semcom_cli.federated.processes`), and the run's folder (credentials included) is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.optional import require
from semcom_cli.core.processes import run_child
from semcom_cli.federated.credentials import TlsFiles, make_node_key, make_tls
from semcom_cli.federated.processes import RunProcesses

__all__ = ["APP_DIR", "Federation", "local_federation", "run_in_deployment"]

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


def _wait_healthy(port: int, process: subprocess.Popen, ca: Path, timeout: float = 60.0) -> None:
    context = ssl.create_default_context(cafile=str(ca))  # the run's CA only
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SemcomError(f"the SuperLink stopped at start (exit {process.returncode}); see its log")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", timeout=1, context=context):
                return
        except OSError:
            time.sleep(0.2)
    raise SemcomError(f"the SuperLink did not answer on port {port} within {timeout:.0f} s")


@dataclass
class Federation:
    """A SuperLink and its SuperNodes on localhost, as :func:`local_federation` yields it."""

    root: Path                 # the run's folder: homes, credentials, logs
    port: int                  # the SuperLink's (Fleet, Control and Runtime APIs, TLS)
    tls: TlsFiles
    processes: dict = field(default_factory=dict)   # name → Popen (superlink, device0, …)
    nodes: list[int] = field(default_factory=list)  # the node ids registered for this run's devices
    run: RunProcesses | None = None

    def cli_env(self) -> dict:
        return _flower_env(self.root / "cli")

    def flwr(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """A ``flwr`` command against this SuperLink (TLS, the run's CA)."""
        return run_child([_tool("flwr"), *args], timeout=timeout, env=self.run.env(self.cli_env()),
                         stdin=subprocess.DEVNULL)

    def register(self, public_key: Path) -> int:
        """Register a SuperNode's public key (Control API); returns its node id."""
        done = self.flwr("supernode", "register", str(public_key), CONNECTION, "--format", "json")
        try:
            # the JSON document follows whatever the command printed before it
            answer, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])
            if answer.get("success") is not True:
                raise ValueError("not registered")
            return int(answer["node-id"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            said = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["(no output)"]
            raise SemcomError(f"registering a SuperNode failed: {said[0][:200]}") from None

    def start_supernode(self, name: str, private_key: Path | None, node_config: str) -> subprocess.Popen:
        """A SuperNode connected to this SuperLink over TLS, authenticated by ``private_key`` (None: no key,
        which an authenticating SuperLink refuses)."""
        home = self.root / name
        home.mkdir(mode=0o700, exist_ok=True)
        args = [_tool("flower-supernode"), "--root-certificates", str(self.tls.ca), "--superlink",
                f"127.0.0.1:{self.port}", "--host", "127.0.0.1", "--port", str(_free_port()),
                "--ssl-certfile", str(self.tls.cert), "--ssl-keyfile", str(self.tls.key),
                "--ssl-ca-certfile", str(self.tls.ca), "--node-config", node_config]
        if private_key is not None:
            args += ["--auth-supernode-private-key", str(private_key)]
        process = self.run.start(args, _flower_env(home), self.root / "logs" / f"{name}.log")
        self.processes[name] = process
        return process


@contextmanager
def local_federation(devices: int, workdir: Path | None = None, tls: TlsFiles | None = None):
    """Start a SuperLink and ``devices`` authenticated SuperNodes on localhost; yields the
    :class:`Federation` and ends every process of it on the way out. ``tls``: the user's certificates
    (:func:`semcom_cli.federated.credentials.given_tls`; for 127.0.0.1) instead of the run's own. Its
    folder (``workdir``, or a new temporary one) is removed, unless the run failed with an error, when its
    logs are kept (the credentials never are)."""
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="semcom-flower-"))
    made_root = workdir is None
    keep_logs = False
    with RunProcesses(root) as run:
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            (root / "logs").mkdir(mode=0o700, exist_ok=True)
            (root / "link").mkdir(mode=0o700, exist_ok=True)
            tls = tls or make_tls(root / "tls")
            fed = Federation(root, _free_port(), tls, run=run)
            fed.processes["superlink"] = run.start(
                [_tool("flower-superlink"), "--ssl-ca-certfile", str(tls.ca), "--ssl-certfile", str(tls.cert),
                 "--ssl-keyfile", str(tls.key), "--enable-supernode-auth", "--host", "127.0.0.1",
                 "--port", str(fed.port), "--disable-runtime-dependency-installation"],
                _flower_env(root / "link"), root / "logs" / "superlink.log")
            _wait_healthy(fed.port, fed.processes["superlink"], tls.ca)
            cli = root / "cli"
            cli.mkdir(mode=0o700, exist_ok=True)
            (cli / "config.toml").write_text(
                f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
                f'address = "127.0.0.1:{fed.port}"\nroot-certificates = {json.dumps(str(tls.ca))}\n')
            for device in range(devices):
                key = make_node_key(root / "keys", f"device{device}")
                fed.nodes.append(fed.register(key.public))
                fed.start_supernode(f"device{device}", key.private,
                                    f"partition-id={device} num-partitions={devices}")
            yield fed
        except SemcomError:
            keep_logs = True
            raise
        finally:
            run.stop()
            for secret in ("tls", "keys"):
                shutil.rmtree(root / secret, ignore_errors=True)
            if made_root and not keep_logs:
                shutil.rmtree(root, ignore_errors=True)


def _run_config(values: dict) -> str:
    """``flwr run -c`` syntax: TOML values, space-separated."""

    def toml(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string

    return " ".join(f"{k}={toml(v)}" for k, v in values.items())


def run_in_deployment(job, devices: int, timeout: float | None = None, on_started=None,
                      tls: TlsFiles | None = None) -> None:
    """Run ``job`` with the deployment engine on localhost (``devices`` SuperNodes); raises with one line
    if the run does not finish well. ``on_started(federation)`` is called once everything is up (the
    processes by name in ``federation.processes``)."""
    require("flwr")
    with local_federation(devices, tls=tls) as fed:
        job.nodes = list(fed.nodes)  # the ServerApp sends to these nodes only
        if on_started is not None:
            on_started(fed)
        log = fed.root / "logs" / "run.log"
        command = [_tool("flwr"), "run", str(APP_DIR), CONNECTION, "--stream", "-c", _run_config(job.run_config())]
        runner = fed.run.start(command, fed.cli_env(), log)
        try:
            code = runner.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SemcomError(f"the federated run did not finish within {timeout:.0f} s "
                              f"(logs: {fed.root / 'logs'})") from None
        text = log.read_text(errors="replace")
        if code != 0 or "Traceback" in text or "failed" in text.lower().split("finished")[-1][:200]:
            last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
            raise SemcomError(f"the federated run failed (logs: {fed.root / 'logs'}): {last[0][:300]}")
