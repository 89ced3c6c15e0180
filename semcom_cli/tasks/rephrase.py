"""easy-vqa questions reworded in phrasings its training data never uses.

easy-vqa asks in 24 fixed templates ("is there a red shape?", "what color is the
shape?"). Answering other wordings of the same question is what the LLM is for,
so the ``vqa-rephrased`` evaluation task rewords every test question with the
templates below (none shares its wording with easy-vqa: "picture", "figure",
"colour", "drawn" never occur there) and keeps the answer.
"""

from __future__ import annotations

from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["rephrase", "OPEN_COLOR", "OPEN_SHAPE", "PRESENT", "ABSENT"]

# {thing}: "circle" or "figure"; {item}: "red figure" or "triangle"
OPEN_COLOR = ("which colour does the {thing} in the picture have?", "tell me the colour of the {thing}.",
              "in what colour is the {thing} drawn?")
OPEN_SHAPE = ("which geometric figure is drawn in the picture?", "name the kind of figure you can see.",
              "what sort of figure does the picture show?")
PRESENT = ("can you see a {item} in the picture?", "does the picture show a {item}?",
           "is a {item} drawn in the picture?")
ABSENT = ("is the picture free of any {item}?", "is it true that no {item} is drawn?",
          "is the picture missing a {item}?")


def rephrase(question: str, variant: int = 0) -> str:
    """An unseen wording of an easy-vqa question with the same answer; ``variant`` picks the template."""
    words = question.lower().rstrip("?").split()
    color = next((w for w in words if w in COLORS), None)
    shape = next((w for w in words if w in SHAPES), None)
    if words[0] == "what":
        if "color" in words:  # "what color is the circle?", "what is the color of the shape?"
            return _pick(OPEN_COLOR, variant).format(thing=shape or "figure")
        return _pick(OPEN_SHAPE, variant)  # "what shape is present?", "what is the red shape?"
    if color is None and shape is None:
        raise ValueError(f"not an easy-vqa question: {question!r}")
    item = f"{color} figure" if color else shape
    negated = "not" in words or "no" in words
    return _pick(ABSENT if negated else PRESENT, variant).format(item=item)


def _pick(templates: tuple[str, ...], variant: int) -> str:
    return templates[variant % len(templates)]
