"""Evaluation on the easy-vqa test split: the whole pipeline at each SNR.

Each image (or sentence) is one packet: it is encoded once, sent through the
channel once per SNR, and every question about it is answered from that one
received packet. Sampling of questions and channel noise are seeded.
"""

from __future__ import annotations

import random
from typing import Callable

import torch

from .channel import check_channel, check_snr, seed_channel
from .data import EasyVQA
from .pipeline import SemcomModel, send
from .tasks import caption_text, get_task, normalize_answer, parse_caption

__all__ = ["evaluate", "sample_items"]

ProgressHook = Callable[[int, int], None]


def sample_items(data: EasyVQA, task: str, limit: int | None, seed: int) -> list[tuple]:
    """A seeded sample of (packet key, instruction, reference) for a task."""
    if task == "vqa":
        items = [(data.image_ids[i], data.questions[i], data.answers[i]) for i in range(len(data.questions))]
    elif task == "caption":
        items = [(i, None, caption_text(*c)) for i, c in sorted(data.captions.items())]
    else:
        items = [(s, None, s) for s in data.sentences]
    if limit is not None and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    return items


def _score(task: str, prediction: str, reference: str) -> float:
    if task == "caption":
        return float(parse_caption(prediction) == parse_caption(reference))
    return float(normalize_answer(prediction) == normalize_answer(reference))


@torch.no_grad()
def evaluate(
    model: SemcomModel,
    data: EasyVQA,
    task: str,
    snrs: list[float],
    channel: str = "awgn",
    limit: int | None = 200,
    seed: int = 0,
    batch_size: int = 64,
    on_progress: ProgressHook | None = None,
) -> list[dict]:
    """Accuracy (exact match; colour+shape match for captions) at each SNR.

    Returns one record per SNR: task, channel, snr_db, channel_uses per packet,
    metric, value, n, plus a few (prediction, reference) examples.
    """
    get_task(task)
    check_channel(channel)
    snrs = [check_snr(s) for s in snrs]
    items = sample_items(data, task, limit, seed)
    keys = sorted({k for k, _, _ in items}, key=str)
    index = {k: i for i, k in enumerate(keys)}
    if task == "text":
        tokens, mask = model.text_tokens(keys)
    else:
        tokens, mask = model.image_tokens(data.batch_images(keys))
    symbols = model.encode(tokens, mask)
    uses = mask.sum(1) * model.symbols_per_token
    records, total, done = [], len(snrs) * len(items), 0
    for snr in snrs:
        seed_channel(seed)
        y, h = send(symbols, snr, channel, model.preset.channel.rician_k)
        received = model.receive(y, h, snr, mask)
        scores, examples = [], []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            rows = torch.tensor([index[k] for k, _, _ in chunk])
            answers = model.answer([task] * len(chunk), [q for _, q, _ in chunk], received[rows], mask[rows])
            for (_, q, ref), pred in zip(chunk, answers):
                scores.append(_score(task, pred, ref))
                if len(examples) < 3:
                    examples.append({"instruction": q, "prediction": pred, "reference": ref})
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
        records.append({
            "task": task, "channel": channel, "snr_db": snr,
            "channel_uses": float(uses.float().mean()),
            "metric": "accuracy" if task != "text" else "exact_match",
            "value": sum(scores) / len(scores), "n": len(scores), "examples": examples,
        })
    return records
