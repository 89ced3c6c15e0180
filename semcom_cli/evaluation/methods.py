"""Evaluation methods: what the receiver gets for a batch of packets, one registered function each.

- ``semantic``: the checkpoint's KAN-LLM-channel pipeline (its own channel uses).
- ``mlp``: the same pipeline on a second named checkpoint, the MLP-projector ablation.
- ``noiseless``: the semantic tokens handed to the LLM directly, no channel: the upper
  bound of the semantic pipeline.
- ``digital``: separate source and channel coding (:mod:`semcom_cli.channel.digital`),
  then the same receiver model on the decoded image.
- ``separation``: a digital system that knows the task (:mod:`semcom_cli.link.separation`): the
  caption the transmitter reads in the picture as 5 bits, or the sentence's token ids, with 5G LDPC
  and QAM at the same channel uses; the same LLM answers from the decoded caption.
- ``capacity``: the best any separate scheme could do at that SNR and bandwidth: the picture when
  its file fits the draw's capacity, else its caption when 5 bits do (the task-aware source).
- ``uniform``: the semantic pipeline at each requested budget, variable rate (tokens left out or
  repeated, :mod:`semcom_cli.link.rate`), every token alike: no question known.
- ``content``: the same with the budget shared out by each token's share in what the packet says
  (its importance to the caption): the question-free default of ``semcom encode``.
- ``importance``: the same with the budget shared out by each token's importance to the packet's
  question, known at the transmitter (one packet per question). ``auto`` as a budget: the
  checkpoint's rate table picks it from the SNR and ``Settings.target_accuracy``.

A method is registered with :func:`register_method`; ``budgets`` says whether it is
measured at each requested channel-use budget (the baselines) or at the checkpoint's
own count, ``checkpoint`` which named checkpoint it runs on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from semcom_cli.channel import make_channel
from semcom_cli.channel.digital import capacity_bits, link_for, send_payloads
from semcom_cli.channel.image_codecs import compress_image, decompress_image
from semcom_cli.core.registry import Registry
from semcom_cli.evaluation import metrics
from semcom_cli.link.rate.packets import budget_for, plan_copies, send_at_rate
from semcom_cli.link.separation import CAPTION_BITS, classify_captions, send_captions, send_sentences, token_bits
from semcom_cli.tasks import get_task

__all__ = ["Method", "METHODS", "register_method", "Received", "MethodContext"]


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


@dataclass
class MethodContext:
    """What a method may use: the model it runs on, the data, and the run's settings."""

    model: object  # SemcomModel
    data: object   # EasyVQA
    settings: object  # points.Settings

    def channel(self, name: str):
        return make_channel(name, self.model.preset.channel.model_dump(), self.model.device)

    def inputs(self, task: str, keys: list):
        """What the transmitter encodes for these packet keys: images [B, 3, 64, 64] or sentences."""
        if get_task(task).modality == "text":
            return keys
        return self.data.batch_images(keys)


@dataclass(frozen=True)
class Method:
    name: str
    receive: Callable[[MethodContext, str, list, object], Received]  # (context, task, keys, point)
    budgets: bool = False      # measured at each requested channel-use budget
    noiseless: bool = False    # measured once per task, without a channel
    checkpoint: str = "main"   # which named checkpoint it runs on ("main" or "mlp")
    per_question: bool = False  # one packet per (content, question): the transmitter knows the question
    auto: bool = False         # takes the budget "auto" (the rate table's choice)


METHODS: Registry[Method] = Registry("method")


def register_method(method: Method) -> Method:
    return METHODS.register(method.name, method)


def _semantic(ctx: MethodContext, task: str, keys: list, point) -> Received:
    model = ctx.model
    modality = get_task(task).modality
    tokens, mask = model.source_tokens(modality, ctx.inputs(task, keys))
    uses = (mask.sum(1) * model.symbols_per_token).float().tolist()
    if point.method == "noiseless" or point.snr_db is None:
        return Received(tokens * mask[..., None], mask, [True] * len(keys), uses)
    y, h = ctx.channel(point.channel).send(model.encode(tokens, mask, modality), point.snr_db)
    return Received(model.receive(y, h, point.snr_db, mask, modality), mask, [True] * len(keys), uses)


def _budgets(ctx: MethodContext, task: str, keys: list, point) -> list[int]:
    if point.channel_uses is not None:
        return [point.channel_uses] * len(keys)
    return ctx.model.channel_uses(get_task(task).modality, keys)


def _payloads(ctx: MethodContext, image: bool, keys: list, fit_bytes: list[int],
              codec: str = "webp") -> list[bytes | None]:
    """Each packet source-coded into at most its byte budget (None: it does not fit)."""

    out: list[bytes | None] = []
    for key, budget in zip(keys, fit_bytes):
        if image:
            # the same picture, budget and codec recur across a sweep's SNRs: encode each once per run
            memo = ctx.data.__dict__.setdefault("_compressed", {})
            if (key, budget, codec) not in memo:
                memo[(key, budget, codec)] = compress_image(ctx.data.images[key], budget, codec)
            out.append(memo[(key, budget, codec)])
        else:
            out.append(key.encode() if len(key.encode()) <= budget else None)
    return out


def _digital_arrivals(ctx: MethodContext, image: bool, keys: list, budgets: list[int], point, extra: dict):
    sent: list[bytes | None] = [None] * len(keys)
    arrived: list[bytes | None] = [None] * len(keys)
    mcs_used = set()
    for budget in sorted(set(budgets)):  # one frame format per budget
        link = link_for(budget, point.snr_db, ctx.settings.mcs)
        mcs_used.add(link.mcs)
        rows = [i for i, b in enumerate(budgets) if b == budget]
        payloads = _payloads(ctx, image, [keys[i] for i in rows], [link.payload_bytes] * len(rows), point.codec)
        for i, p in zip(rows, payloads):
            sent[i] = p
        for i, got in zip(rows, send_payloads(payloads, link, point.snr_db, ctx.channel(point.channel))):
            arrived[i] = got
    extra["mcs"] = sorted(mcs_used)
    extra["codec"] = point.codec
    return sent, arrived


def _capacity_arrivals(ctx: MethodContext, image: bool, keys: list, budgets: list[int], point):
    bits = capacity_bits(budgets, point.snr_db, ctx.channel(point.channel))
    fit = [int(bits[i] // 8) if torch.isfinite(bits[i]) else 1 << 30 for i in range(len(keys))]
    if image:
        sent = _payloads(ctx, image, keys, fit, ctx.settings.capacity_codec)
    else:  # a sentence fits as UTF-8 or as its token ids, whichever is shorter
        ids, mask = ctx.model.text_token_ids(keys)
        width = token_bits(len(ctx.model.get_llm().tokenizer))
        token_bytes = [math.ceil(int(m.sum()) * width / 8) for m in mask.cpu()]
        sent = [k.encode() if min(len(k.encode()), t) <= f else None for k, t, f in zip(keys, token_bytes, fit)]
    return sent, list(sent), bits


def _separate(ctx: MethodContext, task: str, keys: list, point) -> Received:
    """The digital baseline or the capacity bound: which packets arrive, and what they carry."""
    budgets = _budgets(ctx, task, keys, point)
    image = get_task(task).modality == "image"
    extra: dict = {}
    bits = None
    if point.method == "digital":
        sent, arrived = _digital_arrivals(ctx, image, keys, budgets, point, extra)
    else:
        sent, arrived, bits = _capacity_arrivals(ctx, image, keys, budgets, point)
    extra["fits"] = metrics.proportion([float(s is not None) for s in sent])
    uses = [float(b) for b in budgets]
    if not image:
        extra["delivered"] = metrics.proportion([float(a is not None) for a in arrived])
        return Received(None, None, [a is not None for a in arrived], uses,
                        texts=[a.decode(errors="replace") if a else "" for a in arrived], extra=extra)
    if point.method == "digital":
        return _decoded_images(ctx, keys, arrived, uses, extra, point.codec)
    received = _decoded_images(ctx, keys, arrived, uses, extra, ctx.settings.capacity_codec)
    return _captions_at_capacity(ctx, keys, received, bits)


def _captions_at_capacity(ctx: MethodContext, keys: list, received: Received, bits: torch.Tensor) -> Received:
    """The bound for a task-aware source: where the picture does not fit the capacity but its caption's
    bits do, the receiver gets the caption (what the separation baseline sends)."""
    rows = [i for i, ok in enumerate(received.available) if not ok and float(bits[i]) >= CAPTION_BITS]
    received.extra["caption_only"] = metrics.proportion([float(i in rows) for i in range(len(keys))])
    if not rows:
        return received
    captions = ctx.model.caption_codebook()
    chosen = classify_captions(ctx.model, ctx.data.batch_images([keys[i] for i in rows]))
    if received.tokens is None:
        received.tokens = torch.zeros(len(keys), *captions.shape[1:], dtype=captions.dtype, device=captions.device)
        received.mask = torch.ones(received.tokens.shape[:2], dtype=torch.long, device=captions.device)
    for i, c in zip(rows, chosen):
        received.tokens[i] = captions[c].to(received.tokens.dtype)
        received.mask[i] = 1
        received.available[i] = True
    received.extra["delivered"] = metrics.proportion([float(a) for a in received.available])
    return received


def _decoded_images(ctx: MethodContext, keys: list, arrived: list[bytes | None], uses: list[float],
                    extra: dict, codec: str) -> Received:
    """The receiver model's tokens of the images that arrived, and their quality."""

    size = tuple(ctx.data.images[keys[0]].shape[1:]) if keys else (64, 64)
    images = [decompress_image(a, codec, size) if a is not None else None for a in arrived]
    available = [im is not None for im in images]
    extra["delivered"] = metrics.proportion([float(a) for a in available])
    got = [i for i, im in enumerate(images) if im is not None]
    if not got:
        return Received(None, None, available, uses, extra=extra)
    decoded = torch.stack([images[i] for i in got])
    extra.update(metrics.image_quality(decoded, ctx.data.batch_images([keys[i] for i in got])))
    with torch.no_grad():
        t, m = ctx.model.image_tokens(torch.stack([im if im is not None else images[got[0]] for im in images]))
    return Received(t * m[..., None], m, available, uses, extra=extra)


def _separation(ctx: MethodContext, task: str, keys: list, point) -> Received:
    """The separation baseline: the caption's index or the sentence's token ids as bits, at the same uses."""
    model = ctx.model
    budgets = _budgets(ctx, task, keys, point)
    channel = None if point.snr_db is None else ctx.channel(point.channel)
    uses = [float(b) for b in budgets]
    if get_task(task).modality == "text":
        llm = model.get_llm()
        ids, mask = model.text_token_ids(keys)
        token_ids = [row[: int(m.sum())].tolist() for row, m in zip(ids.cpu(), mask.cpu())]
        sent = send_sentences(token_ids, len(llm.tokenizer), budgets, point.snr_db, channel, ctx.settings.mcs)
        texts = [llm.tokenizer.decode(a) if a else "" for a in sent.arrived]
        return Received(None, None, [bool(a) for a in sent.arrived], uses, texts=texts, extra=_separation_record(sent))
    indices = []
    for start in range(0, len(keys), ctx.settings.batch_size):
        indices += classify_captions(model, ctx.data.batch_images(keys[start : start + ctx.settings.batch_size]))
    sent = send_captions(indices, budgets, point.snr_db, channel)
    available = [a is not None for a in sent.arrived]
    captions = model.caption_codebook()
    tokens = captions[torch.tensor([a if a is not None else 0 for a in sent.arrived], device=captions.device)]
    mask = torch.ones(tokens.shape[:2], dtype=torch.long, device=tokens.device)
    return Received(tokens, mask, available, uses, extra=_separation_record(sent))


def _separation_record(sent) -> dict:
    return {"delivered": metrics.proportion([float(a is not None and a != []) for a in sent.arrived]),
            "intact": metrics.proportion([float(i) for i in sent.intact]),
            "bits_mean": sum(sent.sent_bits) / max(1, len(sent.sent_bits)), "links": sent.links}


def _at_rate(ctx: MethodContext, task: str, keys: list, point) -> Received:
    """The semantic pipeline at a budget: copies per token, uniform or by importance (rate package)."""

    model = ctx.model
    modality = get_task(task).modality
    asked = METHODS[point.method].per_question
    contents = [k[0] for k in keys] if asked else keys
    tokens, mask = model.source_tokens(modality, ctx.inputs(task, contents))
    if point.channel_uses is None:  # "matched": the checkpoint's own count per packet
        budget = model.channel_uses(modality, contents)
    else:
        budget = budget_for(model, point.channel_uses, point.snr_db, ctx.settings.target_accuracy, point.method)
    questions = [k[1] for k in keys] if asked else [None] * len(keys)
    copies, _ = plan_copies(model, task, tokens, mask, questions, budget, point.method)
    received, llm_mask = send_at_rate(model, ctx.channel(point.channel), tokens, copies, modality, point.snr_db)
    uses = (copies.sum(1) * model.symbols_per_token).float().tolist()
    extra = {"auto_budget": budget, "target_accuracy": ctx.settings.target_accuracy} \
        if point.channel_uses == "auto" else None
    return Received(received, llm_mask, [True] * len(keys), uses, extra=extra)


register_method(Method("semantic", _semantic))
register_method(Method("mlp", _semantic, checkpoint="mlp"))
register_method(Method("noiseless", _semantic, noiseless=True))
register_method(Method("digital", _separate, budgets=True))
register_method(Method("separation", _separation, budgets=True))
register_method(Method("capacity", _separate, budgets=True))
register_method(Method("uniform", _at_rate, budgets=True, auto=True))
register_method(Method("content", _at_rate, budgets=True, auto=True))
register_method(Method("importance", _at_rate, budgets=True, per_question=True, auto=True))
