"""Running a federated job in one of Flower's engines, and the centralised baseline it is measured against."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.optional import require
from semcom_cli.federated.app import FederatedJob, client_app, make_server_app
from semcom_cli.training.stages import STAGES, Stage

__all__ = ["run_in_simulation", "RAY_LOOPBACK_ENV", "SERVER_JOIN_SECONDS"]

# Ray, by default, takes this machine's network address as its node's and listens on every interface;
# treated as a single-machine cluster it takes the loopback address and binds there only. Read when ray
# is imported, and inherited by the processes Ray starts.
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
SERVER_JOIN_SECONDS = 60.0  # how long an ending command waits for the ServerApp's thread to stop


def _ray_on_loopback() -> None:
    os.environ.update(RAY_LOOPBACK_ENV)
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:  # ray imported before (another run in this process): its flag was read then
        constants.ENABLE_RAY_CLUSTER = False


def _shutdown_ray() -> None:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()  # its GCS, raylet and workers end with the command, even when it was interrupted


class _SignalFreeThread:
    """A function run in a thread that, like every thread it starts, blocks SIGINT and SIGTERM.

    Flower's simulation waits in untimed joins and queue reads; a Ctrl-C the kernel hands to one of its
    threads, or to the main thread while it sits in such a join, is never acted on (the run went on, or
    hung at its end). Here the signals can reach the main thread only, which waits in short timed joins,
    so KeyboardInterrupt (or SIGTERM's Terminated) is raised there at once and the run is wound down."""

    def __init__(self, fn):
        self.outcome: dict = {}
        # waited for through an event, not Thread.join: in Python 3.11 a Ctrl-C that interrupts a join
        # marks the thread as ended while it still runs
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fn,), name="flower-simulation", daemon=True)

    def _run(self, fn) -> None:
        try:
            self.outcome["value"] = fn()
        except BaseException as err:  # handed to the waiting thread, which raises it
            self.outcome["error"] = err
        finally:
            self.done.set()

    def wait(self):
        while not self.done.wait(0.2):
            pass
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome.get("value")


def _start_without_signals(fn) -> _SignalFreeThread:
    runner = _SignalFreeThread(fn)
    stopped = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, stopped)  # inherited by the thread started now
    try:
        runner.thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    return runner


def run_in_simulation(job: FederatedJob, clients: int) -> dict:
    """Run ``job`` in Flower's simulation engine (Ray, bound to 127.0.0.1): one virtual device per client,
    one core each; returns the stage's summary (the checkpoint is at ``job.output``). However it ends
    (Ctrl-C, SIGTERM), the ServerApp's thread is stopped before it writes anything more and Ray is shut
    down before this returns or raises."""
    require("flwr")
    _ray_on_loopback()
    from flwr.simulation import run_simulation  # optional heavy: Flower (federated only)

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's C++ core would take SIGTERM (and abort with a stack dump); semcom's handler winds the run down
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    job.stop.clear()
    result: list[dict] = []
    threads: list = []
    cores = max(1, min(clients, os.cpu_count() or 1))
    backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
               "init_args": {"num_cpus": cores, "num_gpus": 0, "include_dashboard": False,
                             "_node_ip_address": "127.0.0.1", "logging_level": logging.ERROR}}
    flower_log, ray_log = logging.getLogger("flwr"), logging.getLogger("ray")
    levels = flower_log.level, ray_log.level
    flower_log.setLevel(logging.ERROR)  # its per-round notes and run_simulation's deprecation notice
    ray_log.setLevel(logging.ERROR)  # "SIGTERM handler is not set" (semcom's own handler stays: wanted)
    simulation = None
    try:
        simulation = _start_without_signals(lambda: run_simulation(
            server_app=make_server_app(job, result, threads), client_app=client_app, num_supernodes=clients,
            backend_config=backend))
        simulation.wait()
    finally:
        job.stop.set()  # a ServerApp still running (the command is ending early) stops at its next check
        for thread in threads:
            thread.join(SERVER_JOIN_SECONDS)
        if simulation is not None:
            simulation.done.wait(SERVER_JOIN_SECONDS)  # Flower's runtime ends once its ServerApp has
        _shutdown_ray()
        flower_log.setLevel(levels[0])
        ray_log.setLevel(levels[1])
    if not result:
        raise SemcomError("the federated run stopped before its last round (Flower's log above says why)")
    return result[0]


STAGES.register("federated", Stage("federated", "split fine-tuning across devices on Flower", run_in_simulation))
