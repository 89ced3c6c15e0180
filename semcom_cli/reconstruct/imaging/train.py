"""Training the dual-path codec, top to bottom.

Each step draws a batch of training scenes on the training device (:class:`~semcom_cli.data.scenes.SceneBatcher`:
half on photographs, no per-scene Python) and, for each, a packet as the link would make it: a budget
of channel uses, an SNR, and either guidance (the ROI box around one of its objects, a random
``roi_share``, the side information's length the link picks at that SNR) or none (the uniform codec,
every patch on the light path). The allocation (:func:`~semcom_cli.io.patches.allocate_rows`, batched)
says how many symbols each patch sends; in a ``random_k`` share of packets every patch instead sends a
random number of its path's symbols, so that each path learns to put what matters most first and the
k-th symbol refines what the first k-1 said. The encoder's symbols are cut to that, scaled to power 1,
sent through AWGN, and decoded. The loss is the mean squared error of the whole image plus that inside
the ROI, so the symbols the ROI is given are put to use there. The true box is used here, not the
guide's: the codec learns to code a region, the guide to find it.

Every draw comes from a generator on the device seeded by (seed, step), so a run resumes exactly and
the CPU and a GPU run the same code (``semcom finetune --stage image-codec --device cuda``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field

from semcom_cli.config.base import BatchSize, Every, LearningRate, Range, Seed, Share, StageSettings, Steps
from semcom_cli.data.scenes.batched import SceneBatcher
from semcom_cli.io.patches import GRID, HI_SYMBOLS, IMAGE_SIZE, LIGHT_SYMBOLS, MIN_BUDGET, PATCH, allocate_rows
from semcom_cli.reconstruct.imaging.codec import DualPathEncoder, ImageDecoder, normalise_power, sent_mask
from semcom_cli.reconstruct.imaging.side import side_uses_rows
from semcom_cli.training.memory import MemoryNeed
from semcom_cli.training.trainer import Checkpointing, Optimisation, Trainer

__all__ = ["CodecTrain", "train_codec", "draw_packets", "PacketDraw", "awgn", "boxes_of_masks",
           "CODEC_OPTIMISATION"]

CODEC_OPTIMISATION = Optimisation("one-cycle", weight_decay=1e-5, warmup=0.05, clip=1.0)


Budget = Annotated[int, Field(ge=MIN_BUDGET, le=GRID * GRID * HI_SYMBOLS)]  # what check_budget accepts
Budgets = Annotated[tuple[Budget, ...], Field(min_length=1, max_length=16)]
SnrRange = Range(-30.0, 60.0)                  # dB: the channel's range the codec is trained over
RoiShareRange = Range(0.01, 0.99)              # the ROI's share of the data uses (check_roi_share: (0, 1))
CROP_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE       # one background crop held on the device (uint8)


class CodecTrain(StageSettings):
    steps: Steps = 4000
    batch_size: BatchSize = 16
    lr: LearningRate = 2e-3
    crops: int = Field(2048, ge=1, le=65_536)  # photograph crops held for the textured backgrounds
    textured: Share = 0.5          # share of scenes on a photograph (the rest on a plain pale background)
    width: int = Field(32, ge=16, le=256, multiple_of=16)  # its stem's half-width has 8 norm groups
    seed: Seed = 0
    snr_range: SnrRange = (-2.0, 20.0)
    budgets: Budgets = (256, 512, 1024)
    roi_share_range: RoiShareRange = (0.3, 0.9)
    unguided: Share = 0.3          # share of packets without guidance
    random_k: Share = 0.25         # share of packets whose patches each send a random number of symbols
    log_every: Every = 100

    def memory(self) -> MemoryNeed:
        """The run's estimate (activations measured at widths 16 and 32: 0.17 MB per sample per unit of width)."""
        return MemoryNeed(int(1.8e6 * (self.width / 32) ** 2), 0.17e6 * self.width + 0.2e6, self.batch_size,
                          CROP_BYTES * self.crops)


def boxes_of_masks(masks: torch.Tensor) -> torch.Tensor:
    """Pixel masks [B, 64, 64] (none empty) → the box of patches around each, [B, 4] as (x0, y0, x1, y1):
    :func:`~semcom_cli.io.patches.box_of_mask` for a batch."""
    covered = masks.reshape(-1, GRID, PATCH, GRID, PATCH).any(4).any(2)  # [B, rows, cols]
    rows, cols = covered.any(2), covered.any(1)
    index = torch.arange(GRID, device=masks.device)
    first = lambda m: torch.where(m, index, GRID).amin(1)  # noqa: E731 - first True along the patches
    last = lambda m: torch.where(m, index, -1).amax(1)  # noqa: E731
    return torch.stack([first(cols), first(rows), last(cols), last(rows)], 1)


@dataclass
class PacketDraw:
    """One training batch as tensors on the device."""

    images: torch.Tensor      # [B, 3, 64, 64] in [0, 1]
    roi_pixels: torch.Tensor  # [B, 64, 64] bool: the ROI's pixels (none without guidance)
    uses: torch.Tensor        # [B, 64] symbols per patch
    roi: torch.Tensor         # [B, 64] bool: patches on the high-fidelity path
    snr_db: torch.Tensor      # [B]


def _uniform(generator: torch.Generator, batch: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator, device=generator.device)


def draw_packets(batcher: SceneBatcher, cfg: CodecTrain, generator: torch.Generator) -> PacketDraw:
    """A batch of scenes and packets drawn from ``generator`` (on the batcher's device), no per-item Python."""
    b, device = cfg.batch_size, generator.device
    scenes = batcher.draw(b, generator)
    rows = torch.arange(b, device=device)
    pick = (torch.rand(b, generator=generator, device=device) * scenes.count).long()  # one of its objects
    boxes = boxes_of_masks(scenes.masks[rows, pick])
    guided = torch.rand(b, generator=generator, device=device) >= cfg.unguided
    budgets = torch.tensor(cfg.budgets, device=device)
    budget = budgets[torch.randint(len(cfg.budgets), (b,), generator=generator, device=device)]
    share = _uniform(generator, b, *cfg.roi_share_range).double()
    snr = _uniform(generator, b, *cfg.snr_range)
    uses, roi = allocate_rows(budget, boxes, share, guided, side_uses_rows(snr, budget))
    # a random_k share of packets: every patch a random number of its path's symbols (1 … the path's most)
    cap = torch.where(roi, HI_SYMBOLS, LIGHT_SYMBOLS)
    random_uses = 1 + (torch.rand(uses.shape, generator=generator, device=device) * cap).long()
    randomised = torch.rand(b, generator=generator, device=device) < cfg.random_k
    uses = torch.where(randomised[:, None], random_uses, uses)
    roi_pixels = roi.view(b, GRID, GRID).repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)
    return PacketDraw(scenes.images.float() / 255.0, roi_pixels, uses, roi, snr)


def awgn(x: torch.Tensor, snr_db: torch.Tensor, sent: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Complex AWGN at ``snr_db`` (per row) on power-1 symbols, zero where nothing was sent; the noise
    is drawn on the generator's device and moved to ``x``'s."""
    std = (10 ** (-snr_db / 10) / 2).sqrt().view(-1, *[1] * (x.dim() - 1))  # N0/2 per real dimension
    return (x + std * torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)) * sent


def _step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """Each step's draws from (seed, step), on the device: a resumed run draws what the whole run drew."""
    return torch.Generator(device).manual_seed(random.Random(f"codec:{seed}:{step}").randrange(1 << 62))


def train_codec(cfg: CodecTrain, on_log=None, checkpointing: Checkpointing | None = None,
                device: str | torch.device = "cpu") -> tuple[DualPathEncoder, ImageDecoder]:
    """Train the codec on ``device`` through the :class:`~semcom_cli.training.Trainer`; ``checkpointing``
    keeps a partial run every so many steps and goes on from one. ``on_log(step, loss, seconds)`` every
    ``log_every`` steps. The trained networks come back on the CPU."""
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    encoder, decoder = DualPathEncoder(cfg.width).to(device), ImageDecoder(cfg.width).to(device)
    batcher = SceneBatcher("train", IMAGE_SIZE, device, crops=cfg.crops, seed=cfg.seed, textured_share=cfg.textured)
    params = list(encoder.parameters()) + list(decoder.parameters())
    trainer = Trainer(params, cfg, None, None, checkpointing, CODEC_OPTIMISATION,
                      {"encoder": encoder, "decoder": decoder}, shared_batches=False, channel_generators=False)
    encoder.train()
    decoder.train()
    started = time.time()
    for step in range(trainer.start + 1, cfg.steps + 1):
        generator = _step_generator(cfg.seed, step, device)
        batch = draw_packets(batcher, cfg, generator)
        # bfloat16 on a GPU (its tensor cores); the CPU keeps float32, where bfloat16 is slower
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            hi, light = normalise_power(*encoder(batch.images, batch.snr_db), batch.uses, batch.roi)
            sent_hi, sent_light = sent_mask(batch.uses, batch.roi)
            hi, light = awgn(hi, batch.snr_db, sent_hi, generator), awgn(light, batch.snr_db, sent_light, generator)
            out = decoder(hi, light, batch.uses, batch.roi, batch.snr_db)
        error = (out.float() - batch.images).pow(2).mean(1)  # [B, 64, 64]
        inside = batch.roi_pixels.float()
        loss = error.mean() + ((error * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1)).mean()
        trainer.step(loss)
        if on_log and (step % cfg.log_every == 0 or step == cfg.steps):
            on_log(step, trainer.losses[-1], time.time() - started)
    return encoder.cpu().eval(), decoder.cpu().eval()
