"""Captioning: name the colour and shape of the image's figure."""

from __future__ import annotations

import random

from semcom_cli.tasks.base import Task, register_task
from semcom_cli.tasks.shapes import caption_text, parse_caption

__all__ = ["Caption"]


class Caption(Task):
    name = "caption"
    instruction = "Describe the shape in the image."

    def items(self, data):
        return [(i, None, caption_text(*c)) for i, c in sorted(data.captions.items())]

    def train_sample(self, data, rng: random.Random):
        captioned = data.captioned_ids
        image_id = captioned[rng.randrange(len(captioned))]
        return image_id, None, caption_text(*data.captions[image_id])

    def correct(self, prediction: str, reference: str) -> float:
        """Right when both the colour and the shape are."""
        return float(parse_caption(prediction) == parse_caption(reference))


register_task(Caption())
