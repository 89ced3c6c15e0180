"""The benchmark harness: every (method, task, channel, SNR, channel uses) point on easy-vqa test data.

Methods, side by side on the same samples and the same channel draws:

- ``semantic``: the checkpoint's KAN-LLM-channel pipeline (its own channel uses).
- ``mlp``: the same pipeline from a second checkpoint (``mlp_model``), the
  MLP-projector ablation.
- ``noiseless``: the checkpoint with the semantic tokens handed to the LLM
  directly, no channel: the upper bound of the semantic pipeline.
- ``digital``: separate source and channel coding (:mod:`semcom_cli.digital`),
  then the same receiver model on the decoded image.
- ``capacity``: the best any separate scheme could do at that SNR and bandwidth.

Each image (or sentence) is one packet: encoded once, sent through the channel
once per point, and every question about it is answered from that one received
packet. The sample of questions depends on (task, limit, seed) only and the
channel is reseeded at the start of every point, so a point's result does not
depend on which other points ran, or in which process: that is what makes
resuming and sharding give the same report as one uninterrupted run.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from . import metrics
from .channel import check_channel, check_snr, seed_channel
from .data import EasyVQA
from .digital import capacity_bits, compress_image, decompress_image, link_for, send_payloads
from .distributed import Shard
from .errors import SemcomError
from .pipeline import SemcomModel, send
from .rephrase import rephrase
from .tasks import caption_text, get_task, normalize_answer, parse_caption

__all__ = ["METHODS", "REPHRASED", "Point", "Settings", "plan_points", "evaluate_point", "sample_items", "task_metrics",
           "answer_correct"]

METHODS = ("semantic", "mlp", "noiseless", "digital", "capacity")
# An evaluation-only task: vqa on the test questions reworded in phrasings training never uses.
REPHRASED = "vqa-rephrased"
ProgressHook = Callable[[int, int], None]


@dataclass(frozen=True)
class Point:
    """One measurement. ``snr_db`` is None for ``noiseless``; ``channel_uses`` None means the
    checkpoint's own count per packet (the semantic pipeline's, which the baselines then match)."""

    method: str
    task: str
    channel: str
    snr_db: float | None
    channel_uses: int | None

    @property
    def key(self) -> str:
        snr = "-" if self.snr_db is None else f"{self.snr_db:g}"
        uses = "matched" if self.channel_uses is None else str(self.channel_uses)
        return f"{self.method}|{self.task}|{self.channel}|{snr}|{uses}"


@dataclass(frozen=True)
class Settings:
    """What every point shares; recorded with the results."""

    limit: int | None = 200
    seed: int = 0
    batch_size: int = 64
    image_codec: str = "webp"
    mcs: str = "auto"


def plan_points(methods: list[str], tasks: list[str], channels: list[str], snrs: list[float],
                channel_uses: list[int | None]) -> list[Point]:
    """Every combination, in a fixed order. The semantic pipelines run at their own channel uses
    (once per SNR), noiseless once per task; the baselines at each requested channel-use budget."""
    for m in methods:
        if m not in METHODS:
            raise SemcomError(f"unknown method '{m}' (choose from: {', '.join(METHODS)})")
    tasks = [t if t == REPHRASED else get_task(t).name for t in tasks]
    channels = [check_channel(c) for c in channels]
    snrs = [check_snr(s) for s in snrs]
    for u in channel_uses:
        if u is not None and u <= 0:
            raise SemcomError(f"channel uses must be positive (got {u})")
    points = []
    for method in methods:
        for task in tasks:
            if method == "noiseless":
                points.append(Point(method, task, "none", None, None))
                continue
            for channel in channels:
                for snr in snrs:
                    budgets = [None] if method in ("semantic", "mlp") else channel_uses
                    points += [Point(method, task, channel, snr, u) for u in budgets]
    return list(dict.fromkeys(points))  # drop repeats, keep order


def sample_items(data: EasyVQA, task: str, limit: int | None, seed: int) -> list[tuple]:
    """A seeded sample of (packet key, instruction, reference) for a task."""
    if task == "vqa":
        items = [(data.image_ids[i], data.questions[i], data.answers[i]) for i in range(len(data.questions))]
    elif task == REPHRASED:
        items = [(data.image_ids[i], rephrase(data.questions[i], i), data.answers[i])
                 for i in range(len(data.questions))]
    elif task == "caption":
        items = [(i, None, caption_text(*c)) for i, c in sorted(data.captions.items())]
    else:
        items = [(s, None, s) for s in data.sentences]
    if limit is not None and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    return items


# what the receiver gets, per method ------------------------------------------------

@dataclass
class Received:
    """Per packet: semantic tokens for the LLM (None where nothing usable arrived), or, for text
    sent digitally, the sentence itself. ``uses``: channel uses per packet."""

    tokens: torch.Tensor | None
    mask: torch.Tensor | None
    available: list[bool]
    uses: list[float]
    texts: list[str] | None = None
    extra: dict | None = None


def _model_task(task: str) -> str:
    """The task the LLM is asked to do (its prompt's tag)."""
    return "vqa" if task == REPHRASED else task


def _modality(task: str) -> str:
    """What the transmitter sends for a task: "image" or "text"."""
    return get_task(_model_task(task)).modality


def _source_tokens(model: SemcomModel, data: EasyVQA, task: str, keys: list) -> tuple[torch.Tensor, torch.Tensor]:
    if _modality(task) == "text":
        return model.text_tokens(keys)
    return model.image_tokens(data.batch_images(keys))


def _semantic(model: SemcomModel, data: EasyVQA, task: str, keys: list, point: Point) -> Received:
    tokens, mask = _source_tokens(model, data, task, keys)
    uses = (mask.sum(1) * model.symbols_per_token).float().tolist()
    if point.method == "noiseless":
        return Received(tokens * mask[..., None], mask, [True] * len(keys), uses)
    symbols = model.encode(tokens, mask)
    y, h = send(symbols, point.snr_db, point.channel, model.preset.channel.rician_k)
    return Received(model.receive(y, h, point.snr_db, mask), mask, [True] * len(keys), uses)


def _budgets(model: SemcomModel, data: EasyVQA, task: str, keys: list, point: Point) -> list[int]:
    if point.channel_uses is not None:
        return [point.channel_uses] * len(keys)
    if _modality(task) == "image":
        return [model.preset.projector.n_tokens * model.symbols_per_token] * len(keys)
    _, mask = model.text_token_ids(keys)
    return (mask.sum(1) * model.symbols_per_token).tolist()


def _separate(model: SemcomModel, data: EasyVQA, task: str, keys: list, point: Point,
              settings: Settings) -> Received:
    """The digital baseline or the capacity bound: which packets arrive, and what they carry."""
    budgets = _budgets(model, data, task, keys, point)
    image = _modality(task) == "image"
    arrived: list[bytes | None] = [None] * len(keys)
    sent: list[bytes | None] = [None] * len(keys)
    extra: dict = {}
    if point.method == "digital":
        mcs_used = set()
        for budget in sorted(set(budgets)):  # one frame format per budget
            link = link_for(budget, point.snr_db, settings.mcs)
            mcs_used.add(link.mcs)
            rows = [i for i, b in enumerate(budgets) if b == budget]
            for i in rows:
                if image:
                    sent[i] = compress_image(data.images[keys[i]], link.payload_bytes, settings.image_codec)
                elif len(keys[i].encode()) <= link.payload_bytes:
                    sent[i] = keys[i].encode()
            for i, got in zip(rows, send_payloads([sent[i] for i in rows], link, point.snr_db, point.channel,
                                                  model.preset.channel.rician_k)):
                arrived[i] = got
        extra["mcs"] = sorted(mcs_used)
    else:
        bits = capacity_bits(1, point.snr_db, point.channel, len(keys), model.preset.channel.rician_k)
        for i, key in enumerate(keys):
            fit_bytes = int(bits[i] * budgets[i] // 8) if torch.isfinite(bits[i]) else 1 << 30
            sent[i] = (compress_image(data.images[key], fit_bytes, settings.image_codec) if image
                       else (key.encode() if len(key.encode()) <= fit_bytes else None))
            arrived[i] = sent[i]
    extra["fits"] = metrics.proportion([float(s is not None) for s in sent])
    uses = [float(b) for b in budgets]
    if not image:
        extra["delivered"] = metrics.proportion([float(a is not None) for a in arrived])
        return Received(None, None, [a is not None for a in arrived], uses,
                        texts=[a.decode(errors="replace") if a else "" for a in arrived], extra=extra)
    images = [decompress_image(a) if a is not None else None for a in arrived]
    available = [im is not None for im in images]
    extra["delivered"] = metrics.proportion([float(a) for a in available])
    got = [i for i, im in enumerate(images) if im is not None]
    if got:
        decoded = torch.stack([images[i] for i in got])
        original = data.batch_images([keys[i] for i in got])
        extra.update(metrics.image_quality(decoded, original))
    tokens = mask = None
    if got:
        with torch.no_grad():
            t, m = model.image_tokens(torch.stack([images[i] if images[i] is not None else images[got[0]]
                                                   for i in range(len(keys))]))
        tokens, mask = t * m[..., None], m
    return Received(tokens, mask, available, uses, extra=extra)


# scoring ------------------------------------------------------------------------

def answer_correct(task: str, prediction: str, reference: str) -> float:
    """1.0 when right: colour and shape for captions, exact match (normalised) otherwise."""
    if task == "caption":
        return float(parse_caption(prediction) == parse_caption(reference))
    return float(normalize_answer(prediction) == normalize_answer(reference))


def task_metrics(task: str, predictions: list[str], references: list[str], seed: int = 0) -> dict[str, dict]:
    """The task's metrics: accuracy (VQA; colour and shape for captions), and for text exact match,
    sacrebleu BLEU and MiniLM sentence similarity."""
    right = metrics.proportion([answer_correct(task, p, r) for p, r in zip(predictions, references)])
    if task == "caption":
        return {"accuracy": right}
    exact = right
    if _model_task(task) == "vqa":
        return {"accuracy": exact}
    return {"exact_match": exact, "bleu": metrics.corpus_bleu(predictions, references, seed=seed),
            "similarity": metrics.sentence_similarity(predictions, references)}


@torch.no_grad()
def evaluate_point(model: SemcomModel, data: EasyVQA, point: Point, settings: Settings,
                   mlp_model: SemcomModel | None = None, shard: Shard | None = None,
                   on_progress: ProgressHook | None = None) -> dict:
    """Measure one point. Under a shard each process answers its share of the LLM batches and the
    predictions are merged, so every process returns the record a single process would."""
    shard = shard or Shard.single()
    if point.method == "mlp":
        if mlp_model is None:
            raise SemcomError("method 'mlp' needs the MLP-projector checkpoint (--mlp-checkpoint)")
        model = mlp_model
    items = sample_items(data, point.task, settings.limit, settings.seed)
    keys = sorted({k for k, _, _ in items}, key=str)
    index = {k: i for i, k in enumerate(keys)}
    seed_channel(settings.seed)  # every point sees the same channel draws: paired comparisons
    if point.method in ("digital", "capacity"):
        received = _separate(model, data, point.task, keys, point, settings)
    else:
        received = _semantic(model, data, point.task, keys, point)

    predictions: list[str | None] = [None] * len(items)
    batches = list(range(0, len(items), settings.batch_size))
    mine = shard.take(list(range(len(batches))))
    done = 0
    for b in mine:
        chunk = list(range(batches[b], min(batches[b] + settings.batch_size, len(items))))
        rows = [index[items[i][0]] for i in chunk]
        if received.texts is not None:  # text sent digitally: the sentence is the answer
            answers = [received.texts[r] for r in rows]
        else:
            answers = [""] * len(chunk)
            ok = [j for j, r in enumerate(rows) if received.available[r]]
            if ok:
                sel = torch.tensor([rows[j] for j in ok])
                got = model.answer([_model_task(point.task)] * len(ok), [items[chunk[j]][1] for j in ok],
                                   received.tokens[sel], received.mask[sel])
                for j, a in zip(ok, got):
                    answers[j] = a
        for i, a in zip(chunk, answers):
            predictions[i] = a
        done += len(chunk)
        if on_progress:
            on_progress(done, sum(min(settings.batch_size, len(items) - batches[b]) for b in mine))
    predictions = shard.merge(predictions)

    references = [r for _, _, r in items]
    record = asdict(point)
    record.update({
        "channel_uses_mean": sum(received.uses[index[k]] for k, _, _ in items) / len(items),
        "metrics": task_metrics(point.task, predictions, references, seed=settings.seed),
        "examples": [{"instruction": q, "prediction": p, "reference": r}
                     for (_, q, r), p in list(zip(items, predictions))[:3]],
        "seed": settings.seed,
    })
    if point.method == "mlp":
        record["checkpoint_hash"] = model.hash
    if received.extra:
        record["link"] = received.extra
    return record
