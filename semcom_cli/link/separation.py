"""The separation baseline: a digital system that knows the task.

The semantic receiver reads an image packet as one of the 24 captions (:mod:`semcom_cli.models.codebook`),
so what crosses its channel is, in effect, which caption the picture shows. The separation baseline
says so in bits: the transmitter classifies the picture with the same vision encoder and projector
(the caption its tokens score highest, the codebook's own rule), sends the caption's index (5 bits)
with 5G LDPC and QAM in the same channel uses (:mod:`semcom_cli.channel.message_link`), and the
receiver hands the same LLM that caption's words, the tokens its codebook hands it for a clean packet.
The receiver knows the message is one of 24 captions, so it decodes by maximum likelihood among their
24 codewords. An index outside the codebook (none is decoded, but a bit error could make one) is a lost
packet.

A sentence is sent as its LLM token ids, ``ceil(log2(vocabulary))`` bits each. Link adaptation picks
the modulation and coding scheme for the SNR as the digital baseline does (:func:`~semcom_cli.channel.
digital.choose_mcs`); the tokens that scheme carries in the packet's uses are sent (a sentence too
long for it is cut there), coded as a message of that length, and decoded by belief propagation;
the receiver detokenises what it decodes.

For the reconstruct task the transmitter sends the query's object as 30 bits (found or not, its box
in 6-bit pixel coordinates, its colour and shape as the guide's presence check reads them) in twice
the channel uses the SNR's scheme needs for them, and the picture in the rest of the budget with an
image codec (:mod:`semcom_cli.channel.digital`). The receiver puts the object back into what it
decodes (grey where no picture arrived): the caption's shape drawn in its colour in the box, and the
box's pixels near that colour set to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.nn import functional as F

from semcom_cli.channel.digital import MCS_TABLE, choose_mcs
from semcom_cli.channel.message_link import bits_for, from_bits, message_link, send_messages, to_bits
from semcom_cli.data.scenes import COLOR_RGB
from semcom_cli.models.codebook import CAPTIONS, caption_scores
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["CAPTION_BITS", "SeparationResult", "classify_captions", "send_captions", "send_sentences", "token_bits", "OBJECT_BITS",
           "ObjectMessage", "object_message", "object_uses", "send_objects", "paint_object"]

CAPTION_BITS = bits_for(len(CAPTIONS))


@dataclass
class SeparationResult:
    """What arrived per packet, and how it was sent: ``links`` one record per (budget, message length)."""

    arrived: list            # caption index (or None: lost) per packet, or the decoded sentence
    intact: list[bool]       # the bits arrived exactly as sent
    sent_bits: list[int]
    links: list[dict] = field(default_factory=list)


@torch.no_grad()
def classify_captions(model, images: torch.Tensor) -> list[int]:
    """The transmitter's decision: the index (in ``CAPTIONS``) of the caption each picture's semantic
    tokens score highest against, the rule the receiver's codebook reads a packet by."""
    tokens, mask = model.image_tokens(images)
    scores = caption_scores(tokens, F.normalize(model.caption_codebook(), dim=-1), mask)
    return scores.argmax(1).tolist()


def _groups(budgets: list[int], lengths: list[int]) -> dict[tuple[int, int], list[int]]:
    out: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(budgets, lengths)):
        out.setdefault(key, []).append(i)
    return out


def send_captions(indices: list[int], budgets: list[int], snr_db: float | None, channel) -> SeparationResult:
    """Each caption index in its packet's ``budgets[i]`` channel uses; ``snr_db`` None: no channel."""
    arrived: list = [None] * len(indices)
    intact = [False] * len(indices)
    candidates = torch.stack([to_bits([c], CAPTION_BITS) for c in range(len(CAPTIONS))])
    result = SeparationResult(arrived, intact, [CAPTION_BITS] * len(indices))
    for (budget, _), rows in _groups(budgets, [CAPTION_BITS] * len(indices)).items():
        link = message_link(CAPTION_BITS, budget)
        if link is None:
            continue
        result.links.append({"channel_uses": budget, **link.record(), "decoder": f"ml-{len(CAPTIONS)}"})
        sent = torch.stack([to_bits([indices[i]], CAPTION_BITS) for i in rows])
        got = sent if snr_db is None else send_messages(sent, link, snr_db, channel, candidates).cpu()
        for row, i in enumerate(rows):
            index = from_bits(got[row], CAPTION_BITS)[0]
            arrived[i] = index if index < len(CAPTIONS) else None
            intact[i] = bool((got[row] == sent[row]).all())
    return result


def token_bits(vocabulary: int) -> int:
    return bits_for(vocabulary)


def send_sentences(token_ids: list[list[int]], vocabulary: int, budgets: list[int], snr_db: float | None,
                   channel, mcs: str = "auto") -> SeparationResult:
    """Each sentence's token ids in its packet's ``budgets[i]`` uses: as many tokens as the SNR's scheme
    carries there, decoded by belief propagation. Returns the decoded ids per packet in ``arrived``."""
    width = token_bits(vocabulary)
    carried = []
    for ids, budget in zip(token_ids, budgets):
        if snr_db is None:
            carried.append(len(ids))
            continue
        q, r = MCS_TABLE[choose_mcs(snr_db, mcs)]
        carried.append(min(len(ids), math.floor(budget * q * r) // width))
    arrived: list = [[] for _ in token_ids]
    intact = [False] * len(token_ids)
    result = SeparationResult(arrived, intact, [n * width for n in carried])
    for (budget, n), rows in _groups(budgets, carried).items():
        link = message_link(n * width, budget) if n > 0 else None
        if link is None:
            continue
        result.links.append({"channel_uses": budget, "tokens": n, **link.record(), "decoder": "bp"})
        sent = torch.stack([to_bits(token_ids[i][:n], width) for i in rows])
        got = sent if snr_db is None else send_messages(sent, link, snr_db, channel).cpu()
        for row, i in enumerate(rows):
            arrived[i] = [t for t in from_bits(got[row], width) if t < vocabulary]
            intact[i] = bool((got[row] == sent[row]).all())
    return result


# the reconstruct task: the referred object as bits beside the picture ----------------------------------

BOX_BITS = 6  # one coordinate of a 64×64 picture


@dataclass(frozen=True)
class ObjectMessage:
    """What the transmitter tells the receiver about the query's object: its box (inclusive pixel
    coordinates) and its caption, or that it has none (the guide did not find the referent)."""

    box: tuple[int, int, int, int] | None  # x0, y0, x1, y1
    color: int = 0  # index in COLORS
    shape: int = 0  # index in SHAPES

    def bits(self) -> list[int]:
        if self.box is None:
            return [0] * OBJECT_BITS
        values = to_bits([*self.box], BOX_BITS).int().tolist()
        return [1, *values, *to_bits([self.color], COLOR_BITS).int().tolist(),
                *to_bits([self.shape], SHAPE_BITS).int().tolist()]

    @classmethod
    def from_bits(cls, bits: torch.Tensor) -> "ObjectMessage":
        if bits[0] < 0.5:
            return cls(None)
        box = tuple(from_bits(bits[1 : 1 + 4 * BOX_BITS], BOX_BITS))
        at = 1 + 4 * BOX_BITS
        color = from_bits(bits[at : at + COLOR_BITS], COLOR_BITS)[0]
        shape = from_bits(bits[at + COLOR_BITS : at + COLOR_BITS + SHAPE_BITS], SHAPE_BITS)[0]
        if box[2] < box[0] or box[3] < box[1] or color >= len(COLORS) or shape >= len(SHAPES):
            return cls(None)  # no object reads like this: the bits were damaged
        return cls(box, color, shape)


COLOR_BITS, SHAPE_BITS = bits_for(len(COLORS)), bits_for(len(SHAPES))
OBJECT_BITS = 1 + 4 * BOX_BITS + COLOR_BITS + SHAPE_BITS


def object_message(mask: torch.Tensor, marked: str | None) -> ObjectMessage:
    """The message for one picture: the box of the guide's mask [64, 64] and the caption the presence
    check reads there (``marked``, "a red triangle"); no object when either is missing."""
    words = (marked or "").split()
    if mask.sum() == 0 or len(words) != 3 or words[1] not in COLORS or words[2] not in SHAPES:
        return ObjectMessage(None)
    ys, xs = mask.nonzero(as_tuple=True)
    return ObjectMessage((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), COLORS.index(words[1]),
                         SHAPES.index(words[2]))


def object_uses(budget: int, snr_db: float, mcs: str = "auto") -> int:
    """Channel uses of the object's message: twice what the SNR's scheme needs for its bits (all of a
    budget too small for that); the rest of the budget carries the picture. Twice, because the scheme's
    thresholds are for long blocks, and a 30-bit block at that rate is lost far more often."""
    q, r = MCS_TABLE[choose_mcs(snr_db, mcs)]
    return min(budget, math.ceil(2 * OBJECT_BITS / (q * r)))


def send_objects(messages: list[ObjectMessage], uses: int, snr_db: float, channel) -> list[ObjectMessage]:
    """Each object message in ``uses`` channel uses (belief propagation, no CRC); the decoded messages."""
    link = message_link(OBJECT_BITS, uses)
    if link is None:
        return [ObjectMessage(None)] * len(messages)
    sent = torch.tensor([m.bits() for m in messages], dtype=torch.float32)
    got = send_messages(sent, link, snr_db, channel).cpu()
    return [ObjectMessage.from_bits(row) for row in got]


def paint_object(picture: torch.Tensor | None, message: ObjectMessage, size: int = 64,
                 tolerance: float = 0.25) -> torch.Tensor:
    """The receiver's picture [3, H, W] in [0, 1] (grey where no picture arrived) with the object put
    back from its message: the caption's shape drawn in its colour in the box, and the box's pixels
    within ``tolerance`` (RGB distance) of that colour set to it exactly (the object's true outline
    where the decoded picture shows it)."""
    out = torch.full((3, size, size), 0.5) if picture is None else picture.clone()
    if message.box is None:
        return out
    x0, y0, x1, y1 = message.box
    rgb = torch.tensor(COLOR_RGB[COLORS[message.color]], dtype=torch.float32) / 255
    canvas = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    shape = SHAPES[message.shape]
    if shape == "circle":
        draw.ellipse([x0, y0, x1, y1], fill=1)
    elif shape == "rectangle":
        draw.rectangle([x0, y0, x1, y1], fill=1)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=1)
    painted = torch.from_numpy(np.asarray(canvas, dtype=bool).copy())
    near = (out - rgb[:, None, None]).pow(2).sum(0).sqrt() < tolerance
    in_box = torch.zeros(size, size, dtype=torch.bool)
    in_box[y0 : y1 + 1, x0 : x1 + 1] = True
    out[:, painted | (near & in_box)] = rgb[:, None]
    return out
