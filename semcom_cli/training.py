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

Every stage can snapshot itself after any step (``Checkpointing``, ``ResumeState``)
and continue from the snapshot to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .backbone import LLM, attach_lora
from .channel import channel_rng_state, seed_channel, set_channel_rng_state
from .errors import SemcomError
from .data import QUESTION_KINDS, EasyVQA
from .distributed import current_shard
from .instruct import answer_token_count, instruct_loss
from .pipeline import SemcomModel, send
from .tasks import caption_text

__all__ = ["train_align", "train_channel", "train_instruct", "run_stage", "STAGES", "ResumeState",
           "Checkpointing"]

StepHook = Callable[[int, int, float], None]  # (step, total, loss)

STAGES = ("align", "channel", "instruct")


@dataclass
class ResumeState:
    """Everything a stage needs to continue after ``step`` steps exactly as if it had not
    stopped: optimizer moments, schedule, loss log and every random generator it draws from."""

    step: int
    tensors: dict[str, torch.Tensor]  # optimizer moments, torch generator states
    meta: dict[str, Any]  # JSON: param groups, scheduler, loss log, Python/NumPy generator states


@dataclass
class Checkpointing:
    """Save a ResumeState through ``on_save`` every ``every`` steps; start from ``resume``."""

    every: int = 0
    on_save: Callable[[ResumeState], None] | None = None
    resume: ResumeState | None = None


def _seed_all(seed: int) -> random.Random:
    torch.manual_seed(seed)
    seed_channel(seed)
    return random.Random(seed)


class _Trainer:
    """AdamW on a cosine schedule, the loss log every stage keeps, and the stage's own
    generator ``rng``; it can snapshot all of that (and the global generators) after any step."""

    def __init__(self, params, cfg, rng: random.Random, on_step: StepHook | None,
                 checkpointing: Checkpointing | None = None):
        self.params = list(params)
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, max(cfg.steps, 1))
        self.total, self.on_step, self.losses, self.rng = cfg.steps, on_step, [], rng
        self.checkpointing = checkpointing or Checkpointing()
        # Under torchrun every process draws the same batch and computes the loss on its share
        # (rows()), normalised by the whole batch; gradients and losses are summed across processes,
        # so every process takes the single-process step.
        self.shard = current_shard()
        if self.checkpointing.resume is not None:
            self._restore(self.checkpointing.resume)

    @property
    def start(self) -> int:
        """The first step still to run (0, or where a resumed run stopped)."""
        return len(self.losses)

    def rows(self, batch: int) -> torch.Tensor:
        """The rows of a batch of ``batch`` samples whose loss this process computes."""
        return torch.tensor(self.shard.take(list(range(batch))), dtype=torch.long)

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        value = loss.detach().clone()
        if self.shard.world > 1:
            import torch.distributed as dist

            # each share's loss is normalised by the whole batch: the sums are the whole batch's
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
            dist.all_reduce(value)
        self.opt.step()
        self.sched.step()
        self.losses.append(value.item())
        if self.on_step:
            self.on_step(len(self.losses), self.total, self.losses[-1])
        every, on_save = self.checkpointing.every, self.checkpointing.on_save
        if every and on_save and len(self.losses) % every == 0 and len(self.losses) < self.total:
            on_save(self.snapshot())

    def snapshot(self) -> ResumeState:
        opt_state = self.opt.state_dict()
        tensors = {f"optimizer.{index}.{key}": value.detach().clone()
                   for index, moments in opt_state["state"].items() for key, value in moments.items()}
        channel = channel_rng_state()
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.channel_torch"] = channel["torch"]
        meta = {"param_groups": opt_state["param_groups"], "scheduler": self.sched.state_dict(),
                "losses": list(self.losses), "rng_python": _json_rng(self.rng.getstate()),
                "rng_channel_python": _json_rng(channel["python"]), "rng_channel_numpy": channel["numpy"]}
        return ResumeState(len(self.losses), tensors, meta)

    def _restore(self, state: ResumeState) -> None:
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in state.tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                moments.setdefault(int(index), {})[key] = value
        if len(moments) not in (0, len(self.params)):
            raise SemcomError(f"the saved run trained {len(moments)} tensors, this stage trains {len(self.params)}")
        self.opt.load_state_dict({"state": moments, "param_groups": state.meta["param_groups"]})
        self.sched.load_state_dict(state.meta["scheduler"])
        self.losses = list(state.meta["losses"])
        self.rng.setstate(_rng_from_json(state.meta["rng_python"]))
        torch.set_rng_state(state.tensors["rng.torch"])
        set_channel_rng_state({"torch": state.tensors["rng.channel_torch"],
                               "python": _rng_from_json(state.meta["rng_channel_python"]),
                               "numpy": state.meta["rng_channel_numpy"]})


def _json_rng(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


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
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    return {"stage": stage, "steps": len(losses), "batch_size": cfg.batch_size, "lr": cfg.lr,
            "first_loss": losses[0] if losses else None,
            "final_loss": sum(tail) / len(tail) if tail else None,
            "seconds": round(time.time() - started, 1)}


def caption_targets(llm: LLM, data: EasyVQA, n_tokens: int) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Image ids with captions, their caption token ids tiled to n_tokens, and those tokens' embeddings."""
    ids, targets = [], []
    for image_id, (color, shape) in data.captions.items():
        token_ids = llm.tokenizer(f" {color} {shape}", add_special_tokens=False)["input_ids"]
        tiled = (token_ids * n_tokens)[:n_tokens]
        ids.append(image_id)
        targets.append(torch.tensor(tiled))
    token_ids = torch.stack(targets)
    with torch.no_grad():
        return ids, token_ids, llm.embed(token_ids)


def _vocab_cross_entropy(tokens: torch.Tensor, target_ids: torch.Tensor, vocab: torch.Tensor,
                         whole_ids: torch.Tensor | None = None, temperature: float = 0.05) -> torch.Tensor:
    """Cross-entropy of the nearest-word decision (cosine) among the words in the batch.

    MSE alone lets a token drift toward the mean embedding (and, through a noisy
    channel, it does); this term asks each token to be read as its own word rather
    than another one. target_ids: [B, T] token ids, -100 where there is no target.
    ``whole_ids``: the whole batch's ids when tokens are one process's share (the
    words to choose among, and the count to average over, are the whole batch's).
    """
    whole_ids = target_ids if whole_ids is None else whole_ids
    words = torch.unique(whole_ids[whole_ids >= 0])
    valid = target_ids >= 0
    targets = torch.searchsorted(words, target_ids[valid])
    logits = F.normalize(tokens[valid], dim=-1) @ F.normalize(vocab[words], dim=-1).T / temperature
    return F.cross_entropy(logits, targets, reduction="sum") / int((whole_ids >= 0).sum())


def train_align(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                checkpointing: Checkpointing | None = None) -> dict:
    cfg = model.preset.train.align
    rng = _seed_all(model.preset.seed)
    image_ids, target_ids, targets = caption_targets(llm, data, model.preset.projector.n_tokens)
    vocab = llm.model.get_input_embeddings().weight.detach()
    params = _trainable(model.vision, model.projector)
    trainer = _Trainer(params, cfg, rng, on_step, checkpointing)
    model.train()
    started = time.time()
    for step in range(trainer.start, cfg.steps):
        batch = [rng.randrange(len(image_ids)) for _ in range(cfg.batch_size)]
        pick = [batch[i] for i in trainer.rows(len(batch))]
        tokens, mask = model.image_tokens(data.batch_images(image_ids[i] for i in pick))
        whole = (targets[batch], torch.ones(len(batch), tokens.shape[1], dtype=torch.long))
        loss = (_normalized_mse(tokens, targets[pick], mask, whole)
                + _vocab_cross_entropy(tokens, target_ids[pick], vocab, target_ids[batch]))
        trainer.step(loss)
    model.eval()
    return _summary("align", cfg, trainer.losses, started)


def _sentence_batch(model: SemcomModel, sentences: list[str], rng: random.Random, n: int):
    """Token embeddings [n, T, D], mask [n, T] and token ids (-100 on padding) of random sentences."""
    ids, mask = model.text_token_ids([sentences[rng.randrange(len(sentences))] for _ in range(n)])
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


def train_channel(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                  checkpointing: Checkpointing | None = None) -> dict:
    cfg = model.preset.train.channel
    rng = _seed_all(model.preset.seed + 1)
    with torch.no_grad():  # the transmitter's front end is frozen in this stage
        clean = torch.cat([model.image_tokens(data.batch_images(range(s, min(s + 256, len(data.images)))))[0]
                           for s in range(0, len(data.images), 256)])
    n_tokens = clean.shape[1]
    caption_ids = torch.full((len(clean), n_tokens), -100)  # images without a caption: MSE only
    captioned, target_ids, _ = caption_targets(llm, data, n_tokens)
    caption_ids[torch.tensor(captioned)] = target_ids
    vocab = llm.model.get_input_embeddings().weight.detach()
    sentences = data.sentences
    params = _trainable(model.channel_encoder, model.channel_decoder)
    trainer = _Trainer(params, cfg, rng, on_step, checkpointing)
    model.channel_encoder.train()
    model.channel_decoder.train()
    started = time.time()
    for step in range(trainer.start, cfg.steps):
        n_img = cfg.batch_size // 2
        pick = torch.tensor([rng.randrange(len(clean)) for _ in range(n_img)])
        images = (clean[pick], torch.ones(n_img, n_tokens, dtype=torch.long))
        text_tokens, text_mask, text_ids = _sentence_batch(model, sentences, rng, cfg.batch_size - n_img)
        tokens, mask = _pad_cat(images, (text_tokens, text_mask))
        word_ids = _pad_cat((caption_ids[pick][..., None], images[1]), (text_ids[..., None], text_mask))[0][..., 0]
        word_ids = word_ids.masked_fill(mask == 0, -100)
        snr = _draw_snr(rng, cfg, tokens.shape[0])
        channel = cfg.channels[step % len(cfg.channels)]
        y, h = send(model.encode(tokens, mask), snr, channel, model.preset.channel.rician_k)
        received = model.receive(y, h, snr, mask)
        r = trainer.rows(tokens.shape[0])  # every process draws the whole batch's noise, in step
        loss = (_normalized_mse(received[r], tokens[r], mask[r], (tokens, mask))
                + _vocab_cross_entropy(received[r], word_ids[r], vocab, word_ids))
        trainer.step(loss)
    model.eval()
    return _summary("channel", cfg, trainer.losses, started)


def _instruct_sample(task: str, data: EasyVQA, captioned: list[int], pools: dict[str, list[int]],
                     rng: random.Random):
    """(image id or sentence, instruction, answer) for one training sample of a task.

    VQA questions are drawn evenly from open, "present" and "absent" questions: in easy-vqa 60 %
    of questions are yes/no ones whose answer is "absent", and an LLM trained on them as they come
    learns to answer that without reading the image (88 % accuracy, every "present" one wrong)."""
    if task == "vqa":
        pool = pools[QUESTION_KINDS[rng.randrange(len(QUESTION_KINDS))]]
        q = pool[rng.randrange(len(pool))]
        return data.image_ids[q], data.questions[q], data.answers[q]
    if task == "caption":
        image_id = captioned[rng.randrange(len(captioned))]
        return image_id, None, caption_text(*data.captions[image_id])
    sentence = data.sentences[rng.randrange(len(data.sentences))]
    return sentence, None, sentence


def train_instruct(model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
                   checkpointing: Checkpointing | None = None) -> dict:
    cfg = model.preset.train.instruct
    rng = _seed_all(model.preset.seed + 2)
    if not hasattr(llm.model, "peft_config"):
        attach_lora(llm, model.preset.backbone.lora)
    for name, p in llm.model.named_parameters():  # a loaded adapter continues training
        p.requires_grad_("lora_" in name)
    captioned = sorted(data.captions)
    pools = data.questions_by_kind()
    params = [p for p in llm.model.parameters() if p.requires_grad]
    trainer = _Trainer(params, cfg, rng, on_step, checkpointing)
    llm.model.train()
    started = time.time()
    for step in range(trainer.start, cfg.steps):
        tasks = [cfg.tasks[rng.randrange(len(cfg.tasks))] for _ in range(cfg.batch_size)]
        samples = [_instruct_sample(t, data, captioned, pools, rng) for t in tasks]
        # image samples first, then sentences, so one padded batch holds both
        order = sorted(range(len(tasks)), key=lambda i: tasks[i] == "text")
        tasks = [tasks[i] for i in order]
        samples = [samples[i] for i in order]
        n_img = sum(t != "text" for t in tasks)
        with torch.no_grad():
            parts = []
            if n_img:
                parts.append(model.image_tokens(data.batch_images(s[0] for s in samples[:n_img])))
            if n_img < len(tasks):
                parts.append(model.text_tokens([s[0] for s in samples[n_img:]]))
            tokens, mask = parts[0] if len(parts) == 1 else _pad_cat(*parts)
            snr = _draw_snr(rng, cfg, len(tasks))
            channel = cfg.channels[step % len(cfg.channels)]
            y, h = send(model.encode(tokens, mask), snr, channel, model.preset.channel.rician_k)
            received = model.receive(y, h, snr, mask)
            noisy = torch.tensor([rng.random() < cfg.channel_fraction for _ in tasks])
            tokens = torch.where(noisy[:, None, None], received, tokens)
        r = trainer.rows(len(tasks))
        loss = instruct_loss(llm, [tasks[i] for i in r], [samples[i][1] for i in r], tokens[r], mask[r],
                             [samples[i][2] for i in r], answer_token_count(llm, [s[2] for s in samples]))
        trainer.step(loss)
    llm.model.eval()
    return _summary("instruct", cfg, trainer.losses, started)


def run_stage(stage: str, model: SemcomModel, llm: LLM, data: EasyVQA, on_step: StepHook | None = None,
              checkpointing: Checkpointing | None = None) -> dict:
    """Run one named stage (``align``, ``channel`` or ``instruct``), optionally saving and resuming."""
    return {"align": train_align, "channel": train_channel, "instruct": train_instruct}[stage](
        model, llm, data, on_step, checkpointing)
