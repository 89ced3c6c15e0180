"""The pictures the devices adapt to: shapes drawn in styles the shipped checkpoint never saw.

The shipped checkpoint reads easy-vqa's pictures and the shapes ``augment`` draws (filled, on pale
backgrounds) almost perfectly, and pictures in three other styles poorly (caption decision of the
shipped checkpoint, measured on 240 pictures each: outline 33 %, dark background 11 %,
photograph background 64 %):

- ``outline``: the shape drawn as an outline only, 2-4 px thick, on a pale background;
- ``dark``: a filled shape on a dark grey background;
- ``photo``: a filled shape on a lightened crop of a photograph (the scenes' backgrounds; the test
  set's photographs are ones no device holds).

Devices hold non-IID shards (:func:`client_shards`): each holds a few of the eight colours (label
skew) and mostly one style (feature skew), plus a ``plain_share`` of easy-vqa's training pictures
(the style the checkpoint already knows: a user's camera roll mixes both, and they keep the front
from forgetting it). Every draw comes from the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw

from semcom_cli.core.errors import SemcomError
from semcom_cli.data.augment import PALETTES, polygon_corners, render_shape
from semcom_cli.data.easyvqa import IMAGE_SIZE, EasyVQA
from semcom_cli.data.scenes.backgrounds import PHOTOS, textured_background
from semcom_cli.models.codebook import CAPTIONS
from semcom_cli.tasks.shapes import COLORS, SHAPES
from semcom_cli.tasks.wording import ask

__all__ = ["STYLES", "draw_picture", "DeviceShard", "device_shard", "client_shards", "union", "domain_test_set"]

STYLES = ("outline", "dark", "photo")
_SCALE = 4  # drawn at 4× and reduced, for smooth edges


def draw_picture(color: str, shape: str, style: str, rng: random.Random, photos: tuple[str, ...] = PHOTOS["train"]
                 ) -> torch.Tensor:
    """One picture [3, 64, 64] in [0, 1] of a ``color`` ``shape`` in ``style`` (``plain``: augment's own)."""
    if style == "plain":
        return render_shape(color, shape, rng)
    side = IMAGE_SIZE * _SCALE
    if style == "photo":
        _, background = textured_background(np.random.default_rng(rng.randrange(1 << 30)), side, photos)
        im = Image.fromarray(background)
    elif style == "dark":
        level = rng.uniform(0.05, 0.35)
        im = Image.new("RGB", (side, side), tuple(int(255 * (level + rng.uniform(-0.04, 0.04))) for _ in range(3)))
    elif style == "outline":
        im = Image.new("RGB", (side, side), tuple(int(255 * rng.uniform(0.9, 1.0)) for _ in range(3)))
    else:
        raise SemcomError(f"unknown picture style '{style}' (choose from: plain, {', '.join(STYLES)})")
    draw = ImageDraw.Draw(im)
    fill = tuple(int(min(255, max(0, v + rng.randint(-12, 12)))) for v in rng.choice(PALETTES[color]))
    size = rng.uniform(14, 46) * _SCALE
    margin = size * 0.75
    cx, cy = rng.uniform(margin, side - margin), rng.uniform(margin, side - margin)
    width = _SCALE * rng.randint(2, 4)
    if shape == "circle":
        r = size / 2
        box = [cx - r, cy - r, cx + r, cy + r]
        if style == "outline":
            draw.ellipse(box, outline=fill, width=width)
        else:
            draw.ellipse(box, fill=fill)
    else:
        corners = [(cx + x, cy + y) for x, y in polygon_corners(shape, rng, size)]
        if style == "outline":
            draw.line(corners + corners[:1], fill=fill, width=width, joint="curve")
        else:
            draw.polygon(corners, fill=fill)
    im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0


@dataclass
class DeviceShard:
    """One device's data: pictures [N, 3, 64, 64], their captions' indices in ``CAPTIONS`` [N] and
    each picture's style. It never leaves the device; only the caption index crosses as the label."""

    images: torch.Tensor
    labels: torch.Tensor
    styles: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[rows], self.labels[rows]


@lru_cache(maxsize=1)
def _easy_vqa_train():
    return EasyVQA.load("train")


def _known_pictures(colours: tuple[str, ...]) -> list[tuple[int, tuple[str, str]]]:
    """easy-vqa training pictures (id, caption) of these colours."""
    captions = _easy_vqa_train().captions
    return [(i, captions[i]) for i in sorted(captions) if captions[i][0] in colours]


def _colours_of(client: int, clients: int) -> tuple[str, ...]:
    """The colours a device holds: the eight split into ``clients`` runs (with more devices than
    colours, devices share them in turn)."""
    if clients <= len(COLORS):
        per = len(COLORS) // clients
        extra = len(COLORS) % clients
        start = client * per + min(client, extra)
        return COLORS[start:start + per + (client < extra)]
    return (COLORS[client % len(COLORS)],)


def device_shard(client: int, clients: int, per_client: int, seed: int = 0, main_style: float = 0.7,
                 plain_share: float = 0.3) -> DeviceShard:
    """Device ``client``'s shard of ``per_client`` pictures (of ``clients`` devices): its own colours, its
    own main style (``STYLES[client % 3]``) for ``main_style`` of the new-style pictures and the others
    for the rest, and a ``plain_share`` of easy-vqa training pictures of its colours. Photographs: the
    training ones."""
    if clients < 1 or per_client < 1 or not 0 <= client < clients:
        raise SemcomError(f"no device {client} of {clients} with {per_client} pictures each")
    rng = random.Random(f"federated-shard:{seed}:{clients}:{client}")
    colours, main = _colours_of(client, clients), STYLES[client % len(STYLES)]
    known = _known_pictures(colours)
    images, labels, styles = [], [], []
    for _ in range(per_client):
        if rng.random() < plain_share:  # a picture in the style the checkpoint was trained on
            image_id, (color, shape) = known[rng.randrange(len(known))]
            images.append(_easy_vqa_train().batch_images([image_id])[0])
            style = "easy-vqa"
        else:
            color, shape = rng.choice(colours), rng.choice(SHAPES)
            style = main if rng.random() < main_style else rng.choice(STYLES)
            images.append(draw_picture(color, shape, style, rng))
        labels.append(CAPTIONS.index((color, shape)))
        styles.append(style)
    return DeviceShard(torch.stack(images), torch.tensor(labels), styles)


def client_shards(clients: int, per_client: int, seed: int = 0, main_style: float = 0.7,
                  plain_share: float = 0.3) -> list[DeviceShard]:
    """Every device's shard (:func:`device_shard`), in device order."""
    return [device_shard(c, clients, per_client, seed, main_style, plain_share) for c in range(clients)]


def union(shards: list[DeviceShard]) -> DeviceShard:
    """All devices' data in one place: what centralised fine-tuning trains on."""
    return DeviceShard(torch.cat([s.images for s in shards]), torch.cat([s.labels for s in shards]),
                       [style for s in shards for style in s.styles])


def domain_test_set(per_style: int, seed: int = 1) -> tuple[torch.Tensor, list[tuple[str, str]], list[str], list[str]]:
    """The adapted domain's test set: ``per_style`` pictures of each new style, every colour and shape
    alike, on the test photographs (no device holds them), one question each in the generator's
    wordings. Returns (images [N, 3, 64, 64], captions, questions, answers)."""
    rng = random.Random(f"federated-test:{seed}")
    images, captions, questions, answers = [], [], [], []
    for style in STYLES:
        for i in range(per_style):
            color, shape = COLORS[i % len(COLORS)], SHAPES[(i // len(COLORS)) % len(SHAPES)]
            images.append(draw_picture(color, shape, style, rng, PHOTOS["test"]))
            question, answer = ask(color, shape, rng)
            captions.append((color, shape))
            questions.append(question)
            answers.append(answer)
    return torch.stack(images), captions, questions, answers
