"""Text transmission: the receiver's LLM repeats the sentence it received."""

from __future__ import annotations

import random

from semcom_cli.tasks.base import Task, register_task

__all__ = ["Text"]


class Text(Task):
    name = "text"
    modality = "text"
    instruction = "Repeat the received sentence."
    metrics = ("exact_match", "bleu", "similarity")

    def answer_tokens(self, max_text_tokens: int) -> int:
        return max_text_tokens + 4

    def items(self, data):
        return [(s, None, s) for s in data.sentences]

    def train_sample(self, data, rng: random.Random):
        sentences = data.sentences
        sentence = sentences[rng.randrange(len(sentences))]
        return sentence, None, sentence


register_task(Text())
