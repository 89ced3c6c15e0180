"""One measurement point: a (method, task, channel, SNR, channel uses) on easy-vqa test data.

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

from semcom_cli.channel import check_channel, check_snr, seed_channel
from semcom_cli.core.distributed import Shard
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.evaluation.methods import METHODS, MethodContext, Received
from semcom_cli.evaluation.metrics import METRICS
from semcom_cli.tasks import get_task

__all__ = ["Point", "Settings", "plan_points", "evaluate_point", "sample_items", "task_metrics"]

ProgressHook = Callable[[int, int], None]


@dataclass(frozen=True)
class Point:
    """One measurement. ``snr_db`` is None for ``noiseless``; ``channel_uses`` None means the
    checkpoint's own count per packet (the semantic pipeline's, which the baselines then match)."""

    method: str
    task: str
    channel: str
    snr_db: float | None
    channel_uses: int | str | None  # "auto": the rate table's choice (methods that take it)
    codec: str | None = None  # the digital baseline's image codec (None for every other method)

    @property
    def key(self) -> str:
        snr = "-" if self.snr_db is None else f"{self.snr_db:g}"
        uses = "matched" if self.channel_uses is None else str(self.channel_uses)
        method = self.method if self.codec is None else f"{self.method}/{self.codec}"
        return f"{method}|{self.task}|{self.channel}|{snr}|{uses}"


@dataclass(frozen=True)
class Settings:
    """What every point shares; recorded with the results."""

    limit: int | None = 200
    seed: int = 0
    batch_size: int = 64
    image_codecs: tuple[str, ...] = ("webp",)  # the digital baseline is measured with each
    mcs: str = "auto"
    target_accuracy: float = 0.95  # what the auto rate policy aims for

    @property
    def capacity_codec(self) -> str:
        """The codec whose source bits the capacity bound counts: the first listed."""
        return self.image_codecs[0]


def _check_method(name: str) -> str:
    return METHODS.check(name)


def plan_points(methods: list[str], tasks: list[str], channels: list[str], snrs: list[float],
                channel_uses: list[int | None], image_codecs: tuple[str, ...] = ("webp",)) -> list[Point]:
    """Every combination, in a fixed order. The semantic pipelines run at their own channel uses
    (once per SNR), noiseless once per task; the baselines at each requested channel-use budget, the
    digital baseline of an image task once per image codec."""
    methods = [_check_method(m) for m in methods]
    tasks = [get_task(t).name for t in tasks]
    channels = [check_channel(c) for c in channels]
    snrs = [check_snr(s) for s in snrs]
    for u in channel_uses:
        if u is not None and u != "auto" and u <= 0:
            raise SemcomError(f"channel uses must be positive (got {u})")
    points = []
    for method in methods:
        for task in tasks:
            if METHODS[method].noiseless:
                points.append(Point(method, task, "none", None, None))
                continue
            budgets = channel_uses if METHODS[method].budgets else [None]
            if not METHODS[method].auto:  # the rate table's choice means nothing to the baselines
                budgets = [u for u in budgets if u != "auto"]
            codecs = image_codecs if method == "digital" and get_task(task).modality == "image" else (None,)
            points += [Point(method, task, channel, snr, u, codec) for channel in channels for snr in snrs
                       for u in budgets for codec in codecs]
    return list(dict.fromkeys(points))  # drop repeats, keep order


def sample_items(data: EasyVQA, task: str, limit: int | None, seed: int) -> list[tuple]:
    """A seeded sample of (packet key, instruction, reference) for a task."""
    items = get_task(task).items(data)
    if limit is not None and limit < len(items):
        items = random.Random(seed).sample(items, limit)
    return items


def task_metrics(task: str, predictions: list[str], references: list[str], seed: int = 0) -> dict[str, dict]:
    """The task's metrics (``Task.metrics``), each with its 95 % interval."""
    t = get_task(task)
    right = [t.correct(p, r) for p, r in zip(predictions, references)]
    return {name: METRICS[name](right, predictions, references, seed) for name in t.metrics}


def _answers(model, task: str, items: list, rows: list[int], received: Received) -> list[str]:
    """The LLM's answers for one batch of items (``rows``: their packets); "" where nothing arrived."""
    if received.texts is not None:  # text sent digitally: the sentence is the answer
        return [received.texts[r] for r in rows]
    answers = [""] * len(items)
    ok = [j for j, r in enumerate(rows) if received.available[r]]
    if ok:
        sel = torch.tensor([rows[j] for j in ok], device=received.tokens.device)
        got = model.answer([get_task(task).tag] * len(ok), [items[j][1] for j in ok],
                           received.tokens[sel], received.mask[sel])
        for j, a in zip(ok, got):
            answers[j] = a
    return answers


@torch.no_grad()
def evaluate_point(models: dict, data: EasyVQA, point: Point, settings: Settings, shard: Shard | None = None,
                   on_progress: ProgressHook | None = None) -> dict:
    """Measure one point. ``models``: the named checkpoints (``main``, and ``mlp`` for the ablation).
    Under a shard each process answers its share of the LLM batches and the predictions are merged,
    so every process returns the record a single process would."""
    shard = shard or Shard.single()
    method = METHODS[_check_method(point.method)]
    if models.get(method.checkpoint) is None:
        raise SemcomError(f"method '{point.method}' needs the MLP-projector checkpoint (--mlp-checkpoint)")
    model = models[method.checkpoint]
    items = sample_items(data, point.task, settings.limit, settings.seed)

    def packet(item):  # which packet answers an item: its content, or (content, question)
        return (item[0], item[1]) if method.per_question else item[0]

    keys = sorted({packet(item) for item in items}, key=str)
    index = {k: i for i, k in enumerate(keys)}
    seed_channel(settings.seed)  # every point sees the same channel draws: paired comparisons
    received = method.receive(MethodContext(model, data, settings), point.task, keys, point)

    predictions: list[str | None] = [None] * len(items)
    batches = list(range(0, len(items), settings.batch_size))
    mine = shard.take(list(range(len(batches))))
    mine_total = sum(min(settings.batch_size, len(items) - batches[b]) for b in mine)
    done = 0
    for b in mine:
        chunk = list(range(batches[b], min(batches[b] + settings.batch_size, len(items))))
        answers = _answers(model, point.task, [items[i] for i in chunk], [index[packet(items[i])] for i in chunk],
                           received)
        for i, a in zip(chunk, answers):
            predictions[i] = a
        done += len(chunk)
        if on_progress:
            on_progress(done, mine_total)
    predictions = shard.merge(predictions)
    return _record(point, items, predictions, received, [index[packet(item)] for item in items], settings,
                   model if method.checkpoint != "main" else None)


def _record(point: Point, items: list, predictions: list[str], received: Received, rows: list[int],
            settings: Settings, other_model=None) -> dict:
    references = [r for _, _, r in items]
    record = asdict(point)
    record.update({
        "channel_uses_mean": sum(received.uses[r] for r in rows) / len(items),
        "metrics": task_metrics(point.task, predictions, references, seed=settings.seed),
        "examples": [{"instruction": q, "prediction": p, "reference": r}
                     for (_, q, r), p in list(zip(items, predictions))[:3]],
        "seed": settings.seed,
    })
    if other_model is not None:
        record["checkpoint_hash"] = other_model.hash
    if received.extra:
        record["link"] = received.extra
    return record
