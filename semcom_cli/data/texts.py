"""The texts the trainable LLM tasks put through the tokenizer: what a pruned vocabulary must keep."""

from __future__ import annotations

import random

from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.tasks import COLORS, END_OF_TURN, SHAPES, caption_text, get_task, task_names

__all__ = ["task_texts"]


def task_texts(samples: int = 2000, seed: int = 0) -> list[str]:
    """Every text the trainable LLM tasks put through the tokenizer on the training split: prompts with
    their instructions (``samples`` drawn per task, seeded, for tasks that generate wordings), answers
    and captions. Evaluation-only wordings (``vqa-rephrased``) are left out on purpose: they stand for
    the questions a user words differently, which the kept common pieces and the fallback must carry."""
    data = EasyVQA.load("train")
    texts = [END_OF_TURN] + [caption_text(c, s) for c in COLORS for s in SHAPES]
    texts += [f" {c} {s}" for c in COLORS for s in SHAPES]  # as the caption codebook spells them
    rng = random.Random(seed)
    for name in task_names(trainable=True):
        task = get_task(name)
        if task.output != "text":
            continue
        asked = {(i, a) for _, i, a in task.items(data)}
        asked |= {task.train_sample(data, rng)[1:] for _ in range(samples)}
        for instruction, answer in sorted(asked, key=str):
            texts.extend(task.prompt(instruction))
            texts.append(answer + END_OF_TURN)
    return texts
