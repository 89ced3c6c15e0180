"""Training and measuring the guidance network, top to bottom.

Each step draws a batch of training scenes (a seeded pool, half on photographs) with one
referring query each, in a training wording drawn anew every time a scene comes back, and fits
the map to the referred object's mask: binary cross-entropy per pixel plus a Dice term (the
object is a small share of the image, and IoU is what is measured). The LLM only reads the
queries (frozen, its states cached per text); the network is what trains.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..scenes import referring_queries, scene_at
from .model import GuidanceNet, iou

__all__ = ["GuidanceTrain", "sample_batch", "train_guidance", "measure_iou"]


@dataclass(frozen=True)
class GuidanceTrain:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    pool: int = 6000          # training scenes (indices 0 … pool-1 of the train split)
    width: int = 16
    seed: int = 0
    log_every: int = 100


def sample_batch(split: str, indices: list[int], rng: random.Random, size: int = 64):
    """Images [B, 3, H, W], masks of the referred objects [B, H, W], query texts, their kinds."""
    images, masks, texts, kinds = [], [], [], []
    for index in indices:
        scene = scene_at(split, index, size)
        queries = referring_queries(scene, split, seed=rng.randrange(1 << 30), per_kind=2)
        q = queries[rng.randrange(len(queries))]
        images.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0)
        masks.append(torch.from_numpy(scene.masks[q.target]))
        texts.append(q.text)
        kinds.append(q.kind)
    return torch.stack(images), torch.stack(masks), texts, kinds


def _loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    target = masks.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).flatten(1).sum(1) + 1) / ((p + target).flatten(1).sum(1) + 1)
    return bce + dice.mean()


def train_guidance(reader, cfg: GuidanceTrain, on_log=None) -> GuidanceNet:
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    net = GuidanceNet(reader.dim, cfg.width)
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    net.train()
    started = time.time()
    for step in range(1, cfg.steps + 1):
        images, masks, texts, _ = sample_batch("train", [rng.randrange(cfg.pool) for _ in range(cfg.batch_size)], rng)
        states, mask = reader(texts)
        loss = _loss(net(images, states, mask), masks)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        if on_log and (step % cfg.log_every == 0 or step == cfg.steps):
            on_log(step, loss.item(), time.time() - started)
    net.eval()
    return net


@torch.no_grad()
def measure_iou(net: GuidanceNet, reader, split: str, count: int = 400, seed: int = 0,
                batch_size: int = 64) -> dict:
    """Mean IoU on ``count`` queries of ``split`` (scenes 0 … count-1, one query each, the split's
    wordings), overall and per query kind."""
    rng = random.Random(f"iou:{split}:{seed}")
    values, kinds = [], []
    for start in range(0, count, batch_size):
        indices = list(range(start, min(count, start + batch_size)))
        images, masks, texts, kind = sample_batch(split, indices, rng)
        states, mask = reader(texts)
        values += iou(net(images, states, mask), masks).tolist()
        kinds += kind
    per_kind = {k: float(np.mean([v for v, kk in zip(values, kinds) if kk == k])) for k in sorted(set(kinds))}
    return {"iou": float(np.mean(values)), "n": len(values), "per_kind": per_kind}
