"""Running a federated job in one of Flower's engines, and the centralised baseline it is measured against."""

from __future__ import annotations

import logging
import os

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.optional import require
from semcom_cli.federated.app import FederatedJob, client_app, make_server_app
from semcom_cli.training.stages import STAGES, Stage

__all__ = ["run_in_simulation"]


def run_in_simulation(job: FederatedJob, clients: int) -> dict:
    """Run ``job`` in Flower's simulation engine (Ray): one virtual device per client, one core each;
    returns the stage's summary (the checkpoint is at ``job.output``)."""
    require("flwr")
    from flwr.simulation import run_simulation  # optional heavy: Flower (federated only)

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    result: list[dict] = []
    cores = max(1, min(clients, os.cpu_count() or 1))
    backend = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
               "init_args": {"num_cpus": cores, "num_gpus": 0, "include_dashboard": False,
                             "logging_level": logging.ERROR}}
    flower_log = logging.getLogger("flwr")
    level = flower_log.level
    flower_log.setLevel(logging.ERROR)  # its per-round notes and run_simulation's deprecation notice
    try:
        run_simulation(server_app=make_server_app(job, result), client_app=client_app,
                       num_supernodes=clients, backend_config=backend)
    finally:
        flower_log.setLevel(level)
    if not result:
        raise SemcomError("the federated run stopped before its last round (Flower's log above says why)")
    return result[0]


STAGES.register("federated", Stage("federated", "split fine-tuning across devices on Flower", run_in_simulation))
