"""Decoding received symbols with the generative decoder: fast, quality or auto.

- ``fast``: the VAE (:mod:`.autoencoder`): the posterior mean → AutoencoderKL's decoder.
- ``quality``: the fast posterior refined by the conditional diffusion model (:mod:`.denoiser`) for
  ``steps`` DDIM steps (of which the SNR sets how many run: :func:`.denoiser.strength_for`).
- ``auto``: the device's choice under a time budget. At or above ``snr_least_db`` (12 dB) the fast
  estimate is kept (quality would redraw a tenth of a schedule); below the checkpoint's measured
  *quality limit* (:meth:`GenerativeDecoder.quality_limit`: where quality's VQA on the reconstruction
  falls under fast's) too, since quality would invent there; between them as many steps run as the
  budget leaves room for after the posterior and the final pixel decode, timed on this machine by the
  warm-up at load time, and a deadline stops the loop if steps run slower than timed. Where not even
  the fast decoder fits, part 1's decoder (``codec``) is used. ``Choice.reason`` says which case held.

Each decode reports its **confidence** in [0, 1] beside the raw measure behind it (``doubt``): for quality
with several samples (``semcom decode`` draws :data:`DOUBT_SAMPLES` in one batch, reporting the seed's
own), the samples' spread over the ROI; otherwise the fast posterior's standard deviation there.

``codec`` (part 1's convolutional decoder) stays the default of ``semcom decode``; these are the
generative receiver. What was chosen is returned as a :class:`Choice` and travels with the output.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.io.patches import GRID, HI_SYMBOLS, LIGHT_SYMBOLS
from semcom_cli.models.embedding import embed_sentences
from semcom_cli.reconstruct.generative.autoencoder import LATENT_SIZE
from semcom_cli.reconstruct.generative.data import roi_cells
from semcom_cli.reconstruct.generative.denoiser import QUERY_DIM, anchor_for, refine, roi_mean, strength_for
from semcom_cli.reconstruct.generative.store import has, load_denoiser, load_fast

__all__ = ["DECODERS", "GENERATIVE", "Choice", "GenerativeDecoder", "check_decoder", "check_steps",
           "check_budget_ms", "plan_auto_steps", "embed_queries", "budget_warning", "confidence_of", "Timing",
           "DOUBT_SAMPLES", "QUALITY_LIMIT_KEY", "zero_packet"]

# the image decoders of a reconstruct packet, by name → what each does
DECODERS: Registry[str] = Registry("decoder")
DECODERS.register("codec", "the dual-path codec's own decoder")
DECODERS.register("fast", "the SNR-conditioned VAE: one pass")
DECODERS.register("quality", "conditional latent diffusion, --steps steps")
DECODERS.register("auto", "fast or quality, whichever fits --budget-ms")
GENERATIVE = tuple(name for name in DECODERS if name != "codec")
MIN_AUTO_STEPS = 2     # fewer steps than this are not worth a refinement
MAX_STEPS = 1000
# semcom decode's quality draws this many samples in one batch (the seed's own reported); their spread over
# the ROI is its doubt: it told each scene's 0 dB packet from its 6 dB one with AUROC 0.99 (the posterior's
# standard deviation 0.83), each scene's −5 dB from its 20 dB one always (benchmarks/generative_limit.py,
# importance, 512 channel uses, n = 48 per SNR). A batch of 4 samples costs about 3× one sample's steps.
DOUBT_SAMPLES = 4
# confidence = exp(-max(0, doubt - floor) / scale) (confidence_of): the floor, a clean channel's doubt (20 dB);
# the scale puts the mean of 0 dB packets at 0.5 (same measurement: sample spread 0.41, posterior 0.53)
DOUBT_FLOORS = {"sample_spread": 0.0, "posterior_std": 0.32}
DOUBT_SCALES = {"sample_spread": 0.59, "posterior_std": 0.31}
# auto's work is planned with the warm-up's times × this (a busy machine runs slower than it was timed)
BUDGET_MARGIN = 1.2
# the manifest's record of the SNR below which auto keeps fast (metrics.<this>)
QUALITY_LIMIT_KEY = "auto_quality_limit"


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
    """What a decode did: recorded in the output's metadata (timings only in the JSON result). ``reason``:
    why this decoder was used (auto's choice; a fixed request says so). ``confidence`` in [0, 1] and the raw
    measure behind it (``doubt``, named by ``doubt_measure``): how sure the decoder is of the referred
    region; over a batch, their means (``per_image`` holds each image's, not serialised)."""

    requested: str
    used: str
    steps: int            # the schedule's steps (0: no refinement)
    steps_run: int
    strength: float       # the share of the schedule re-drawn
    seed: int
    budget_ms: float | None = None
    elapsed_ms: float | None = None
    stopped_early: bool = False
    reason: str = ""
    confidence: float | None = None
    doubt: float | None = None
    doubt_measure: str | None = None
    samples: int = 1      # the samples drawn at once (the reported image is the seed's own)
    per_image: dict = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "per_image"}

    def metadata(self) -> dict:
        """What is the same for the same inputs and seed (no timings): fit for the image file. The
        confidence is deterministic too, except where a deadline cut the sampling short."""
        drop = {"elapsed_ms", "stopped_early", "per_image"}
        return {k: v for k, v in asdict(self).items() if k not in drop}


def budget_warning(decoder: dict) -> str | None:
    """One line when a decode with a ``--budget-ms`` took longer than it (``decoder``: the result's record of
    what was done, a :class:`Choice` as a dict); None when it kept to it or had none."""
    budget, elapsed = decoder.get("budget_ms"), decoder.get("elapsed_ms")
    if budget is None or elapsed is None or elapsed <= budget:
        return None
    steps = f"{decoder.get('steps_run', 0)} diffusion steps" if decoder.get("steps_run") else "no diffusion step"
    return (f"the decode took {elapsed:.0f} ms, over its --budget-ms of {budget:g} ms ({decoder.get('used')} "
            f"decoder, {steps}; this machine ran slower than the warm-up timed it)")


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


def confidence_of(doubt: torch.Tensor, measure: str) -> torch.Tensor:
    """The raw doubt [B] → a confidence in [0, 1] (1: sure): exp(−max(0, doubt − floor) / scale), the floor
    and scale the measure's own (:data:`DOUBT_FLOORS`, :data:`DOUBT_SCALES`). ``sample_spread``: the
    standard deviation of quality's samples over the ROI's latent cells (0 where the ROI keeps the fast
    estimate, at a good SNR); ``posterior_std``: the fast posterior's there."""
    return torch.exp(-(doubt - DOUBT_FLOORS[measure]).clamp_min(0) / DOUBT_SCALES[measure])


def embed_queries(queries: list[str | None]) -> torch.Tensor:
    """The MiniLM sentence embedding of each query [B, 384]; zeros where there is none."""
    out = torch.zeros(len(queries), QUERY_DIM)
    texts = [(i, q) for i, q in enumerate(queries) if q]
    if texts:

        out[[i for i, _ in texts]] = embed_sentences([q for _, q in texts])
    return out


@dataclass
class Timing:
    """This machine's times at one batch size, taken by :meth:`GenerativeDecoder.warm_up` (seconds)."""

    posterior: float          # the fast decoder's posterior network
    pixels: float             # one pixel decode (the VAE's decoder)
    step: float | None        # one diffusion step at the samples drawn (None: no diffusion model)


class GenerativeDecoder:
    """The VAE (always) and the diffusion model (loaded on first need) of a reconstruct checkpoint."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder, self.manifest = Path(folder), manifest
        self.fast = load_fast(folder, manifest)
        self._denoiser = None
        self._timing: dict[tuple, Timing] = {}  # by (batch,) or (batch, guided, samples)

    @property
    def has_diffusion(self) -> bool:
        return has(self.folder, self.manifest, "image-diffusion")

    @property
    def denoiser(self):
        if self._denoiser is None:
            self._denoiser = load_denoiser(self.folder, self.manifest, self.fast.settings.latent_channels)
        return self._denoiser

    def quality_limit(self, method: str | None = None) -> tuple[float, str]:
        """(dB, where the figure comes from): the SNR below which ``auto`` keeps the fast decoder because
        quality's VQA on the reconstruction falls under fast's there. Measured per coding method and
        stored in the manifest's ``metrics.auto_quality_limit`` (``benchmarks/generative_limit.py``);
        absent, the diffusion model's ``anchor_from_db``: below it the sampler redraws the referred region
        with nothing of the received symbols kept, where it can repaint or invent the object."""
        record = (self.manifest.get("metrics") or {}).get(QUALITY_LIMIT_KEY)
        limits = record.get("snr_db") if isinstance(record, dict) else None
        if isinstance(limits, dict) and limits:
            values = {k: float(v) for k, v in limits.items() if isinstance(v, (int, float))}
            if values:
                if method in values:
                    return values[method], f"measured, {method} packets, n={record.get('n')}"
                return max(values.values()), "measured (the highest of the coding methods')"
        return float(self.denoiser[2].anchor_from_db), "default: no measurement in the checkpoint"

    @torch.no_grad()
    def warm_up(self, batch: int = 1, diffusion: bool = False, guided: bool = True,
                samples: int = DOUBT_SAMPLES) -> Timing:
        """Run each network once on zeros at this batch size (the first call pays one-time costs: kernel
        choice, lazy imports) and time a second run: load-time work, before any budget's clock starts.
        ``diffusion``: the UNet too, at ``samples`` samples per image (a step with the query's guidance
        is two UNet passes each)."""
        key = (batch, guided, samples) if diffusion else (batch,)
        if not diffusion:  # a warm-up with the diffusion model covers one without
            done = [t for k, t in self._timing.items() if k[0] == batch]
            if done:
                return done[0]
        if key not in self._timing:
            c = self.fast.settings.latent_channels
            z = torch.zeros(batch, c, LATENT_SIZE, LATENT_SIZE)
            step = None
            if diffusion:
                unet, scheduler, settings = self.denoiser
                cells = torch.zeros(batch, 1, LATENT_SIZE, LATENT_SIZE)
                refine(unet, scheduler, z, z, cells, torch.zeros(batch), torch.zeros(batch, QUERY_DIM), 1, 0, 1.0,
                       guidance=settings.query_guidance if guided else 1.0, samples=samples)  # its one-time costs
                rows = samples * batch * (2 if guided and settings.query_guidance != 1.0 else 1)
                x = torch.zeros(rows, 3 * c + 1, LATENT_SIZE, LATENT_SIZE)
                states, classes = torch.zeros(rows, 1, QUERY_DIM), torch.zeros(rows, 16)
                for _ in range(2):
                    began = time.perf_counter()
                    unet(x, 500, encoder_hidden_states=states, class_labels=classes)
                    step = time.perf_counter() - began
            for _ in range(2):
                began = time.perf_counter()
                self.fast(*zero_packet(batch), torch.zeros(batch))
                posterior = time.perf_counter() - began
                began = time.perf_counter()
                self.fast.pixels(z)
                pixels = time.perf_counter() - began
            self._timing[key] = Timing(posterior, pixels, step)
        return self._timing[key]

    def timing(self, batch: int, guided: bool = True, samples: int = DOUBT_SAMPLES) -> tuple[float, float]:
        """(seconds per diffusion step, seconds per pixel decode) at this batch size (:meth:`warm_up`)."""
        t = self.warm_up(batch, True, guided, samples)
        return t.step, t.pixels

    @torch.no_grad()
    def decode(self, hi, light, uses, roi, snr_db: torch.Tensor, queries: torch.Tensor, decoder: str = "fast",
               steps: int = 20, seed: int = 0, budget_ms: float | None = None, began: float | None = None,
               method: str | None = None, samples: int | None = None, cheapest=None) -> tuple[torch.Tensor, Choice]:
        """Received symbols in their patches (as part 1's decoder reads them), the effective SNR per
        image [B] and query embeddings [B, 384] → images [B, 3, 64, 64] and what was done. ``began``:
        when the budget's clock started (a ``time.perf_counter()`` value; default: now). ``method``: the
        packets' coding method (auto's quality limit is measured per method). ``samples``: the samples
        quality draws at once for its confidence (``semcom decode``: :data:`DOUBT_SAMPLES`; default 1:
        the image alone, its confidence from the posterior's spread, as an evaluation wants it).
        ``cheapest``: a decoder taking what part 1's decoder takes (part 1's own): what auto uses where
        even the fast decoder would overrun the budget."""
        if decoder not in GENERATIVE:
            raise SemcomError(f"the generative decoder runs fast, quality or auto (got {decoder!r})")
        steps = check_steps(steps)
        budget_ms = check_budget_ms(budget_ms)
        samples = 1 if samples is None else int(samples)
        if not 1 <= samples <= 16:
            raise SemcomError(f"samples must be 1 to 16 (got {samples})")
        if decoder == "auto" and budget_ms is None:
            raise SemcomError("--decoder auto needs a compute budget (--budget-ms)")
        if decoder in ("quality", "auto") and not self.has_diffusion:
            self.denoiser  # raises the one-line reason
        guided = bool(queries.abs().sum() > 0)  # without a query the guidance would change nothing
        batch = hi.shape[0]
        timing = self.warm_up(batch, decoder == "auto", guided, samples)  # load-time work: before the clock
        began = time.perf_counter() if began is None else began
        snr = float(snr_db.mean())
        reason = {"fast": "asked for", "quality": "asked for"}.get(decoder, "")
        if decoder == "auto" and cheapest is not None:
            fixed = timing.posterior + timing.pixels
            left = budget_ms / 1000 - (time.perf_counter() - began)
            if fixed * BUDGET_MARGIN > left:
                images = cheapest(hi, light, uses, roi, snr_db)
                elapsed = 1000 * (time.perf_counter() - began)
                return images, Choice(decoder, "codec", 0, 0, 0.0, seed, budget_ms, round(elapsed, 2), False,
                                      f"the fast decoder's {1000 * fixed:.0f} ms (timed at load) would not fit the "
                                      f"{1000 * max(left, 0):.0f} ms left of the budget: part 1's decoder instead")
        mean, logvar = self.fast(hi, light, uses, roi, snr_db)
        roi_plane = roi_cells(roi, LATENT_SIZE)
        latent, run, strength, planned, early, spread, spread_image = mean, 0, 0.0, 0, False, None, None
        if decoder == "quality":
            planned = steps
        elif decoder == "auto":
            settings = self.denoiser[2]
            limit, source = self.quality_limit(method)
            room = budget_ms / 1000 - (time.perf_counter() - began) - BUDGET_MARGIN * timing.pixels
            if snr >= settings.snr_least_db:
                reason = (f"{snr:.1f} dB is at or above {settings.snr_least_db:g} dB, where quality would redraw "
                          f"{100 * settings.least_strength:.0f} % of a schedule and look like fast")
            elif snr < limit:
                reason = (f"{snr:.1f} dB is below {limit:g} dB, where quality's VQA on the reconstruction falls "
                          f"under fast's ({source}): quality would invent")
            else:
                planned = plan_auto_steps(snr, room, timing.step, steps, settings)
                reason = (f"{snr:.1f} dB is between {limit:g} and {settings.snr_least_db:g} dB: quality, a "
                          f"{planned}-step schedule fits the budget" if planned else
                          f"the budget left room for fewer than {MIN_AUTO_STEPS} diffusion steps")
        if planned:
            unet, scheduler, settings = self.denoiser
            deadline = None
            if decoder == "auto":
                deadline = began + budget_ms / 1000 - BUDGET_MARGIN * timing.pixels
            result = refine(unet, scheduler, mean, logvar, roi_plane, snr_db, queries, planned,
                            seed, strength_for(snr, settings), deadline,
                            step_reserve_s=timing.step if deadline else 0.0, anchor=anchor_for(snr, settings),
                            guidance=settings.query_guidance if guided else 1.0, samples=samples)
            latent, run, strength, early = result.latent, result.steps_run, result.strength, result.stopped_early
            spread = result.spread if run else None
            spread_image = result.spread_image if run else None
        images = self.fast.pixels(latent)
        posterior_std = torch.exp(0.5 * logvar).mean(1)
        posterior = roi_mean(posterior_std, roi_plane)
        if spread is not None:
            measure, doubt = "sample_spread", spread
        else:
            measure, doubt = "posterior_std", posterior
        confidence = confidence_of(doubt, measure)
        elapsed = 1000 * (time.perf_counter() - began)
        used = "quality" if run else "fast"
        if decoder == "auto" and planned and not run:
            reason = "the budget ran out before the first diffusion step"
        choice = Choice(decoder, used, planned, run, round(strength, 4), seed, budget_ms, round(elapsed, 2), early,
                        reason, round(float(confidence.mean()), 4), round(float(doubt.mean()), 4), measure,
                        samples if run else 1,
                        per_image={"confidence": confidence, "posterior_std": posterior, "sample_spread": spread,
                                   "posterior_std_image": posterior_std.flatten(1).mean(1),
                                   "sample_spread_image": spread_image})
        return images, choice


def zero_packet(batch: int):
    """A batch of empty received packets (zeros in every patch, no ROI) as part 1's decoder reads them: what the
    warm-up runs."""
    cells = GRID * GRID
    return (torch.zeros(batch, HI_SYMBOLS, 2, GRID, GRID), torch.zeros(batch, LIGHT_SYMBOLS, 2, GRID, GRID),
            torch.zeros(batch, cells), torch.zeros(batch, cells, dtype=torch.bool))
