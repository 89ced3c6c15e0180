"""Training the dual-path codec, top to bottom.

Each step draws training scenes (half on photographs) and, for each, a packet as the link would
make it: a budget of channel uses, an SNR, and either guidance (the ROI box around one of its
objects, a random ``roi_share``) or none (the uniform codec, every patch on the light path). The
allocation (:mod:`.allocation`) says how many symbols each patch sends; the encoder's symbols are cut
to that, scaled to power 1, sent through AWGN, and decoded. The loss is the mean squared error of
the whole image plus that inside the ROI, so the symbols the ROI is given are put to use there.
The true box is used here, not the guide's: the codec learns to code a region, the guide to find it.
"""

from __future__ import annotations

import random
import time
from typing import Annotated

import torch
from pydantic import Field

from semcom_cli.config.base import BatchSize, Every, LearningRate, Range, Seed, Share, StageSettings, Steps
from semcom_cli.io.patches import GRID, HI_SYMBOLS, MIN_BUDGET, allocate, box_of_mask
from semcom_cli.reconstruct.guidance.train import MAX_POOL, SCENE_BYTES, ScenePool
from semcom_cli.reconstruct.imaging.codec import DualPathEncoder, ImageDecoder, normalise_power, sent_mask
from semcom_cli.training.memory import MemoryNeed
from semcom_cli.training.trainer import Checkpointing, Optimisation, Trainer

__all__ = ["CodecTrain", "train_codec", "draw_packets", "awgn", "CODEC_OPTIMISATION"]

CODEC_OPTIMISATION = Optimisation("one-cycle", weight_decay=1e-5, warmup=0.05, clip=1.0)


Budget = Annotated[int, Field(ge=MIN_BUDGET, le=GRID * GRID * HI_SYMBOLS)]  # what check_budget accepts
Budgets = Annotated[tuple[Budget, ...], Field(min_length=1, max_length=16)]
SnrRange = Range(-30.0, 60.0)                  # dB: the channel's range the codec is trained over
RoiShareRange = Range(0.01, 0.99)              # the ROI's share of the data uses (check_roi_share: (0, 1))


class CodecTrain(StageSettings):
    steps: Steps = 4000
    batch_size: BatchSize = 16
    lr: LearningRate = 2e-3
    pool: int = Field(4000, ge=1, le=MAX_POOL)
    width: int = Field(32, ge=16, le=256, multiple_of=16)  # its stem's half-width has 8 norm groups
    seed: Seed = 0
    snr_range: SnrRange = (-2.0, 20.0)
    budgets: Budgets = (256, 512, 1024)
    roi_share_range: RoiShareRange = (0.3, 0.9)
    unguided: Share = 0.3          # share of packets without guidance
    log_every: Every = 100

    def memory(self) -> MemoryNeed:
        """The run's estimate (activations measured at widths 16 and 32: 0.17 MB per sample per unit of width)."""
        return MemoryNeed(int(1.8e6 * (self.width / 32) ** 2), 0.17e6 * self.width + 0.2e6, self.batch_size,
                          SCENE_BYTES * self.pool)


def draw_packets(pool: ScenePool, rows: list[int], cfg: CodecTrain, rng: random.Random):
    """Images [B, 3, 64, 64], ROI pixel masks [B, 64, 64], symbols per patch [B, 64], ROI flags [B, 64]."""
    images = torch.stack([pool.images[i] for i in rows]).float() / 255.0
    uses, roi, roi_pixels = [], [], []
    for i in rows:
        masks = pool.masks[i]
        box = box_of_mask(masks[rng.randrange(masks.shape[0])])
        guided = rng.random() >= cfg.unguided
        alloc = allocate(rng.choice(cfg.budgets), box, rng.uniform(*cfg.roi_share_range), guided)
        uses.append(alloc.uses)
        roi.append(alloc.roi)
        roi_pixels.append(box.pixels() if guided and box is not None else torch.zeros(64, 64, dtype=torch.bool))
    return images, torch.stack(roi_pixels), torch.stack(uses), torch.stack(roi)


def awgn(x: torch.Tensor, snr_db: torch.Tensor, sent: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Complex AWGN at ``snr_db`` (per row) on power-1 symbols, zero where nothing was sent; the noise
    is drawn on the CPU generator and moved to ``x``'s device."""
    std = (10 ** (-snr_db / 10) / 2).sqrt().view(-1, *[1] * (x.dim() - 1))  # N0/2 per real dimension
    return (x + std * torch.randn(x.shape, generator=generator).to(x.device)) * sent


def train_codec(cfg: CodecTrain, pool: ScenePool | None = None, on_log=None,
                checkpointing: Checkpointing | None = None) -> tuple[DualPathEncoder, ImageDecoder]:
    """Train the codec through the :class:`~semcom_cli.training.Trainer`; ``checkpointing`` keeps a partial
    run every so many steps and goes on from one. ``on_log(step, loss, seconds)`` every ``log_every`` steps."""
    torch.manual_seed(cfg.seed)
    pool = pool or ScenePool("train", cfg.pool, referents=False)
    encoder, decoder = DualPathEncoder(cfg.width), ImageDecoder(cfg.width)
    params = list(encoder.parameters()) + list(decoder.parameters())
    trainer = Trainer(params, cfg, None, None, checkpointing, CODEC_OPTIMISATION,
                      {"encoder": encoder, "decoder": decoder}, shared_batches=False, channel_generators=False)
    encoder.train()
    decoder.train()
    started = time.time()
    for step in range(trainer.start + 1, cfg.steps + 1):
        rng = random.Random(f"codec:{cfg.seed}:{step}")  # each step's draws from (seed, step): resumes exactly
        noise = torch.Generator().manual_seed(rng.randrange(1 << 62))
        rows = [rng.randrange(len(pool.images)) for _ in range(cfg.batch_size)]
        images, roi_pixels, uses, roi = draw_packets(pool, rows, cfg, rng)
        snr = torch.rand(len(rows), generator=noise) * (cfg.snr_range[1] - cfg.snr_range[0]) + cfg.snr_range[0]
        hi, light = normalise_power(*encoder(images, snr), uses, roi)
        sent_hi, sent_light = sent_mask(uses, roi)
        hi, light = awgn(hi, snr, sent_hi, noise), awgn(light, snr, sent_light, noise)
        out = decoder(hi, light, uses, roi, snr)
        error = (out - images).pow(2).mean(1)  # [B, 64, 64]
        inside = roi_pixels.float()
        loss = error.mean() + ((error * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1)).mean()
        trainer.step(loss)
        if on_log and (step % cfg.log_every == 0 or step == cfg.steps):
            on_log(step, trainer.losses[-1], time.time() - started)
    encoder.eval()
    decoder.eval()
    return encoder, decoder
