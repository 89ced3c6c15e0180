"""The baseline federated fine-tuning is measured against: the same split step, the same number of
steps, on the union of every device's data in one place (no averaging, no messages)."""

from __future__ import annotations

import time

from semcom_cli.data.domains import client_shards, union
from semcom_cli.federated.split import DeviceFront, ServerBack
from semcom_cli.system import SemcomModel
from semcom_cli.training.trainer import final_loss

__all__ = ["train_centralised"]


def train_centralised(model: SemcomModel, steps: int, on_step=None) -> dict:
    """Train ``model``'s front and back for ``steps`` steps on all devices' pictures together
    (``train.federated``'s data settings); returns a summary like the federated stage's."""
    cfg = model.preset.train.federated
    data = union(client_shards(cfg.clients, cfg.per_client, cfg.data_seed, cfg.main_style, cfg.plain_share))
    back = ServerBack(model, model.get_llm(), cfg)
    front = DeviceFront(model, data, cfg, node=0, seed=model.preset.seed)
    started, losses = time.time(), []
    for step in range(steps):
        activations = front.forward(0, step)
        loss, grad = back.step(activations)
        front.backward(0, step, grad)
        losses.append(loss)
        if on_step is not None:
            on_step(step + 1, steps, loss)
    return {"stage": "centralised", "steps": steps, "batch_size": cfg.batch_size, "first_loss": losses[0],
            "final_loss": final_loss(losses),
            "seconds": round(time.time() - started, 1)}
