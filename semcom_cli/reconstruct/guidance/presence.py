"""The presence check: is what the map marks the referent the query names?

The image network (:mod:`.model`) always marks *something*: asked for "the yellow shape" in a scene with
none, it marks the nearest colour about as strongly as a present one (the map's peak told absent colours
from present ones in half the test scenes only). So the guide looks at what it marked and says what
that is: a small network reads the picture through the map (the picture, the map, the picture times
the map, where in the picture) and gives the marked thing's colour (8), shape (3), whether it sits near
each corner (4: its centre within 0.6 of the side, |dx| + |dy|, the scenes' own rule) and whether it is
one object at all. The referent is present as far as each field it names agrees:
presence = P(object) × P(colour = named) × P(shape = named) × P(near the named corner), each factor
only for a field the referent says ("leftmost" and "largest" always hold when the shape does).

It learns from training scenes' own object masks (softened, dimmed and spilled as the guide's maps are)
and from background patches (not an object), so it needs no guide's map to train; the threshold under
which a referent counts as absent is set on the guide's own maps of validation scenes
(:mod:`.calibrate`).
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from semcom_cli.config.base import BatchSize, LearningRate, Seed, StageSettings, Steps, settings_from
from semcom_cli.data.scenes import REFERENT_VALUES, Referent, absent_queries, referring_queries, scene_at
from semcom_cli.training.memory import MemoryNeed
from semcom_cli.training.trainer import Optimisation, Trainer

__all__ = ["PresenceCheck", "PresenceTrain", "presence_examples", "object_examples", "train_presence",
           "presence_config", "presence", "what_is_marked",
           "scene_picture"]

COLOURS = REFERENT_VALUES["color"][1:]
SHAPES = REFERENT_VALUES["shape"][1:]
CORNERS = {"top left": (0.0, 0.0), "top right": (1.0, 0.0), "bottom left": (0.0, 1.0), "bottom right": (1.0, 1.0)}
NEAR_CORNER = 0.6  # the scenes' own rule (data.scenes.queries.EMPTY_CORNER)
WIDTH = 32
HEADS = len(COLOURS) + len(SHAPES) + len(CORNERS) + 1


def presence_config() -> dict:
    return {"width": WIDTH, "version": 2}


def _inputs(images: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] pictures and [B, H, W] map probabilities → the network's 9 input planes."""
    b, _, h, w = images.shape
    p = probabilities[:, None]
    ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([images, p, images * p, ys, xs], dim=1)


def _marked_summary(images: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """What the map marks, in 10 numbers [B, 10]: the marked pixels' mean colour and its spread, the
    strongest pixels' mean probability, the share of the picture marked, and the marked centre."""
    p = probabilities[:, None]
    mass = p.flatten(1).sum(1).clamp_min(1.0)
    mean = (images * p).flatten(2).sum(-1) / mass[:, None]
    spread = ((images - mean[:, :, None, None]) ** 2 * p).flatten(2).sum(-1).div(mass[:, None]).sqrt()
    peak = probabilities.flatten(1).topk(32, dim=1).values.mean(1, keepdim=True)
    share = (probabilities > 0.5).float().flatten(1).mean(1, keepdim=True)
    h, w = probabilities.shape[-2:]
    ys = torch.linspace(0, 1, h).view(1, h, 1)
    xs = torch.linspace(0, 1, w).view(1, 1, w)
    centre = torch.stack([(probabilities * xs).flatten(1).sum(1), (probabilities * ys).flatten(1).sum(1)], 1)
    return torch.cat([mean, spread, peak, share, centre / mass[:, None]], dim=1)


class PresenceCheck(nn.Module):
    """(picture, map probabilities) → logits of the marked thing's colour [8], shape [3], nearness to each
    corner [4] and objectness [1], in that order [B, 16]."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(9, w, 4, 2, 1), nn.GELU(), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.GELU(),
            nn.Conv2d(2 * w, 3 * w, 3, 2, 1), nn.GELU(), nn.Conv2d(3 * w, 3 * w, 3, 1, 1), nn.GELU())
        self.head = nn.Sequential(nn.Linear(3 * 3 * w + 10, 128), nn.GELU(), nn.Linear(128, HEADS))

    def forward(self, images: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        x = self.features(_inputs(images, probabilities))
        weight = F.adaptive_avg_pool2d(probabilities[:, None], x.shape[-2:])
        marked = (x * weight).flatten(2).sum(-1) / weight.flatten(2).sum(-1).clamp_min(1e-3)
        pooled = torch.cat([marked, x.mean((2, 3)), x.amax((2, 3)), _marked_summary(images, probabilities)], 1)
        return self.head(pooled)

    def agreement(self, logits: torch.Tensor, referents: torch.Tensor) -> torch.Tensor:
        """Logits [B, 16] and referents as indices [B, 4] → the probability that the marked thing is the
        referent [B]: objectness times each named field's agreement."""
        colour, shape, corner, thing = logits.split([len(COLOURS), len(SHAPES), len(CORNERS), 1], dim=1)
        p = torch.sigmoid(thing[:, 0])
        said = referents[:, 0] > 0
        picked = colour.softmax(1).gather(1, (referents[:, 0] - 1).clamp_min(0)[:, None])[:, 0]
        p = p * torch.where(said, picked, torch.ones_like(p))
        said = referents[:, 1] > 0
        picked = shape.softmax(1).gather(1, (referents[:, 1] - 1).clamp_min(0)[:, None])[:, 0]
        p = p * torch.where(said, picked, torch.ones_like(p))
        where = referents[:, 2] - 1  # the first four "where" values are the corners
        said = (where >= 0) & (where < len(CORNERS))
        picked = torch.sigmoid(corner).gather(1, where.clamp(0, len(CORNERS) - 1)[:, None])[:, 0]
        return p * torch.where(said, picked, torch.ones_like(p))


class PresenceTrain(StageSettings):
    steps: Steps = 3500
    batch_size: BatchSize = 128
    lr: LearningRate = 2e-3
    scenes: int = Field(3000, ge=10, le=100_000)  # training scenes: their objects and background patches
    guide_scenes: int = Field(1000, ge=0, le=100_000)  # training scenes marked by the guide (half of each batch)
    seed: Seed = 0

    def memory(self) -> MemoryNeed:
        """The scenes' pictures and masks (~4 objects each) and a batch's activations."""
        return MemoryNeed(100_000, 2e6, self.batch_size, self.scenes * 6 * 64 * 64 * 4)


def scene_picture(scene) -> torch.Tensor:
    """A scene's picture as the guide reads it: [3, H, W] in [0, 1]."""
    return torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0


@torch.no_grad()
def presence_examples(mark, split: str, scenes: int, seed: int = 0, start: int = 0, with_labels: bool = False
                      ) -> tuple[torch.Tensor, ...]:
    """Scenes ``start`` … of ``split``, each with the referents it holds (one query of each kind) and
    those it does not, marked by ``mark`` (the guide's image network, frozen) → (pictures [S, 3, 64, 64],
    each example's picture index, map probabilities [N, 64, 64] as half floats, referent indices
    [N, 4], held [N] as 0/1); ``with_labels``: also what each map marks [N, 6] (the labels of
    :func:`object_examples`: the object holding most of the map's mass, or background)."""
    rng = random.Random(f"presence:{split}:{seed}")
    pictures, which, maps, refs, held, scenes_seen = [], [], [], [], [], []
    batch_pictures, batch_refs = [], []

    def flush():
        if batch_refs:
            logits = mark(torch.stack(batch_pictures), batch_refs)
            maps.append(torch.sigmoid(logits).half())
            batch_pictures.clear()
            batch_refs.clear()

    for index in range(start, start + scenes):
        scene = scene_at(split, index)
        picture = scene_picture(scene)
        pictures.append(picture)
        scenes_seen.append(scene)
        present = [q.referent for q in referring_queries(scene, "train", seed=rng.randrange(1 << 30), per_kind=1)]
        absent = [q.referent for q in absent_queries(scene, "train", seed=rng.randrange(1 << 30), per_kind=2)]
        for referent, holds in [(r, 1.0) for r in present] + [(r, 0.0) for r in absent]:
            which.append(len(pictures) - 1)
            refs.append(referent.indices())
            held.append(holds)
            batch_pictures.append(picture)
            batch_refs.append(referent)
        if len(batch_refs) >= 256:
            flush()
    flush()
    maps = torch.cat(maps)
    if not with_labels:
        return torch.stack(pictures), torch.tensor(which), maps, torch.tensor(refs), torch.tensor(held)
    marked = [_what_is_marked(scenes_seen[k], maps[i].float()) for i, k in enumerate(which)]
    return torch.stack(pictures), torch.tensor(which), maps, torch.tensor(refs), torch.tensor(held), \
        torch.tensor(marked)


def _object_labels(scene, k: int) -> list[float]:
    """Object ``k``'s labels: colour index, shape index, four nearness-to-a-corner flags."""
    ys, xs = scene.masks[k].nonzero()
    size = scene.image.shape[0]
    cx, cy = xs.mean() / size, ys.mean() / size
    near = [float(abs(cx - x) + abs(cy - y) < NEAR_CORNER) for x, y in CORNERS.values()]
    obj = scene.objects[k]
    return [COLOURS.index(obj.color), SHAPES.index(obj.shape), *near]


BACKGROUND = [-1, -1, 0.0, 0.0, 0.0, 0.0]


def _what_is_marked(scene, probabilities: torch.Tensor) -> list[float]:
    """The labels of the object holding most of a map's mass (at least half of it), else background's."""
    masks = torch.from_numpy(scene.masks).float()
    mass = float(probabilities.sum())
    overlap = (masks * probabilities).flatten(1).sum(1)
    k = int(overlap.argmax())
    return _object_labels(scene, k) if mass > 0 and float(overlap[k]) >= 0.5 * mass else BACKGROUND


def object_examples(split: str, scenes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                     torch.Tensor]:
    """Every object of scenes 0 … of ``split`` and one background patch per scene → (pictures [S, 3, 64, 64],
    each example's picture index [N], its mask [N, 64, 64] (bool), its labels [N, 6]: colour index,
    shape index (−1 for a background patch), four nearness-to-a-corner flags)."""
    rng = np.random.default_rng(seed)
    pictures, which, masks, labels = [], [], [], []
    for index in range(scenes):
        scene = scene_at(split, index)
        pictures.append(scene_picture(scene))
        size = scene.image.shape[0]
        for k, mask in enumerate(scene.masks):
            which.append(len(pictures) - 1)
            masks.append(torch.from_numpy(mask))
            labels.append(_object_labels(scene, k))
        free = ~scene.masks.any(0)  # a patch of background: what a map marks where no object is
        h = int(rng.integers(6, 24))
        w = int(rng.integers(6, 24))
        y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        patch = np.zeros_like(free)
        patch[y : y + h, x : x + w] = True
        patch &= free
        if patch.sum() >= 20:
            which.append(len(pictures) - 1)
            masks.append(torch.from_numpy(patch))
            labels.append(BACKGROUND)
    return torch.stack(pictures), torch.tensor(which), torch.stack(masks), torch.tensor(labels)


def soften(masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Exact masks [B, H, W] → maps as the guide draws them: edges blurred, the whole dimmed (a weak mark
    peaks at a third), a halo of low probability around, and a little everywhere."""
    b = masks.shape[0]
    m = masks.float()[:, None]
    blur = torch.rand(b, 1, 1, 1, generator=generator) < 0.6
    m = torch.where(blur, F.avg_pool2d(m, 3, 1, 1), m)
    halo = F.max_pool2d(m, 5, 1, 2) * 0.25 * torch.rand(b, 1, 1, 1, generator=generator)
    dim = 0.3 + 0.7 * torch.rand(b, 1, 1, 1, generator=generator)
    floor = 0.05 * torch.rand(b, 1, 1, 1, generator=generator)
    return torch.maximum(m * dim, halo).clamp_min(floor)[:, 0]


def _loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of colour and shape and binary cross-entropy of each corner's nearness (objects
    only), and binary cross-entropy of objectness."""
    colour, shape, corner, thing = logits.split([len(COLOURS), len(SHAPES), len(CORNERS), 1], dim=1)
    is_object = label[:, 1] >= 0
    loss = F.binary_cross_entropy_with_logits(thing[:, 0], is_object.float())
    if is_object.any():
        loss = loss + F.cross_entropy(colour[is_object], label[is_object, 0].long()) \
            + F.cross_entropy(shape[is_object], label[is_object, 1].long()) \
            + F.binary_cross_entropy_with_logits(corner[is_object], label[is_object, 2:])
    return loss


def train_presence(cfg: PresenceTrain | None = None, mark=None, on_log=None) -> PresenceCheck:
    """The presence check on training scenes: their objects' masks (softened) and background patches, and,
    with ``mark`` (the guide's image network, frozen), the guide's own maps of ``guide_scenes`` scenes'
    present and absent referents (half of each batch), each labelled by what it marks, and the
    agreement itself taught to tell the present from the absent."""
    cfg = settings_from(PresenceTrain, (cfg or PresenceTrain()).model_dump(), "presence settings")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    pictures, which, masks, labels = object_examples("train", cfg.scenes, cfg.seed)
    marked = None
    if mark is not None and cfg.guide_scenes:
        marked = presence_examples(mark, "train", cfg.guide_scenes, cfg.seed, start=cfg.scenes, with_labels=True)
    check = PresenceCheck()
    trainer = Trainer(check.parameters(), cfg, rng, None, optimisation=Optimisation("cosine", weight_decay=1e-2),
                      shared_batches=False, channel_generators=False)
    check.train()
    started = time.time()
    for step in range(1, cfg.steps + 1):
        own = cfg.batch_size if marked is None else cfg.batch_size // 2
        rows = torch.tensor([rng.randrange(len(which)) for _ in range(own)])
        images, maps, label = pictures[which[rows]], soften(masks[rows], generator), labels[rows]
        if marked is None:
            loss = _loss(check(images, maps), label)
        else:
            g_pictures, g_which, g_maps, g_refs, g_held, g_labels = marked
            rows = torch.tensor([rng.randrange(len(g_which)) for _ in range(cfg.batch_size - own)])
            logits = check(torch.cat([images, g_pictures[g_which[rows]]]), torch.cat([maps, g_maps[rows].float()]))
            loss = _loss(logits, torch.cat([label, g_labels[rows]]))
            # and the decision itself on the guide's maps: present referents agree, absent ones do not
            agree = check.agreement(logits[own:], g_refs[rows]).clamp(1e-6, 1 - 1e-6)
            loss = loss + F.binary_cross_entropy(agree, g_held[rows])
        trainer.step(loss)
        if on_log and (step % 50 == 0 or step == cfg.steps):
            on_log(step, float(loss.detach()), time.time() - started)
    check.eval()
    return check


@torch.no_grad()
def presence(check: PresenceCheck, images: torch.Tensor, probabilities: torch.Tensor,
             referents: list[Referent]) -> torch.Tensor:
    """The probability that what each map marks is its referent [B]."""
    return check.agreement(check(images, probabilities), torch.tensor([r.indices() for r in referents]))


@torch.no_grad()
def what_is_marked(logits: torch.Tensor) -> list[str]:
    """The check's logits [B, 16] → what each map marks, in words ("a red triangle", "no object")."""
    colour, shape, _, thing = logits.split([len(COLOURS), len(SHAPES), len(CORNERS), 1], dim=1)
    return [f"a {COLOURS[int(c)]} {SHAPES[int(s)]}" if float(t) > 0 else "no object"
            for c, s, t in zip(colour.argmax(1), shape.argmax(1), thing[:, 0])]
