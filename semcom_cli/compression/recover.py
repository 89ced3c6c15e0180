"""Layer removal and its recovery: the LLM without its least influential layers, then a short LoRA run.

Removing whole transformer layers shrinks every tensor that matters (a mask that zeroes weights
would save nothing). The removed layers' work is then partly recovered by training a LoRA adapter
on the shortened model for a few steps on the instruct stage's own batches (the checkpoint's
transmitter and channel codec, the channel at random SNRs, the task mix it was tuned on), and
merging it into the weights, so the compressed model has the same shape as any other.
"""

from __future__ import annotations

import copy
import random

import torch

from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.models.llm import LLM, attach_lora
from semcom_cli.models.prompting import answer_token_count, instruct_loss
from semcom_cli.tasks import get_task
from semcom_cli.training.stages import instruct_tokens

__all__ = ["without_layers", "name_after_removal", "recover"]


def without_layers(llm: LLM, drop: list[int]) -> LLM:
    """A copy of ``llm`` without the transformer layers ``drop`` (the rest renumbered, the KV cache
    indices with them)."""
    network = copy.deepcopy(llm.model)
    body = network.model
    keep = [i for i in range(len(body.layers)) if i not in set(drop)]
    body.layers = torch.nn.ModuleList(body.layers[i] for i in keep)
    for index, layer in enumerate(body.layers):
        layer.self_attn.layer_idx = index
    network.config.num_hidden_layers = len(keep)
    if isinstance(getattr(network.config, "layer_types", None), list):
        network.config.layer_types = [network.config.layer_types[i] for i in keep]
    return LLM(network, llm.tokenizer, llm.model_id, llm.sha256)


def name_after_removal(name: str, drop: list[int]) -> str | None:
    """A module's name once layers ``drop`` are removed (None: it was in one of them)."""
    if not name.startswith("model.layers."):
        return name
    index, rest = name[len("model.layers."):].split(".", 1)
    index = int(index)
    if index in drop:
        return None
    return f"model.layers.{index - sum(d < index for d in drop)}.{rest}"


def recover(model, llm: LLM, steps: int, lr: float = 1e-3, seed: int = 0, status=None) -> list[float]:
    """Train a LoRA adapter on ``llm`` (a shortened copy) for ``steps`` instruct-stage batches of the
    checkpoint ``model`` (its codec frozen), then merge it into the weights. Returns the losses."""

    cfg = model.preset.train.instruct.model_copy(update={"joint": False})
    data = EasyVQA.load("train")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    attach_lora(llm, model.preset.backbone.lora)
    params = [p for n, p in llm.model.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr)
    losses = []
    llm.model.train()
    for step in range(steps):
        tasks = [cfg.tasks[rng.randrange(len(cfg.tasks))] for _ in range(cfg.batch_size)]
        samples = [get_task(t).train_sample(data, rng) for t in tasks]
        order = sorted(range(len(tasks)), key=lambda i: get_task(tasks[i]).modality == "text")
        tasks, samples = [tasks[i] for i in order], [samples[i] for i in order]
        tokens, mask = instruct_tokens(model, data, tasks, samples, rng, cfg, step)
        loss = instruct_loss(llm, tasks, [s[1] for s in samples], tokens, mask, [s[2] for s in samples],
                             answer_token_count(llm, [s[2] for s in samples]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        if status and (step + 1) % 10 == 0:
            status(f"recovery step {step + 1}/{steps}: loss {sum(losses[-10:]) / 10:.3f}")
    llm.model.eval()
    llm.model = llm.model.merge_and_unload()
    llm.model.requires_grad_(False)
    return losses
