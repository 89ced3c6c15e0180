"""Training the generative decoder, top to bottom: three stages, each its own loop.

1. ``image-vae`` (:func:`train_vae`): the scenes' AutoencoderKL (reconstruction + a small KL term)
   and, at the same time, the receiver's posterior network: from part 1's received symbols (its
   encoder frozen, random budgets, ROI shares, SNRs, guided or not) to the image's latent (squared
   error of the mean, Gaussian likelihood for the log-variance) and, through the decoder, to the
   pixels (squared error of the whole image plus that inside the ROI box). Afterwards the latents'
   scale is measured on the pool.
2. ``image-diffusion`` (:func:`train_diffusion`): the conditional UNet, with the VAE frozen: the
   image's scaled latent is noised to a random step, and the UNet predicts it back from the noisy
   latent and the context (posterior mean and log-variance), the ROI plane, the SNR and the query's
   embedding; ROI cells weigh double.
3. ``scene-features`` (:func:`train_features`): the classifier whose features the KID uses.

Each loop steps through the :class:`~semcom_cli.training.Trainer`; each step draws its batch from
generators seeded by (stage, seed, step), so a resumed run (``checkpointing``) goes on exactly.
"""

from __future__ import annotations

import random
import time
from typing import Annotated

import torch
from pydantic import Field, model_validator
from torch.nn import functional as F

from semcom_cli.config.base import BatchSize, Every, LearningRate, Range, Seed, Share, StageSettings, Steps, Weight
from semcom_cli.reconstruct.generative.autoencoder import LATENT_SIZE, AutoencoderSettings, FastDecoder
from semcom_cli.reconstruct.generative.data import QueryScenePool, draw_batch, roi_cells
from semcom_cli.reconstruct.generative.denoiser import DenoiserSettings, build_scheduler, build_unet, conditioning
from semcom_cli.reconstruct.generative.features import FeatureSettings, SceneClassifier, scene_labels
from semcom_cli.reconstruct.guidance.train import MAX_POOL, SCENE_BYTES
from semcom_cli.reconstruct.imaging.train import Budgets, RoiShareRange
from semcom_cli.training.memory import MemoryNeed
from semcom_cli.training.trainer import Checkpointing, Optimisation, Trainer

__all__ = ["PacketDraw", "VaeTrain", "DiffusionTrain", "FeatureTrain", "train_vae", "train_diffusion",
           "train_features", "measure_scale"]


POOL_SCENE_BYTES = SCENE_BYTES + 4 * 384  # a pool's scene and its query's embedding


class PacketDraw(StageSettings):
    steps: Steps = 3000
    batch_size: BatchSize = 16
    lr: LearningRate = 1e-3
    pool: int = Field(4000, ge=1, le=MAX_POOL)
    seed: Seed = 0
    budgets: Budgets = (256, 512, 1024)
    roi_share_range: RoiShareRange = (0.3, 0.9)
    snr_range: Range(-30.0, 60.0) = (-5.0, 20.0)
    unguided: Share = 0.3     # packets without guidance (no box, no query)
    no_query: Share = 0.1     # guided packets whose query the receiver is not told
    log_every: Every = 100


# AutoencoderKL's blocks: three (64 → 32 → 16 pixels: the 16×16 latent), each a multiple of its 8 norm groups
VaeChannels = Annotated[tuple[Annotated[int, Field(ge=8, le=512, multiple_of=8)], ...],
                        Field(min_length=3, max_length=3)]
# the UNet's two blocks, multiples of its 16 norm groups; the second attends with 32 heads
UnetChannels = Annotated[tuple[Annotated[int, Field(ge=16, le=1024, multiple_of=16)], ...],
                         Field(min_length=2, max_length=2)]


class VaeTrain(PacketDraw):
    kl_weight: Weight = 1e-6
    channels: VaeChannels = (16, 32, 64)
    latent_channels: int = Field(4, ge=1, le=64)
    receiver_width: int = Field(32, ge=4, le=512, multiple_of=4)  # its 2× width has 8 norm groups

    def autoencoder(self) -> AutoencoderSettings:
        return AutoencoderSettings(tuple(self.channels), self.latent_channels, self.receiver_width)

    def memory(self) -> MemoryNeed:
        """The run's estimate, with part 1's encoder (frozen) beside it (activations measured at the recipe's
        widths and at half of them: 0.85 MB per sample per unit of channels[0] + receiver_width / 2)."""
        scale = self.channels[0] + self.receiver_width / 2
        return MemoryNeed(int(1.8e6 * (scale / 32) ** 2), 0.85e6 * scale, self.batch_size,
                          POOL_SCENE_BYTES * self.pool + 8_000_000)


class DiffusionTrain(PacketDraw):
    steps: Steps = 3000
    lr: LearningRate = 5e-4
    channels: UnetChannels = (64, 128)
    train_timesteps: int = Field(1000, ge=2, le=10_000)

    @model_validator(mode="after")
    def _heads_divide(self) -> "DiffusionTrain":
        if self.channels[1] % 32:
            raise ValueError(f"channels[1] ({self.channels[1]}) must be a multiple of the 32 attention heads")
        return self

    def denoiser(self, latent_channels: int) -> DenoiserSettings:
        return DenoiserSettings(tuple(self.channels), latent_channels, self.train_timesteps)

    def memory(self) -> MemoryNeed:
        """The run's estimate, with the VAE and part 1's encoder (frozen) beside it (activations measured at
        the recipe's widths and at half of them: 66 kB per sample per unit of channels[0] + channels[1] / 2)."""
        scale = self.channels[0] + self.channels[1] / 2
        return MemoryNeed(int(4.3e6 * (scale / 128) ** 2), 0.066e6 * scale, self.batch_size,
                          POOL_SCENE_BYTES * self.pool + 16_000_000)


class FeatureTrain(StageSettings):
    steps: Steps = 600
    batch_size: BatchSize = 32
    lr: LearningRate = 2e-3
    pool: int = Field(4000, ge=1, le=MAX_POOL)
    seed: Seed = 0
    width: int = Field(32, ge=8, le=256, multiple_of=8)  # 8 norm groups
    log_every: Every = 100

    def memory(self) -> MemoryNeed:
        """The run's estimate (activations measured at widths 16 and 32: 0.11 MB per sample per unit of width)."""
        return MemoryNeed(int(0.62e6 * (self.width / 32) ** 2), 0.113e6 * self.width, self.batch_size,
                          POOL_SCENE_BYTES * self.pool)


def _trainer(params, cfg, checkpointing: Checkpointing | None, modules: dict) -> Trainer:
    # one-cycle, 5 % warm-up; short runs (tests) 30 %, so neither phase of the cycle is empty
    warm = 0.05 if cfg.steps >= 40 else 0.3
    return Trainer(params, cfg, None, None, checkpointing,
                   Optimisation("one-cycle", weight_decay=1e-5, warmup=warm, clip=1.0), modules,
                   shared_batches=False, channel_generators=False)


def _logged(on_log, step: int, cfg, trainer: Trainer, started: float) -> None:
    if on_log and (step % cfg.log_every == 0 or step == cfg.steps):
        on_log(step, trainer.losses[-1], time.time() - started)


def _inside(error: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Mean of ``error`` [B, H, W] over ``where`` per image, averaged (images without a region add 0)."""
    w = where.float()
    return ((error * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)).mean()


def train_vae(cfg: VaeTrain, pool: QueryScenePool, encoder, embed: dict, device: str = "cpu", on_log=None,
              checkpointing: Checkpointing | None = None, start_from: dict | None = None) -> FastDecoder:
    """Stage 1: the AutoencoderKL and the receiver's posterior network (``encoder``: part 1's, frozen).
    ``start_from``: the weights of an earlier run to go on from (a new schedule; not a resume)."""
    torch.manual_seed(cfg.seed)
    fast = FastDecoder(cfg.autoencoder())
    if start_from is not None:
        fast.load_state_dict({k: v.float() for k, v in start_from.items()})
        fast.scale.fill_(1.0)  # trained on unscaled latents; measured again at the end
    fast = fast.to(device)
    trainer = _trainer(list(fast.parameters()), cfg, checkpointing, {"fast": fast})
    encoder.eval().requires_grad_(False)
    fast.train()
    started = time.time()
    for step in range(trainer.start + 1, cfg.steps + 1):
        rng = random.Random(f"vae:{cfg.seed}:{step}")
        b = draw_batch(pool, encoder, embed, cfg, rng, device)
        noise = torch.Generator().manual_seed(rng.randrange(1 << 62))
        target = b.images * 2 - 1
        dist = fast.autoencoder.encode(target).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=noise).to(device)
        recon = fast.autoencoder.decode(z).sample
        loss_image_vae = F.mse_loss(recon, target) / 4 + cfg.kl_weight * dist.kl().mean()  # /4: in [0, 1] units
        mean, logvar = fast.posterior(b.hi, b.light, b.uses, b.roi, b.snr_db)
        latent = dist.mean.detach()
        loss_latent = F.mse_loss(mean, latent)
        loss_spread = 0.5 * (logvar + (mean.detach() - latent).pow(2) / logvar.exp()).mean()
        error = (fast.pixels(mean, clamp=False) - b.images).pow(2).mean(1)
        loss_pixels = error.mean() + _inside(error, b.roi_pixels)
        trainer.step(loss_image_vae + loss_latent + 0.1 * loss_spread + loss_pixels)
        _logged(on_log, step, cfg, trainer, started)
    fast.eval()
    fast.scale.fill_(measure_scale(fast, pool, device))
    return fast


@torch.no_grad()
def measure_scale(fast: FastDecoder, pool: QueryScenePool, device: str = "cpu", count: int = 1024) -> float:
    """One over the standard deviation of the image latents of the pool's first ``count`` scenes."""
    latents = [fast.autoencoder.encode(pool.images[i : i + 256].float().div(255).to(device) * 2 - 1).latent_dist.mean
               for i in range(0, min(count, len(pool)), 256)]
    return float(1.0 / torch.cat(latents).std().clamp_min(1e-6))


def train_diffusion(cfg: DiffusionTrain, pool: QueryScenePool, encoder, fast: FastDecoder, embed: dict,
                    device: str = "cpu", on_log=None, checkpointing: Checkpointing | None = None,
                    start_from: dict | None = None):
    """Stage 2: the conditional UNet (``encoder`` and ``fast`` frozen); ``start_from`` as in :func:`train_vae`."""
    torch.manual_seed(cfg.seed)
    settings = cfg.denoiser(fast.settings.latent_channels)
    unet, scheduler = build_unet(settings), build_scheduler(settings)
    if start_from is not None:
        unet.load_state_dict({k: v.float() for k, v in start_from.items()})
    unet = unet.to(device)
    alphas = scheduler.alphas_cumprod.to(device)
    trainer = _trainer(list(unet.parameters()), cfg, checkpointing, {"unet": unet})
    encoder.eval().requires_grad_(False)
    fast.eval().requires_grad_(False)
    unet.train()
    started = time.time()
    for step in range(trainer.start + 1, cfg.steps + 1):
        rng = random.Random(f"diffusion:{cfg.seed}:{step}")
        b = draw_batch(pool, encoder, embed, cfg, rng, device)
        noise_gen = torch.Generator().manual_seed(rng.randrange(1 << 62))
        with torch.no_grad():
            latent = fast.image_latent(b.images)
            mean, logvar = fast(b.hi, b.light, b.uses, b.roi, b.snr_db)
        t = torch.randint(0, settings.train_timesteps, (latent.shape[0],), generator=noise_gen).to(device)
        noise = torch.randn(latent.shape, generator=noise_gen).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latent + (1 - a).sqrt() * noise
        roi_plane = roi_cells(b.roi, LATENT_SIZE)
        extra, classes, states = conditioning(mean, logvar, roi_plane, b.snr_db, b.queries)
        predicted = unet(torch.cat([noisy, extra], 1), t, encoder_hidden_states=states, class_labels=classes).sample
        trainer.step(((predicted - latent).pow(2) * (1 + roi_plane)).mean())
        _logged(on_log, step, cfg, trainer, started)
    unet.eval()
    return unet, settings


def train_features(cfg: FeatureTrain, pool: QueryScenePool, device: str = "cpu", on_log=None,
                   checkpointing: Checkpointing | None = None) -> SceneClassifier:
    """Stage 3: the scene classifier behind the KID measure."""
    torch.manual_seed(cfg.seed)
    net = SceneClassifier(FeatureSettings(cfg.width)).to(device)
    trainer = _trainer(list(net.parameters()), cfg, checkpointing, {"net": net})
    labels = scene_labels([objs for objs, _ in pool.labels], [photo for _, photo in pool.labels])
    net.train()
    started = time.time()
    for step in range(trainer.start + 1, cfg.steps + 1):
        rng = random.Random(f"features:{cfg.seed}:{step}")
        rows = [rng.randrange(len(pool)) for _ in range(cfg.batch_size)]
        images = pool.images[rows].float().div(255).to(device)
        trainer.step(F.binary_cross_entropy_with_logits(net.logits(images), labels[rows].to(device)))
        _logged(on_log, step, cfg, trainer, started)
    net.eval()
    return net
