"""easy-vqa's vocabulary: its colours and shapes, and captions made of them."""

from __future__ import annotations

import re

__all__ = ["COLORS", "SHAPES", "caption_text", "parse_caption"]

COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle")


def caption_text(color: str, shape: str) -> str:
    return f"a {color} {shape}"


def parse_caption(text: str) -> tuple[str | None, str | None]:
    words = re.findall(r"[a-z]+", text.lower())
    color = next((w for w in words if w in COLORS), None)
    shape = next((w for w in words if w in SHAPES), None)
    return color, shape
