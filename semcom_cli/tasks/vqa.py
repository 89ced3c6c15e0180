"""Visual question answering on easy-vqa, and the same questions reworded (evaluation only)."""

from __future__ import annotations

import random

from semcom_cli.tasks.base import Task, register_task
from semcom_cli.tasks.rephrase import rephrase
from semcom_cli.tasks.wording import ask

__all__ = ["VQA", "RephrasedVQA", "VariedVQA"]


class VQA(Task):
    """Answer the user's question about the image."""

    name = "vqa"

    def items(self, data):
        return [(data.image_ids[i], data.questions[i], data.answers[i]) for i in range(len(data.questions))]

    def train_sample(self, data, rng: random.Random):
        """Questions are drawn evenly from open, "present" and "absent" ones: in easy-vqa 60 % are
        yes/no questions answered "absent", and an LLM trained on them as they come learns to answer
        that without reading the image (88 % accuracy, every "present" one wrong)."""
        pools = data.questions_by_kind()  # open, present, absent
        pool = list(pools.values())[rng.randrange(len(pools))]
        q = pool[rng.randrange(len(pool))]
        return data.image_ids[q], data.questions[q], data.answers[q]


class RephrasedVQA(VQA):
    """vqa on the test questions reworded in phrasings training never uses (:mod:`.rephrase`)."""

    name = "vqa-rephrased"
    trainable = False

    @property
    def tag(self) -> str:
        return "vqa"

    def items(self, data):
        return [(data.image_ids[i], rephrase(data.questions[i], i), data.answers[i])
                for i in range(len(data.questions))]


class VariedVQA(VQA):
    """vqa on questions in the generator's many wordings (:mod:`.wording`), about captioned images.
    Trainable: listing it in ``train.instruct.tasks`` trains the adapter on those wordings."""

    name = "vqa-varied"

    @property
    def tag(self) -> str:
        return "vqa"

    def items(self, data):
        """Three questions per captioned image, the same for every run (seeded by the image id)."""
        out = []
        for image_id in data.captioned_ids:
            rng = random.Random(image_id)
            out += [(image_id, *ask(*data.captions[image_id], rng)) for _ in range(3)]
        return out

    def train_sample(self, data, rng: random.Random):
        image_id = data.captioned_ids[rng.randrange(len(data.captioned_ids))]
        return (image_id, *ask(*data.captions[image_id], rng))


register_task(VQA())
register_task(RephrasedVQA())
register_task(VariedVQA())
