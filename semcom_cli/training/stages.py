"""Training stages, each a loop readable top to bottom.

1. ``align``    vision encoder + KAN projector, LLM frozen. Loss: the semantic
                tokens should equal the LLM's own embeddings of the image's caption
                words (repeated to fill the token slots), so no LLM forward pass is needed.
2. ``channel``  channel encoder + decoder through the channel, SNR drawn per
                sample from [snr_min, snr_max] and the channel per step from the
                preset's list; loss: reconstruct the clean semantic tokens (images)
                and token embeddings (sentences), and keep each one nearest its own word.
3. ``instruct`` a LoRA adapter on the LLM over the instruction template, mixing
                tasks; most samples pass through the trained codec and channel so the
                LLM learns to read noisy semantic tokens.
4. ``rate``     the channel stage's loss again, on variable-rate image packets (tokens
                left out or repeated), so a packet can be sent at any budget; the LLM is
                untouched (the caption codebook hands it the same words).

Retrieval adds two stages after these:

5. ``corpus``    the rate stage's loss with the sentence corpus's windows as text packets
                 (:mod:`semcom_cli.data.corpus`), so the text code carries a news vocabulary.
6. ``retrieval`` the instruct stage with retrieved entries in the prompt: right, wrong or none
                 (:mod:`semcom_cli.retrieval.training`).

Every stage can snapshot itself after any step (``Checkpointing``, ``ResumeState``)
and continue from the snapshot to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from semcom_cli.channel import (
    channel_rng_state,
    equalize_symbols,
    make_channel,
    seed_channel,
    send_repeated,
    set_channel_rng_state,
)
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.data.augment import augment_batch, render_shapes
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.models import LLM
from semcom_cli.models.codebook import CAPTIONS, caption_embeddings, caption_scores, caption_token_ids
from semcom_cli.models.llm import attach_lora
from semcom_cli.models.prompting import answer_token_count, instruct_loss
from semcom_cli.retrieval.training import TextPool
from semcom_cli.system import SemcomModel
from semcom_cli.tasks import get_task
from semcom_cli.tasks.shapes import COLORS, SHAPES
from semcom_cli.training.trainer import Checkpointing, StepHook, Trainer, final_loss

__all__ = ["train_align", "train_channel", "train_instruct", "train_rate", "train_corpus", "train_retrieval",
           "run_stage", "Stage", "STAGES"]


def _seed_all(seed: int) -> random.Random:
    torch.manual_seed(seed)
    seed_channel(seed)
    return random.Random(seed)


def _trainable(*modules: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Unfreeze the parts a stage trains; everything else stays as loaded."""
    params = []
    for m in modules:
        m.requires_grad_(True)
        params += list(m.parameters())
    return params


def _normalized_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                    whole: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Squared error over the target's power. With ``whole`` (the whole batch's target and mask,
    when pred is one process's share), both are normalised by the whole batch, so the shares' losses
    add up to the single-process loss."""
    whole_target, whole_mask = whole if whole is not None else (target, mask)
    m, wm = mask[..., None].to(pred.dtype), whole_mask[..., None].to(pred.dtype)
    count = wm.sum() * pred.shape[-1]
    power = (whole_target**2 * wm).sum() / count
    return ((pred - target) ** 2 * m).sum() / count / power


def _summary(stage: str, cfg, losses: list[float], started: float) -> dict:
    return {"stage": stage, "steps": len(losses), "batch_size": cfg.batch_size, "lr": cfg.lr,
            "first_loss": losses[0] if losses else None,
            "final_loss": final_loss(losses),
            "seconds": round(time.time() - started, 1)}


def caption_targets(llm: LLM, data: EasyVQA, n_tokens: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Image ids with captions, their caption token ids tiled to n_tokens, and those tokens' embeddings."""
    ids = list(data.captions)
    token_ids = torch.tensor([caption_token_ids(llm, *data.captions[i], n_tokens) for i in ids])
    with torch.no_grad():
        return ids, token_ids.to(llm.device), llm.embed(token_ids)


def _vocab_cross_entropy(tokens: torch.Tensor, target_ids: torch.Tensor, vocab: torch.Tensor,
                         whole_ids: torch.Tensor | None = None, temperature: float = 0.05,
                         fraction: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the nearest-word decision (cosine) among the words in the batch.

    MSE alone lets a token drift toward the mean embedding (and, through a noisy
    channel, it does); this term asks each token to be read as its own word rather
    than another one. target_ids: [B, T] token ids, -100 where there is no target.
    ``whole_ids``: the whole batch's ids when tokens are one process's share (the
    words to choose among, and the count to average over, are the whole batch's).
    ``fraction``: this term's weight (its part of a batch that mixes images and text).
    """
    whole_ids = target_ids if whole_ids is None else whole_ids
    words = torch.unique(whole_ids[whole_ids >= 0])
    valid = target_ids >= 0
    targets = torch.searchsorted(words, target_ids[valid])
    logits = F.normalize(tokens[valid], dim=-1) @ F.normalize(vocab[words], dim=-1).T / temperature
    if not bool(valid.any()):
        return tokens.sum() * 0.0
    return fraction * F.cross_entropy(logits, targets, reduction="sum") / max(int((whole_ids >= 0).sum()), 1)


def _caption_cross_entropy(tokens: torch.Tensor, classes: torch.Tensor, caption_vectors: torch.Tensor,
                           whole_classes: torch.Tensor, temperature: float = 0.05,
                           weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the packet-level decision: which caption do all of a packet's tokens read as.

    The score of caption c is the sum over the packet's tokens of their cosine with c's tiled words,
    the decision the LLM makes when it reads a noisy packet. tokens [B, T, D]; classes [B] (caption
    index, -1 for an image without one); caption_vectors [C, T, D] unit-norm; ``whole_classes``: the
    whole batch's classes (the count to average over when tokens are one process's share).
    """
    valid = classes >= 0
    if not bool(valid.any()):
        return tokens.sum() * 0.0
    scores = caption_scores(tokens[valid], caption_vectors) / temperature
    count = max(int((whole_classes >= 0).sum()), 1)
    return weight * F.cross_entropy(scores, classes[valid], reduction="sum") / count


def caption_classes(llm: LLM, data: EasyVQA, n_images: int, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's caption index in ``CAPTIONS`` (-1: none), and the captions' tiled word
    embeddings [24, n_tokens, D], unit-norm."""
    classes = torch.full((n_images,), -1, dtype=torch.long)
    for i, caption in data.captions.items():
        classes[i] = CAPTIONS.index(tuple(caption))
    vectors = F.normalize(caption_embeddings(llm, n_tokens), dim=-1)
    return classes.to(vectors.device), vectors


def train_align(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                checkpointing: Checkpointing | None = None) -> dict:
    cfg = model.preset.train.align
    rng = _seed_all(model.preset.seed)
    n_tokens = model.preset.projector.n_tokens
    image_ids, target_ids, _ = caption_targets(llm, data, n_tokens)
    # the 24 captions a drawn shape can have, tokenised once rather than every step
    drawn_ids = {(c, s): caption_token_ids(llm, c, s, n_tokens) for c in COLORS for s in SHAPES}
    vocab = llm.model.get_input_embeddings().weight.detach()
    params = _trainable(model.vision, model.projector)
    trainer = Trainer(params, cfg, rng, on_step, checkpointing)
    model.train()
    started = time.time()
    for step in range(trainer.start, cfg.steps):
        images, ids = _align_batch(data, image_ids, target_ids, drawn_ids, rng, cfg)
        r = trainer.rows(len(ids))
        tokens, mask = model.image_tokens(images[r])
        whole = (vocab[ids], torch.ones(len(ids), n_tokens, dtype=torch.long, device=tokens.device))
        loss = (_normalized_mse(tokens, vocab[ids[r]], mask, whole)
                + _vocab_cross_entropy(tokens, ids[r], vocab, ids))
        trainer.step(loss)
    model.eval()
    return _summary("align", cfg, trainer.losses, started)


def _align_batch(data: EasyVQA, image_ids: list[int], target_ids: torch.Tensor,
                 drawn_ids: dict[tuple[str, str], list[int]], rng: random.Random,
                 cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of captioned pictures [B, 3, 64, 64] and their caption token ids [B, n_tokens]: easy-vqa
    images (an ``augment`` share of them transformed) and a ``rendered`` share of shapes drawn anew."""
    n_rendered = sum(rng.random() < cfg.rendered for _ in range(cfg.batch_size))
    batch = [rng.randrange(len(image_ids)) for _ in range(cfg.batch_size - n_rendered)]
    images = augment_batch(data.batch_images(image_ids[i] for i in batch), rng, cfg.augment)
    ids = target_ids[batch]
    if n_rendered:
        captions = [(rng.choice(COLORS), rng.choice(SHAPES)) for _ in range(n_rendered)]
        images = torch.cat([images, render_shapes(captions, rng)])
        rendered_ids = torch.tensor([drawn_ids[c] for c in captions])
        ids = torch.cat([ids, rendered_ids.to(ids.device)])
    return images, ids


def _sentence_batch(model: SemcomModel, pool: TextPool, rng: random.Random, n: int):
    """Token embeddings [n, T, D], mask [n, T] and token ids (-100 on padding) of random sentences."""
    ids, mask = model.text_token_ids([pool.draw(rng) for _ in range(n)])
    with torch.no_grad():
        tokens = model.get_llm().embed(ids)
    return tokens, mask, ids.masked_fill(mask == 0, -100)


def _pad_cat(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]):
    """Concatenate two (tokens [B, T, D], mask [B, T]) batches, padding T to the longer one."""
    t = max(a[0].shape[1], b[0].shape[1])

    def pad(x, m):
        extra = t - x.shape[1]
        return (torch.nn.functional.pad(x, (0, 0, 0, extra)), torch.nn.functional.pad(m, (0, extra)))

    (xa, ma), (xb, mb) = pad(*a), pad(*b)
    return torch.cat([xa, xb]), torch.cat([ma, mb])


def _draw_snr(rng: random.Random, cfg, n: int) -> torch.Tensor:
    return torch.tensor([rng.uniform(cfg.snr_min, cfg.snr_max) for _ in range(n)])


def _random_segments(rng: random.Random, n: int, t: int, split_fraction: float, device) -> torch.Tensor | None:
    """Packet ids [n, t]: a ``split_fraction`` of the rows is cut at random into two packets (as a
    share set's public and private parts are), so the joint code also works on any subset."""
    if split_fraction <= 0:
        return None
    rows = [[rng.randrange(2) for _ in range(t)] if rng.random() < split_fraction else [0] * t for _ in range(n)]
    return torch.tensor(rows, device=device)


def _through_codec(model: SemcomModel, channel, tokens, mask, modality, snr, segments=None, codebook=True):
    """tokens → channel encoder → channel → equaliser + channel decoder (→ caption codebook) → tokens."""
    y, h = channel.send(model.encode(tokens, mask, modality, segments), snr)
    return model.receive(y, h, snr, mask, modality, codebook)


def _random_repeats(rng: random.Random, n: int, t: int, fraction: float, device) -> torch.Tensor:
    """Copies per token [n, t]: a ``fraction`` of the rows at a random rate (1 to 2·t copies, each
    given to a token drawn at random, so tokens are left out or repeated), the rest once each."""
    rows = []
    for _ in range(n):
        if rng.random() < fraction:
            row = [0] * t
            for _ in range(rng.randint(1, 2 * t)):
                row[rng.randrange(t)] += 1
        else:
            row = [1] * t
        rows.append(row)
    return torch.tensor(rows, device=device)


def _images_at_rate(model: SemcomModel, channel, tokens, repeats, snr, segments):
    """Image packets at a variable rate (channel/repetition.py) → the decoder's tokens and the sent mask."""
    sent = (repeats > 0).long()
    y, g = send_repeated(channel, model.encode(tokens, sent, "image", segments), repeats, snr)
    return model.receive_repeated(y, g, snr, repeats, "image", codebook=False), sent


class _TextTeacher:
    """The codec as the rate stage found it, frozen: what the LLM's adapter learned to read from a
    sentence's received tokens (the instruct stage trained the codec and the adapter together, and
    the decoder's text tokens drifted from the plain embeddings the adapter no longer expects).
    The rate stage asks its text packets to come out as the teacher's do under the same noise."""

    def __init__(self, model: SemcomModel):
        self.encoder = copy.deepcopy(model.channel_encoder).eval().requires_grad_(False)
        self.decoder = copy.deepcopy(model.channel_decoder).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, channel, tokens, mask, snr) -> torch.Tensor:
        y, h = channel.send(self.encoder(tokens, mask, "text"), snr)
        x_hat, effective = equalize_symbols(y, h, snr)
        return self.decoder(x_hat, effective, mask, "text") * mask[..., None].to(x_hat.dtype)


def _text_received(model: SemcomModel, channel, text, text_mask, snr, teacher: _TextTeacher | None):
    """Sentences through the codec; with a teacher, also the teacher's output under the same draws."""
    if teacher is None:
        return _through_codec(model, channel, text, text_mask, "text", snr), None
    state = channel_rng_state(model.device)
    target = teacher(channel, text, text_mask, snr)
    set_channel_rng_state(state, model.device)
    return _through_codec(model, channel, text, text_mask, "text", snr), target


def train_channel(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                  checkpointing: Checkpointing | None = None, stage: str = "channel") -> dict:
    """The channel stage, or (``stage="rate"``) the same loss on variable-rate image packets, its
    sentences held to what the codec sent before (``_TextTeacher``), or (``stage="corpus"``) on
    variable-rate image packets and the sentence corpus."""
    cfg = getattr(model.preset.train, stage)
    variable_rate = getattr(cfg, "variable_rate", 0.0)
    teacher = _TextTeacher(model) if stage == "rate" else None
    rng = _seed_all(model.preset.seed + {"channel": 1, "rate": 3, "corpus": 5}[stage])
    with torch.no_grad():  # the transmitter's front end is frozen in this stage
        clean = torch.cat([model.image_tokens(data.batch_images(range(s, min(s + 256, len(data.images)))))[0]
                           for s in range(0, len(data.images), 256)])
    n_tokens = clean.shape[1]
    caption_ids = torch.full((len(clean), n_tokens), -100, device=clean.device)  # no caption: MSE only
    captioned, target_ids, _ = caption_targets(llm, data, n_tokens)
    caption_ids[torch.tensor(captioned)] = target_ids
    classes, caption_vectors = caption_classes(llm, data, len(clean), n_tokens)
    vocab = llm.model.get_input_embeddings().weight.detach()
    sentences = TextPool.for_model(llm.tokenizer, model.preset.data.max_text_tokens, data.sentences,
                                   getattr(cfg, "corpus_share", 0.0))
    params = _trainable(model.channel_encoder, model.channel_decoder)
    trainer = Trainer(params, cfg, rng, on_step, checkpointing)
    if teacher is not None and trainer.start > 0:  # the teacher is the codec before step 0, gone by now
        raise SemcomError("the rate stage does not resume (its text teacher is the codec it started from); "
                          "run it again from its input checkpoint (about 4 minutes)")
    model.channel_encoder.train()
    model.channel_decoder.train()
    started = time.time()
    for step in range(trainer.start, cfg.steps):
        n_img = cfg.batch_size // 2
        pick = torch.tensor([rng.randrange(len(clean)) for _ in range(n_img)])
        images, image_mask = clean[pick], torch.ones(n_img, n_tokens, dtype=torch.long, device=clean.device)
        image_ids = caption_ids[pick]
        text, text_mask, text_ids = _sentence_batch(model, sentences, rng, cfg.batch_size - n_img)
        snr = _draw_snr(rng, cfg, cfg.batch_size)
        segments = _random_segments(rng, n_img, n_tokens, cfg.split_fraction, clean.device)
        channel = _channel_for_step(model, cfg, step)
        # image and text packets are coded apart (the codec knows each packet's modality)
        # the stage trains the decoder's own tokens; the caption codebook reads them afterwards
        if variable_rate:
            repeats = _random_repeats(rng, n_img, n_tokens, variable_rate, clean.device)
            received_images, image_mask = _images_at_rate(model, channel, images, repeats, snr[:n_img], segments)
            image_ids = image_ids.masked_fill(image_mask == 0, -100)  # a left-out token has no target
        else:
            received_images = _through_codec(model, channel, images, image_mask, "image", snr[:n_img], segments,
                                             codebook=False)
        received_text, text_target = _text_received(model, channel, text, text_mask, snr[n_img:], teacher)
        r = trainer.rows(cfg.batch_size)  # every process draws the whole batch's noise, in step
        ri = torch.tensor([i for i in r.tolist() if i < n_img], dtype=torch.long)
        rt = torch.tensor([i - n_img for i in r.tolist() if i >= n_img], dtype=torch.long)
        text_goal = text if text_target is None else text_target  # the teacher's tokens, when there is one
        whole = _pad_cat((images, image_mask), (text_goal, text_mask))
        received, mask = _pad_cat((received_images[ri], image_mask[ri]), (received_text[rt], text_mask[rt]))
        target, _ = _pad_cat((images[ri], image_mask[ri]), (text_goal[rt], text_mask[rt]))
        loss = (_normalized_mse(received, target, mask, whole)
                + _vocab_cross_entropy(received_images[ri], image_ids[ri], vocab, image_ids,
                                       fraction=cfg.image_word_weight * n_img / cfg.batch_size))
        if teacher is None:  # with a teacher its tokens are the target, not the nearest words
            loss = loss + _vocab_cross_entropy(received_text[rt], text_ids[rt], vocab, text_ids,
                                               fraction=1 - n_img / cfg.batch_size)
        if cfg.caption_weight:  # a left-out token's output is zero: the caption is scored on the rest
            loss = loss + _caption_cross_entropy(received_images[ri], classes[pick][ri], caption_vectors,
                                                 classes[pick], weight=cfg.caption_weight * n_img / cfg.batch_size)
        trainer.step(loss)
    model.eval()
    return _summary(stage, cfg, trainer.losses, started)


def train_rate(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
               checkpointing: Checkpointing | None = None) -> dict:
    """Stage 4: the codec learns variable-rate image packets (tokens left out or repeated)."""
    return train_channel(model, llm, data, on_step, checkpointing, stage="rate")


def train_corpus(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                 checkpointing: Checkpointing | None = None) -> dict:
    """Stage 5: the text code learns the sentence corpus (images kept at variable rates)."""
    return train_channel(model, llm, data, on_step, checkpointing, stage="corpus")


def _channel_for_step(model: SemcomModel, cfg, step: int):
    """The step's channel: the preset's list taken in turn."""
    name = cfg.channels[step % len(cfg.channels)]
    return make_channel(name, model.preset.channel.model_dump(), model.device)


def train_instruct(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                   checkpointing: Checkpointing | None = None, stage: str = "instruct") -> dict:
    """LoRA instruction tuning; with ``joint``, the answer loss also trains the channel codec, so the
    decoder learns what the LLM needs to answer rather than the embedding MSE alone. As the
    ``retrieval`` stage, text samples come from the corpus with retrieved entries in their prompts."""
    cfg = getattr(model.preset.train, stage)
    rng = _seed_all(model.preset.seed + (2 if stage == "instruct" else 6))
    pool = None
    if stage == "retrieval":
        pool = TextPool.for_model(llm.tokenizer, model.preset.data.max_text_tokens, data.sentences,
                                  cfg.corpus_share)
        pool.neighbours(cfg.k)
    if not hasattr(llm.model, "peft_config"):
        attach_lora(llm, model.preset.backbone.lora)
    for name, p in llm.model.named_parameters():  # a loaded adapter continues training
        p.requires_grad_("lora_" in name)
    params = [p for p in llm.model.parameters() if p.requires_grad]
    codec = (model.channel_encoder, model.channel_decoder)
    if cfg.joint:
        params += _trainable(*codec)
    trainer = Trainer(params, cfg, rng, on_step, checkpointing)
    llm.model.train()
    for part in codec:
        part.train(cfg.joint)
    started = time.time()
    for step in range(trainer.start, cfg.steps):
        tasks = [cfg.tasks[rng.randrange(len(cfg.tasks))] for _ in range(cfg.batch_size)]
        samples, contexts = _instruct_samples(data, tasks, rng, pool, cfg)
        # image samples first, then sentences, so one padded batch holds both
        order = sorted(range(len(tasks)), key=lambda i: get_task(tasks[i]).modality == "text")
        tasks = [tasks[i] for i in order]
        samples = [samples[i] for i in order]
        contexts = [contexts[i] for i in order]
        tokens, mask = instruct_tokens(model, data, tasks, samples, rng, cfg, step)
        r = trainer.rows(len(tasks)).tolist()
        loss = instruct_loss(llm, [tasks[i] for i in r], [samples[i][1] for i in r], tokens[r], mask[r],
                             [samples[i][2] for i in r], answer_token_count(llm, [s[2] for s in samples]),
                             [contexts[i] for i in r])
        trainer.step(loss)
    llm.model.eval()
    model.eval()
    return _summary(stage, cfg, trainer.losses, started)


def _instruct_samples(data: EasyVQA, tasks: list[str], rng: random.Random, pool: TextPool | None, cfg):
    """The step's samples (packet key, instruction, answer) and the entries shown with each: with a
    pool (the retrieval stage), sentences come from it with their drawn contexts."""
    samples, contexts = [], []
    for task in tasks:
        if pool is not None and get_task(task).modality == "text":
            sentence, context = pool.draw_with_context(rng, cfg.k, cfg.right, cfg.wrong)
            samples.append((sentence, None, sentence))
            contexts.append(context)
        else:
            samples.append(get_task(task).train_sample(data, rng))
            contexts.append(None)
    return samples, contexts


def train_retrieval(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                    checkpointing: Checkpointing | None = None) -> dict:
    """Stage 6: the adapter learns to use retrieved entries, and to ignore those that do not match."""
    return train_instruct(model, llm, data, on_step, checkpointing, stage="retrieval")


def instruct_tokens(model: SemcomModel, data: EasyVQA, tasks: list[str], samples: list, rng: random.Random,
                     cfg, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's semantic tokens as the LLM receives them: a ``channel_fraction`` of the packets
    through the codec and channel at random SNRs (with gradients into the codec when ``joint``)."""
    n_img = sum(get_task(t).modality == "image" for t in tasks)
    with torch.no_grad():
        parts = []
        if n_img:
            images = data.batch_images(s[0] for s in samples[:n_img])
            parts.append(("image", *model.image_tokens(augment_batch(images, rng, cfg.augment))))
        if n_img < len(tasks):
            parts.append(("text", *model.text_tokens([s[0] for s in samples[n_img:]])))
    snr = _draw_snr(rng, cfg, len(tasks))
    noisy = torch.tensor([rng.random() < cfg.channel_fraction for _ in tasks])
    channel = _channel_for_step(model, cfg, step)
    out, start = [], 0
    with torch.set_grad_enabled(cfg.joint):
        for modality, tokens, mask in parts:
            rows = slice(start, start + len(tokens))
            received = _through_codec(model, channel, tokens, mask, modality, snr[rows])
            out.append((torch.where(noisy[rows, None, None].to(tokens.device), received, tokens), mask))
            start += len(tokens)
    return out[0] if len(out) == 1 else _pad_cat(*out)


@dataclass(frozen=True)
class Stage:
    """A named training stage. ``family`` says what it trains and so how it is run: ``model`` stages train
    a :class:`~semcom_cli.system.SemcomModel` through the :class:`Trainer` (``run(model, llm, data, on_step,
    checkpointing)``); ``reconstruct`` and ``generative`` stages build a reconstruct checkpoint
    (:mod:`semcom_cli.reconstruct`); ``federated`` trains across devices on Flower (:mod:`semcom_cli.federated`).
    Those parts register their stages here when imported."""

    family: str
    summary: str
    run: Callable | None = None


STAGES: Registry[Stage] = Registry("stage")
STAGES.register("align", Stage("model", "vision encoder + KAN projector onto the LLM's embeddings", train_align))
STAGES.register("channel", Stage("model", "channel encoder + decoder through the channel", train_channel))
STAGES.register("instruct", Stage("model", "LoRA instruction tuning over the task template", train_instruct))
STAGES.register("rate", Stage("model", "the codec on variable-rate packets", train_rate))
STAGES.register("corpus", Stage("model", "the text code on the sentence corpus", train_corpus))
STAGES.register("retrieval", Stage("model", "LoRA tuning with retrieved entries in the prompt", train_retrieval))


def run_stage(stage: str, model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
              checkpointing: Checkpointing | None = None) -> dict:
    """Run one named model stage (``align``, ``channel``, ``instruct``, ``rate``, ``corpus``, ``retrieval``),
    optionally saving and resuming."""
    entry = STAGES.lookup(stage)
    if entry.family != "model":
        raise SemcomError(f"stage '{stage}' does not train a SemcomModel (it is a {entry.family} stage)")
    return entry.run(model, llm, data, on_step, checkpointing)
