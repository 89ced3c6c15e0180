"""Metrics with their uncertainty: each returns ``{"value", "n", "ci95": [low, high]}``.

Task scores come from well-kept libraries where one exists: BLEU from
sacrebleu, sentence similarity from the bundled all-MiniLM-L6-v2 (mean-pooled,
as sentence-transformers does), PSNR and SSIM from torchmetrics. Confidence
intervals: Wilson for proportions, the normal approximation for means, a
seeded bootstrap over sentences for corpus BLEU.
"""

from __future__ import annotations

import math
import random
from typing import Callable

import torch

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.models.embedding import embed_sentences

__all__ = ["proportion", "mean", "corpus_bleu", "sentence_similarity", "image_quality", "Z95", "METRICS"]

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def _summary(value: float, n: int, low: float, high: float) -> dict:
    return {"value": float(value), "n": int(n), "ci95": [float(low), float(high)]}


def proportion(successes: list[float]) -> dict:
    """A success rate with its Wilson score interval (well-behaved at 0% and 100%)."""
    n = len(successes)
    if n == 0:
        raise SemcomError("no samples to score")
    p = sum(successes) / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return _summary(p, n, max(0.0, centre - half), min(1.0, centre + half))


def mean(values: list[float]) -> dict:
    """A mean with its normal-approximation interval."""
    n = len(values)
    if n == 0:
        raise SemcomError("no samples to score")
    m = sum(values) / n
    if n == 1:
        return _summary(m, 1, m, m)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return _summary(m, n, m - half, m + half)


def corpus_bleu(predictions: list[str], references: list[str], seed: int = 0, resamples: int = 200) -> dict:
    """sacrebleu's corpus BLEU (0–100) with a seeded bootstrap interval over sentences."""
    import sacrebleu  # heavy: sacrebleu, BLEU only

    n = len(predictions)
    if n == 0:
        raise SemcomError("no samples to score")
    score = sacrebleu.corpus_bleu(predictions, [references]).score
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        draws.append(sacrebleu.corpus_bleu([predictions[i] for i in idx], [[references[i] for i in idx]]).score)
    draws.sort()
    return _summary(score, n, draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1])


def sentence_similarity(predictions: list[str], references: list[str]) -> dict:
    """Mean cosine similarity of MiniLM embeddings; an empty prediction (nothing delivered) scores 0."""
    if not predictions:
        raise SemcomError("no samples to score")
    sims = (embed_sentences(predictions) * embed_sentences(references)).sum(-1).tolist()
    sims = [0.0 if not p.strip() else s for p, s in zip(predictions, sims)]
    return mean(sims)


def image_quality(received: torch.Tensor, original: torch.Tensor) -> dict[str, dict]:
    """PSNR (dB) and SSIM per image, as means over the batch. Images in [0, 1], [B, 3, H, W]."""
    from torchmetrics.functional.image import (  # heavy: torchmetrics, image metrics only
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    psnr = peak_signal_noise_ratio(received, original, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(received, original, data_range=1.0, reduction="none")
    return {"psnr_db": mean(psnr.clamp_max(100.0).tolist()), "ssim": mean(ssim.tolist())}


# A task's metrics by name (``Task.metrics`` lists the ones it reports): each maps
# (right per item, predictions, references, seed) to a summary.
METRICS: Registry[Callable[[list[float], list[str], list[str], int], dict]] = Registry("metric")
METRICS.register("accuracy", lambda right, predictions, references, seed: proportion(right))
METRICS.register("exact_match", lambda right, predictions, references, seed: proportion(right))
METRICS.register("bleu", lambda right, predictions, references, seed: corpus_bleu(predictions, references, seed=seed))
METRICS.register("similarity",
                 lambda right, predictions, references, seed: sentence_similarity(predictions, references))
