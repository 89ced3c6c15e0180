"""Training and measuring query guidance, top to bottom.

Two parts, trained apart because they learn different things:

- the **image network** (:class:`.model.GuidanceNet`) learns to find a referent in a picture: each
  step draws training scenes from a seeded pool (half on photographs) and one unambiguous referent
  of each, and fits the map to the referred object's mask (binary cross-entropy per pixel plus a
  Dice term: the object is a small share of the image, and IoU is what is measured). No text and
  no LLM: the referent is given.
- the **parser** (:mod:`.referent`) learns to read a referent from the LLM's states of a query, on
  the training wordings of many scenes' queries (with capitals and end punctuation varied).

:func:`measure_iou` measures the two together, as ``semcom guide`` runs them: query text → LLM →
parser → image network → map, against the mask; and the image network alone with the true referent.
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from pydantic import Field
from torch.nn import functional as F

from semcom_cli.config.base import BatchSize, Every, LearningRate, Seed, StageSettings, Steps
from semcom_cli.data.scenes import referring_queries, scene_at
from semcom_cli.data.scenes.queries import _candidates, _referent
from semcom_cli.reconstruct.guidance.model import GuidanceNet, iou, iou_by_kind
from semcom_cli.training.memory import MemoryNeed
from semcom_cli.training.trainer import Checkpointing, Optimisation, Trainer

__all__ = ["GuidanceTrain", "ScenePool", "query_pairs", "train_guidance", "measure_iou"]


MAX_POOL = 100_000     # training scenes drawn up front (about 7 ms and 30 kB each)
SCENE_BYTES = 32_000   # one scene of a pool: image, object masks, referents


class GuidanceTrain(StageSettings):
    steps: Steps = 2500
    batch_size: BatchSize = 32
    lr: LearningRate = 2e-3
    pool: int = Field(4000, ge=1, le=MAX_POOL)  # training scenes (indices 0 … pool-1 of the train split)
    width: int = Field(16, ge=8, le=256, multiple_of=8)  # 8 norm groups
    seed: Seed = 0
    log_every: Every = 100

    def memory(self) -> MemoryNeed:
        """The run's estimate (activations measured at widths 16 and 32: 0.53 MB per sample per unit of width)."""
        return MemoryNeed(int(1.7e6 * (self.width / 32) ** 2), 0.53e6 * self.width, self.batch_size,
                          SCENE_BYTES * self.pool)


class ScenePool:
    """Scenes of a split made once (a scene costs ~7 ms to draw), with every referent each allows
    (``referents=False``: images and masks only, as the codec trains; listing the referents costs
    several times the drawing)."""

    def __init__(self, split: str, count: int, start: int = 0, referents: bool = True):
        self.images, self.masks, self.targets = [], [], []
        for index in range(start, start + count):
            scene = scene_at(split, index)
            self.images.append(torch.from_numpy(scene.image).permute(2, 0, 1).contiguous())
            self.masks.append(torch.from_numpy(scene.masks))
            if referents:
                self.targets.append(sorted({(tuple(_referent(k, f).indices()), t)
                                            for k, t, f in _candidates(scene)}))

    def batch(self, rows: list[int], rng: random.Random):
        """Images [B, 3, 64, 64] in [0, 1], referent indices [B, 4], masks [B, 64, 64] of the objects."""
        picks = [self.targets[i][rng.randrange(len(self.targets[i]))] for i in rows]
        images = torch.stack([self.images[i] for i in rows]).float() / 255.0
        masks = torch.stack([self.masks[i][t] for i, (_, t) in zip(rows, picks)])
        return images, torch.tensor([r for r, _ in picks]), masks


def _vary(text: str, rng: random.Random) -> str:
    """The same query as a user might type it: a capital first letter, an end mark."""
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    end = rng.choice(["", "", ".", "?", "!"]) if text[-1] not in "?." else ""
    return text + end


def query_pairs(split: str, scenes: int, seeds: int = 3, vary: bool = True):
    """(query text, referent) pairs from the split's wordings over its first ``scenes`` scenes,
    each text once."""
    rng = random.Random(f"pairs:{split}")
    out: dict[str, object] = {}
    for index in range(scenes):
        for seed in range(seeds):
            for q in referring_queries(scene_at(split, index), split, seed=seed, per_kind=9):
                out.setdefault(q.text, q.referent)
                if vary:
                    out.setdefault(_vary(q.text, rng), q.referent)
    return list(out), list(out.values())


def _loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    target = masks.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).flatten(1).sum(1) + 1) / ((p + target).flatten(1).sum(1) + 1)
    return bce + dice.mean()


def train_guidance(cfg: GuidanceTrain, pool: ScenePool | None = None, on_log=None,
                   checkpointing: Checkpointing | None = None) -> GuidanceNet:
    """Train the image network through the :class:`~semcom_cli.training.Trainer` (its generator, which
    draws the batches, travels in the resume state); ``checkpointing`` keeps and resumes partial runs."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    pool = pool or ScenePool("train", cfg.pool)
    net = GuidanceNet(cfg.width)
    trainer = Trainer(net.parameters(), cfg, rng, None, checkpointing,
                      Optimisation("one-cycle", weight_decay=1e-4, warmup=0.05, clip=1.0), {"net": net},
                      shared_batches=False, channel_generators=False)
    net.train()
    started = time.time()
    for step in range(trainer.start + 1, cfg.steps + 1):
        images, referents, masks = pool.batch([rng.randrange(len(pool.images)) for _ in range(cfg.batch_size)], rng)
        trainer.step(_loss(net(images, referents), masks))
        if on_log and (step % cfg.log_every == 0 or step == cfg.steps):
            on_log(step, trainer.losses[-1], time.time() - started)
    net.eval()
    return net


@torch.no_grad()
def measure_iou(guide, split: str, count: int = 400, seed: int = 0, batch_size: int = 64) -> dict:
    """Mean IoU on ``count`` queries of ``split`` (scenes 0 … count-1, one query each in the split's
    wordings): through the whole guide (text → LLM → parser → map) and, as ``iou_true_referent``,
    the image network given the true referent; overall and per query kind; and the parser's accuracy."""
    rng = random.Random(f"iou:{split}:{seed}")
    values, oracle, kinds, parsed = [], [], [], []
    for start in range(0, count, batch_size):
        images, masks, texts, referents = [], [], [], []
        for index in range(start, min(count, start + batch_size)):
            scene = scene_at(split, index)
            queries = referring_queries(scene, split, seed=rng.randrange(1 << 30), per_kind=2)
            q = queries[rng.randrange(len(queries))]
            images.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0)
            masks.append(torch.from_numpy(scene.masks[q.target]))
            texts.append(q.text)
            referents.append(q.referent)
            kinds.append(q.kind)
        images, masks = torch.stack(images), torch.stack(masks)
        logits, read = guide.logits(images, texts)
        values += iou(logits, masks).tolist()
        parsed += [r == t for r, t in zip(read, referents)]
        oracle += iou(guide.mark(images, referents), masks).tolist()
    per_kind = iou_by_kind(values, kinds)
    return {"iou": float(np.mean(values)), "iou_true_referent": float(np.mean(oracle)),
            "parser_accuracy": float(np.mean(parsed)), "n": len(values), "per_kind": per_kind}
