"""Training material for the generative decoder: scenes with a referring query each, and packets.

A :class:`QueryScenePool` holds training-split scenes (drawn once, in parallel where cores allow:
a scene costs about 7 ms) with, per scene, a few unambiguous referring queries in the training
wordings and the object each refers to. :func:`draw_batch` turns rows of the pool into what the
receiver sees: the part-1 encoder's symbols for a random budget, ROI share and SNR, through AWGN,
with the ROI box of the referred object (or none: an unguided packet) and the query's embedding.
"""

from __future__ import annotations

import multiprocessing
import random
import signal
from dataclasses import dataclass

import numpy as np
import torch

from semcom_cli.core.processes import die_with_parent
from semcom_cli.data.scenes import referring_queries, scene_at
from semcom_cli.io.patches import GRID, PATCH, allocate, box_of_mask
from semcom_cli.reconstruct.imaging.codec import normalise_power, sent_mask
from semcom_cli.reconstruct.imaging.train import awgn

__all__ = ["QueryScenePool", "PacketBatch", "draw_batch", "roi_cells"]

QUERIES_PER_SCENE = 4


def _scene_with_queries(index: int):
    scene = scene_at("train", index)
    queries = referring_queries(scene, "train", seed=index)
    rng = random.Random(f"pool-queries:{index}")
    picked = rng.sample(queries, min(QUERIES_PER_SCENE, len(queries)))
    labels = ([(o.color, o.shape) for o in scene.objects], scene.background != "plain")
    return scene.image, scene.masks, [(q.text, q.target) for q in picked], labels


def _pool_worker() -> None:
    """A scene worker: Ctrl-C and SIGTERM are the parent's to handle (it ends the pool); it dies with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()


class QueryScenePool:
    """Scenes ``start`` … ``start+count-1`` of the training split, their object masks, up to
    :data:`QUERIES_PER_SCENE` (query text, object index) pairs each, and what each shows."""

    def __init__(self, count: int, start: int = 0, workers: int = 1):
        indices = range(start, start + count)
        if workers > 1:
            # leaving the block (done, an error, Ctrl-C, SIGTERM) terminates the workers at once; the result
            # is waited for in short timed waits, so a signal is acted on while the pool works
            with multiprocessing.Pool(workers, initializer=_pool_worker) as pool:
                pending = pool.map_async(_scene_with_queries, indices, chunksize=64)
                while True:
                    try:
                        made = pending.get(0.5)
                        break
                    except multiprocessing.TimeoutError:
                        continue
        else:
            made = [_scene_with_queries(i) for i in indices]
        self.images = torch.from_numpy(np.stack([m[0] for m in made])).permute(0, 3, 1, 2).contiguous()  # uint8
        self.masks = [torch.from_numpy(m[1]) for m in made]
        self.queries = [m[2] for m in made]
        self.labels = [m[3] for m in made]  # ([(colour, shape) per object], photographed background)

    def __len__(self) -> int:
        return self.images.shape[0]

    def texts(self) -> list[str]:
        return sorted({text for qs in self.queries for text, _ in qs})


@dataclass
class PacketBatch:
    images: torch.Tensor       # [B, 3, 64, 64] in [0, 1]
    hi: torch.Tensor           # received symbols, [B, HI, 2, 8, 8]
    light: torch.Tensor        # [B, LIGHT, 2, 8, 8]
    uses: torch.Tensor         # [B, 64]
    roi: torch.Tensor          # [B, 64] bool: the box the packet carried
    snr_db: torch.Tensor       # [B]
    roi_pixels: torch.Tensor   # [B, 64, 64] bool: the box's pixels (all False unguided)
    queries: torch.Tensor      # [B, D]: the query's embedding (zeros: no query)


def roi_cells(roi: torch.Tensor, size: int) -> torch.Tensor:
    """ROI patch flags [B, 64] → a [B, 1, size, size] float map at a network's resolution."""
    grid = roi.view(-1, 1, GRID, GRID).float()
    return torch.nn.functional.interpolate(grid, size=(size, size), mode="nearest")


@torch.no_grad()
def draw_batch(pool: QueryScenePool, encoder, embed: dict[str, torch.Tensor], cfg, rng: random.Random,
               device: str = "cpu") -> PacketBatch:
    """One training batch: ``cfg`` gives batch_size, budgets, roi_share_range, snr_range, unguided and
    no_query (the share of guided packets whose query the receiver is not told). ``embed`` maps a
    query text to its embedding."""
    noise = torch.Generator().manual_seed(rng.randrange(1 << 62))
    rows = [rng.randrange(len(pool)) for _ in range(cfg.batch_size)]
    images = pool.images[rows].float().div(255.0)
    dim = next(iter(embed.values())).shape[-1]
    uses, roi, pixels, queries = [], [], [], []
    for i in rows:
        text, target = pool.queries[i][rng.randrange(len(pool.queries[i]))]
        guided = rng.random() >= cfg.unguided
        box = box_of_mask(pool.masks[i][target])
        alloc = allocate(rng.choice(cfg.budgets), box, rng.uniform(*cfg.roi_share_range), guided)
        uses.append(alloc.uses)
        roi.append(alloc.roi)
        pixels.append(box.pixels() if guided and box is not None else torch.zeros(GRID * PATCH, GRID * PATCH,
                                                                                   dtype=torch.bool))
        told = guided and rng.random() >= cfg.no_query
        queries.append(embed[text] if told else torch.zeros(dim))
    uses, roi = torch.stack(uses), torch.stack(roi)
    snr = torch.rand(len(rows), generator=noise) * (cfg.snr_range[1] - cfg.snr_range[0]) + cfg.snr_range[0]
    images, uses_d, roi_d, snr_d = images.to(device), uses.to(device), roi.to(device), snr.to(device)
    hi, light = normalise_power(*encoder(images, snr_d), uses_d, roi_d)
    sent_hi, sent_light = sent_mask(uses_d, roi_d)
    hi, light = awgn(hi, snr_d, sent_hi, noise), awgn(light, snr_d, sent_light, noise)
    return PacketBatch(images, hi, light, uses_d, roi_d, snr_d, torch.stack(pixels).to(device),
                       torch.stack(queries).to(device))
