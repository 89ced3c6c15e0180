"""The server's partial runs (at round boundaries) and its finished checkpoint.

After every ``save_every`` rounds the server writes ``<output>.partial`` like any stage does
(:mod:`semcom_cli.training.partial`): the checkpoint as it stands (the round's averaged front, the
server's back) and a resume file with the round, the server optimizer's moments, the loss log and
the message log. A resumed run starts at the next round; devices start every round afresh from the
server's front, so they need nothing saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from semcom_cli.core.files import partial_path
from semcom_cli.federated.averaging import privacy_spent
from semcom_cli.core.errors import SemcomError
from semcom_cli.federated.split import ServerBack, front_parameters
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import save_checkpoint
from semcom_cli.training.partial import finish_partial, load_partial, save_partial
from semcom_cli.training.trainer import ResumeState, final_loss

__all__ = ["ServerState", "save_server_partial", "load_server_partial", "finish", "STAGE"]

STAGE = "federated"


@dataclass
class ServerState:
    model: SemcomModel
    back: ServerBack
    round: int = 0
    losses: list[float] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    momentum: list | None = None  # FedAvgM's momentum on the averaged update, handed to each round's strategy
    owns_partial: bool = False  # this run wrote or resumed ``<output>.partial`` (only then is it removed)


def save_server_partial(output: Path, state, job, history: list[dict]) -> None:
    tensors, meta = state.back.optimizer_state()
    momentum = state.momentum or []  # FedAvgM's, in the front's parameter order
    tensors.update({f"momentum.{i:05d}": torch.from_numpy(np.array(v)) for i, v in enumerate(momentum)})
    save_partial(partial_path(output), state.model, STAGE, ResumeState(state.round, tensors, {
        "optimizer": meta, "losses": state.losses, "dropped": state.dropped, "seconds": state.seconds,
        "messages": job.message_log.entries}), history)
    state.owns_partial = True


def load_server_partial(output: Path, job):
    """(model, ServerState, history) of the partial run beside ``output``."""

    model, resume, history = load_partial(partial_path(output), STAGE)
    back = ServerBack(model, model.get_llm(), model.preset.train.federated)
    momentum = [resume.tensors[k].numpy() for k in sorted(resume.tensors) if k.startswith("momentum.")]
    if momentum and len(momentum) != len(front_parameters(model)):
        raise SemcomError(f"{partial_path(output)}: FedAvgM's momentum there is for a front of {len(momentum)} "
                          "arrays (a partial run from before the averaging took parameters only); start the run again")
    back.load_optimizer({k: v for k, v in resume.tensors.items() if not k.startswith("momentum.")},
                        resume.meta["optimizer"])
    job.message_log.entries = list(resume.meta["messages"])
    return model, ServerState(model, back, resume.step, list(resume.meta["losses"]), list(resume.meta["dropped"]),
                              float(resume.meta["seconds"]), momentum=momentum or None, owns_partial=True), history


def finish(output: Path, state, job, history: list[dict]) -> dict:
    """Write the checkpoint, remove the partial run this run wrote or resumed (nothing else: a folder
    that appeared there otherwise is not ours), return the stage's summary."""
    cfg = state.model.preset.train.federated
    losses = state.losses
    summary = {"stage": STAGE, "engine": job.engine, "clients": cfg.clients, "rounds": state.round,
               "local_steps": cfg.local_steps, "batch_size": cfg.batch_size, "strategy": cfg.strategy,
               "steps": len(losses), "first_loss": losses[0] if losses else None,
               "final_loss": final_loss(losses), "seconds": round(state.seconds, 1),
               "dropped": state.dropped, "u_shaped": cfg.u_shaped, "secure_aggregation": cfg.secure_aggregation,
               "privacy": privacy_spent(cfg, state.round),
               # the nodes the server exchanged messages with (deployment: only the run's own can be)
               "nodes": sorted({int(e["node"]) for e in job.message_log.entries}),
               **job.message_log.summary()}
    summary["hash"] = save_checkpoint(state.model, output, training={"stages": history + [summary]})
    if state.owns_partial:
        finish_partial(partial_path(output))
    return summary
