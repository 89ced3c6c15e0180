"""Decoding received symbols with the generative decoder: fast, quality or auto.

- ``fast``: the VAE (:mod:`.autoencoder`): the posterior mean → AutoencoderKL's decoder.
- ``quality``: the fast posterior refined by the conditional diffusion model (:mod:`.denoiser`) for
  ``steps`` DDIM steps (of which the SNR sets how many run: :func:`.denoiser.strength_for`).
- ``auto``: the device's choice under a time budget. Quality helps most where the channel is worst:
  at or above ``snr_least_db`` (15 dB) the fast estimate is kept; below, as many steps run as the
  budget leaves room for after the posterior and the final pixel decode, timed on this machine
  (a warm-up at load time times one UNet step and one pixel decode), and a deadline stops the loop
  if steps run slower than timed.

``codec`` (part 1's convolutional decoder) stays the default of ``semcom decode``; these are the
generative receiver. What was chosen is returned as a :class:`Choice` and travels with the output.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.models.embedding import embed_sentences
from semcom_cli.reconstruct.generative.autoencoder import LATENT_SIZE
from semcom_cli.reconstruct.generative.data import roi_cells
from semcom_cli.reconstruct.generative.denoiser import QUERY_DIM, anchor_for, refine, strength_for
from semcom_cli.reconstruct.generative.store import has, load_denoiser, load_fast

__all__ = ["DECODERS", "GENERATIVE", "Choice", "GenerativeDecoder", "check_decoder", "check_steps",
           "check_budget_ms", "plan_auto_steps", "embed_queries", "budget_warning"]

# the image decoders of a reconstruct packet, by name → what each does
DECODERS: Registry[str] = Registry("decoder")
DECODERS.register("codec", "the dual-path codec's own decoder")
DECODERS.register("fast", "the SNR-conditioned VAE: one pass")
DECODERS.register("quality", "conditional latent diffusion, --steps steps")
DECODERS.register("auto", "fast or quality, whichever fits --budget-ms")
GENERATIVE = tuple(name for name in DECODERS if name != "codec")
MIN_AUTO_STEPS = 2     # fewer steps than this are not worth a refinement
MAX_STEPS = 1000


def check_decoder(name: str) -> str:
    return DECODERS.check(name)


def check_steps(steps: int) -> int:
    if not 1 <= steps <= MAX_STEPS:
        raise SemcomError(f"--steps must be 1 to {MAX_STEPS} diffusion steps (got {steps})")
    return int(steps)


def check_budget_ms(budget_ms: float | None) -> float | None:
    if budget_ms is not None and not 0 < budget_ms <= 600_000:
        raise SemcomError(f"--budget-ms must be above 0 and at most 600000 (got {budget_ms:g})")
    return budget_ms


@dataclass
class Choice:
    """What a decode did: recorded in the output's metadata (timings only in the JSON result)."""

    requested: str
    used: str
    steps: int            # the schedule's steps (0: no refinement)
    steps_run: int
    strength: float       # the share of the schedule re-drawn
    seed: int
    budget_ms: float | None = None
    elapsed_ms: float | None = None
    stopped_early: bool = False

    def metadata(self) -> dict:
        """What is the same for the same inputs and seed (no timings): fit for the image file."""
        return {k: v for k, v in asdict(self).items() if k not in ("elapsed_ms", "stopped_early")}


def budget_warning(decoder: dict) -> str | None:
    """One line when a decode with a ``--budget-ms`` took longer than it (``decoder``: the result's record of
    what was done, a :class:`Choice` as a dict); None when it kept to it or had none."""
    budget, elapsed = decoder.get("budget_ms"), decoder.get("elapsed_ms")
    if budget is None or elapsed is None or elapsed <= budget:
        return None
    steps = f"{decoder.get('steps_run', 0)} diffusion steps" if decoder.get("steps_run") else "no diffusion step"
    return (f"the decode took {elapsed:.0f} ms, over its --budget-ms of {budget:g} ms ({decoder.get('used')} "
            f"decoder, {steps}; the fixed work of the posterior and the pixel decode alone can exceed a small budget)")


def plan_auto_steps(snr_db: float, room_s: float, step_s: float, requested: int, settings) -> int:
    """The schedule's steps for ``auto``: 0 (keep the fast estimate) at a good SNR or when fewer than
    :data:`MIN_AUTO_STEPS` fit in ``room_s``; else the requested schedule, shortened so that the steps
    that run (its share ``strength``) fit."""
    if snr_db >= settings.snr_least_db:
        return 0
    strength = strength_for(snr_db, settings)
    fit = int(room_s / max(step_s, 1e-6))
    run = min(max(1, round(requested * strength)), fit)
    if run < MIN_AUTO_STEPS:
        return 0
    return max(run, round(run / strength))


def embed_queries(queries: list[str | None]) -> torch.Tensor:
    """The MiniLM sentence embedding of each query [B, 384]; zeros where there is none."""
    out = torch.zeros(len(queries), QUERY_DIM)
    texts = [(i, q) for i, q in enumerate(queries) if q]
    if texts:

        out[[i for i, _ in texts]] = embed_sentences([q for _, q in texts])
    return out


class GenerativeDecoder:
    """The VAE (always) and the diffusion model (loaded on first need) of a reconstruct checkpoint."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = Path(folder), manifest
        self.fast = load_fast(folder, manifest)
        self._denoiser = None
        self._timing: dict[int, tuple[float, float]] = {}

    @property
    def has_diffusion(self) -> bool:
        return has(self.folder, self.manifest, "image-diffusion")

    @property
    def denoiser(self):
        if self._denoiser is None:
            self._denoiser = load_denoiser(self.folder, self.manifest, self.fast.settings.latent_channels)
        return self._denoiser

    @torch.no_grad()
    def timing(self, batch: int, guided: bool = True) -> tuple[float, float]:
        """(seconds per step, seconds per pixel decode) at this batch size, timed once (warm-up); a step
        with the query's guidance is two UNet passes."""
        key = (batch, guided)
        if key not in self._timing:
            unet, _, settings = self.denoiser
            c = settings.latent_channels
            z = torch.zeros(batch, c, LATENT_SIZE, LATENT_SIZE)
            rows = 2 * batch if guided and settings.query_guidance != 1.0 else batch
            x = torch.zeros(rows, 3 * c + 1, LATENT_SIZE, LATENT_SIZE)
            states, classes = torch.zeros(rows, 1, QUERY_DIM), torch.zeros(rows, 16)
            times = []
            for _ in range(2):  # the first call pays one-time costs
                began = time.perf_counter()
                unet(x, 500, encoder_hidden_states=states, class_labels=classes)
                step = time.perf_counter() - began
                began = time.perf_counter()
                self.fast.pixels(z)
                times.append((step, time.perf_counter() - began))
            self._timing[key] = times[-1]
        return self._timing[key]

    @torch.no_grad()
    def decode(self, hi, light, uses, roi, snr_db: torch.Tensor, queries: torch.Tensor, decoder: str = "fast",
               steps: int = 20, seed: int = 0, budget_ms: float | None = None, began: float | None = None
               ) -> tuple[torch.Tensor, Choice]:
        """Received symbols in their patches (as part 1's decoder reads them), the effective SNR per
        image [B] and query embeddings [B, 384] → images [B, 3, 64, 64] and what was done. ``began``:
        when the budget's clock started (a ``time.perf_counter()`` value; default: now)."""
        if decoder not in GENERATIVE:
            raise SemcomError(f"the generative decoder runs fast, quality or auto (got {decoder!r})")
        steps = check_steps(steps)
        budget_ms = check_budget_ms(budget_ms)
        if decoder == "auto" and budget_ms is None:
            raise SemcomError("--decoder auto needs a compute budget (--budget-ms)")
        if decoder in ("quality", "auto") and not self.has_diffusion:
            self.denoiser  # raises the one-line reason
        guided = bool(queries.abs().sum() > 0)  # without a query the guidance would change nothing
        if decoder == "auto":
            step_s, pixels_s = self.timing(hi.shape[0], guided)  # load-time work: before the clock starts
        began = time.perf_counter() if began is None else began
        mean, logvar = self.fast(hi, light, uses, roi, snr_db)
        snr = float(snr_db.mean())
        latent, run, strength, planned, early = mean, 0, 0.0, 0, False
        if decoder == "quality":
            planned = steps
        elif decoder == "auto":
            room = budget_ms / 1000 - (time.perf_counter() - began) - 1.2 * pixels_s
            planned = plan_auto_steps(snr, room, step_s, steps, self.denoiser[2])
        if planned:
            unet, scheduler, settings = self.denoiser
            deadline = None
            if decoder == "auto":
                deadline = began + budget_ms / 1000 - 1.2 * pixels_s
            result = refine(unet, scheduler, mean, logvar, roi_cells(roi, LATENT_SIZE), snr_db, queries, planned,
                            seed, strength_for(snr, settings), deadline, step_reserve_s=step_s if deadline else 0.0,
                            anchor=anchor_for(snr, settings),
                            guidance=settings.query_guidance if guided else 1.0)
            latent, run, strength, early = result.latent, result.steps_run, result.strength, result.stopped_early
        images = self.fast.pixels(latent)
        elapsed = 1000 * (time.perf_counter() - began)
        used = "quality" if run else "fast"
        return images, Choice(decoder, used, planned, run, round(strength, 4), seed, budget_ms, round(elapsed, 2),
                              early)
