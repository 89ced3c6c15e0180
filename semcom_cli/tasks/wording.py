"""A seeded generator of questions about one coloured shape, in many wordings, for training.

Users do not speak easy-vqa's 24 templates. :func:`ask` draws a question about an image whose
colour and shape are known, with its answer: an open question (its colour, its shape) or a yes/no
question about a colour or a shape, asserted or negated, that the image does or does not show.
Wordings are put together from parts (a lead-in, the question, a tail), with synonyms ("shape",
"object", "thing"), "color" or "colour", contractions, word order and casing drawn at random.

The held-out wordings (:mod:`.rephrase`, the ``vqa-rephrased`` task) are never produced: the
generator does not use their words "picture" and "figure", and :func:`ask` redraws in the
unlikely case a wording equals one of them (``HELD_OUT``).
"""

from __future__ import annotations

import random
import re

from semcom_cli.tasks.rephrase import ABSENT, OPEN_COLOR, OPEN_SHAPE, PRESENT
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["ask", "held_out_wordings", "normalize_wording"]

NOUNS = ("shape", "object", "thing", "item", "form")
PLACES = ("", " in the image", " in this image", " here", " shown", " in the photo", " you see", " on screen")
LEADS = ("", "", "", "please tell me: ", "quick question: ", "hi! ", "look at the image. ", "tell me, ",
         "i have a question. ", "answer briefly: ", "one more: ", "hey, ")
TAILS = ("?", "?", "?", " please?", "??", "", " ?")

OPEN_COLOR_FORMS = (
    "what {color} is the {noun}{place}", "which {color} is the {noun}{place}", "what is the {color} of the {noun}",
    "what's the {color} of the {noun}{place}", "the {noun}{place} is what {color}", "name the {color} of the {noun}",
    "what {color} does the {noun}{place} have", "tell me what {color} the {noun} is", "what {color} is it",
    "which {color} has the {noun}", "how is the {noun} colored", "what {color} is the {shape}",
    "what {color} is this {shape}", "identify the {color} of the {noun}", "say the {color} of the {noun}",
    "what {color} was used for the {noun}", "the {noun}'s {color}, please", "{color} of the {noun}",
    "what shade is the {noun}", "which hue does the {noun} have", "what {color} would you say it is",
    "what's this {noun}'s {color}", "how would you describe the {noun}'s {color}",
)
OPEN_SHAPE_FORMS = (
    "what {noun} is this", "what is the {noun}{place}", "which {noun} is shown", "what kind of {noun} is it",
    "what {noun} do you see", "name the {noun}", "identify the {noun}{place}", "what type of {noun} is{place}",
    "what is the {colorname} {noun}", "what is the {colorname} thing{place}", "what's the {noun}{place}",
    "is it a circle, a rectangle or a triangle", "circle, rectangle or triangle", "what geometric shape is{place}",
    "which of circle, rectangle, triangle is it", "tell me the {noun}", "what {noun} does the image contain",
    "what is drawn{place}", "the {noun}{place} is a what", "what form does the {noun} take",
    "what outline does the {noun} have", "which {noun} can you make out{place}",
)
HAS_COLOR = (
    "is the {noun} {value}", "is there a {value} {noun}{place}", "is there anything {value}{place}",
    "is the {noun}{place} {value}", "do you see something {value}", "does the image contain a {value} {noun}",
    "is the {noun} colored {value}", "is a {value} {noun} present", "is this {noun} {value}", "is it {value}",
    "does the image have a {value} {noun}", "is the {color} of the {noun} {value}", "would you call the {noun} {value}",
    "is {value} the {color} of the {noun}", "is there some {value} {noun}{place}",
    "is it true that the {noun} is {value}", "can you spot anything {value}{place}", "is something {value} visible",
    "does the {noun} look {value}", "am i looking at a {value} {noun}", "is there at least one {value} {noun}",
)
LACKS_COLOR = (
    "is there no {value} {noun}{place}", "is the {noun} not {value}", "is no {value} {noun} present",
    "does the image lack a {value} {noun}", "is the {noun}{place} a {color} other than {value}",
    "is the {noun} anything but {value}", "is nothing {value} shown", "does the image contain no {value} {noun}",
    "is there not a {value} {noun}{place}", "is the {color} of the {noun} not {value}",
    # negation carried by other words than "no" and "not"
    "is the image without a {value} {noun}", "is {value} absent{place}", "is {value} missing from the image",
    "is the image free of {value}", "is the image devoid of anything {value}", "is it false that the {noun} is {value}",
    "is it true that the {noun} isn't {value}", "would you say there's no {value} {noun}", "is the {noun} non-{value}",
    "there's no {value} {noun}{place}, right", "is {value} lacking{place}", "does the {noun} avoid {value}",
)
HAS_SHAPE = (
    "is the {noun} a {value}", "is there a {value}{place}", "does the image contain a {value}", "is this a {value}",
    "do you see a {value}", "is it a {value}", "is the {noun}{place} shaped like a {value}",
    "does the image have a {value} in it", "is a {value} present", "would you call it a {value}",
    "is the thing{place} a {value}", "is there some {value}{place}",
    "is it true that there is a {value}{place}", "can you spot a {value}{place}", "is a {value} visible",
    "am i looking at a {value}", "is there at least one {value}{place}", "does the {noun} look like a {value}",
)
LACKS_SHAPE = (
    "is there no {value}{place}", "is the {noun} not a {value}", "is no {value} present",
    "does the image lack a {value}", "is the {noun} something other than a {value}", "is it not a {value}",
    "does the image contain no {value}", "is there not a {value}{place}", "is the {noun} anything but a {value}",
    "is the image without a {value}", "is a {value} absent{place}", "is a {value} missing{place}",
    "is the image free of any {value} at all", "is the image devoid of a {value}",
    "is it false that it's a {value}", "is it true that there isn't a {value}{place}",
    "would you say there's no {value} here", "is the {noun} a non-{value}", "there's no {value}{place}, right",
    "does the image lack any {value}", "is it wrong to call it a {value}",
)


def normalize_wording(question: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", question.lower()))


def held_out_wordings() -> set[str]:
    """Every wording the ``vqa-rephrased`` templates can produce, normalised."""
    things = [*SHAPES, "figure"]
    items = [f"{c} figure" for c in COLORS] + list(SHAPES)
    out = {t.format(thing=x) for t in OPEN_COLOR for x in things} | set(OPEN_SHAPE)
    out |= {t.format(item=x) for t in PRESENT + ABSENT for x in items}
    return {normalize_wording(q) for q in out}


HELD_OUT = held_out_wordings()


def _phrase(form: str, rng: random.Random, color: str, shape: str, value: str = "") -> str:
    body = form.format(color=rng.choice(("color", "colour")), noun=rng.choice(NOUNS), place=rng.choice(PLACES),
                       shape=shape, colorname=color, value=value)
    text = rng.choice(LEADS) + body + rng.choice(TAILS)
    if rng.random() < 0.3:
        text = text[:1].upper() + text[1:]
    return text


def ask(color: str, shape: str, rng: random.Random) -> tuple[str, str]:
    """A question about an image of a ``color`` ``shape`` and its answer (a colour, a shape, yes or no).
    Open questions, colour questions and shape questions come equally often, half of the yes/no
    ones about what the image shows."""
    while True:
        question, answer = _draw(color, shape, rng)
        if normalize_wording(question) not in HELD_OUT:
            return question, answer


def _draw(color: str, shape: str, rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(4)
    if kind == 0:
        return _phrase(rng.choice(OPEN_COLOR_FORMS), rng, color, shape), color
    if kind == 1:
        return _phrase(rng.choice(OPEN_SHAPE_FORMS), rng, color, shape), shape
    values, truth = (COLORS, color) if kind == 2 else (SHAPES, shape)
    shows = rng.random() < 0.5
    value = truth if shows else rng.choice([v for v in values if v != truth])
    negated = rng.random() < 0.5
    forms = {(2, False): HAS_COLOR, (2, True): LACKS_COLOR, (3, False): HAS_SHAPE, (3, True): LACKS_SHAPE}
    answer = "yes" if shows != negated else "no"
    return _phrase(rng.choice(forms[kind, negated]), rng, color, shape, value), answer
