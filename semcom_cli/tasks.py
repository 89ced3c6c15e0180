"""Tasks and the one instruction template they all share (training and run time alike).

The LLM reads::

    <|im_start|>user
    [TASK] <received semantic tokens>
    INSTRUCTION<|im_end|>
    <|im_start|>assistant
    ANSWER<|im_end|>

``TASK`` is the task name, the received semantic tokens are spliced in as
embeddings (not text), ``INSTRUCTION`` is the user's question (vqa) or the
task's fixed instruction, and ``ANSWER`` is what the LLM is trained to write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SemcomError

__all__ = [
    "TEMPLATE",
    "SEM_PLACEHOLDER",
    "END_OF_TURN",
    "Task",
    "TASKS",
    "get_task",
    "render_prompt",
    "caption_text",
    "parse_caption",
    "normalize_answer",
    "COLORS",
    "SHAPES",
]

SEM_PLACEHOLDER = "<sem>"
END_OF_TURN = "<|im_end|>"
TEMPLATE = "<|im_start|>user\n[{task}] <sem>\n{instruction}<|im_end|>\n<|im_start|>assistant\n"

COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
SHAPES = ("circle", "rectangle", "triangle")


@dataclass(frozen=True)
class Task:
    name: str
    modality: str  # what the transmitter encodes: "image" or "text"
    instruction: str | None  # None: the user supplies it (a question)
    description: str


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("vqa", "image", None, "answer a question about the image"),
        Task("caption", "image", "Describe the shape in the image.", "name the colour and shape"),
        Task("text", "text", "Repeat the received sentence.", "reconstruct the sent sentence"),
    )
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise SemcomError(f"unknown task '{name}' (choose from: {', '.join(TASKS)})")
    return TASKS[name]


def render_prompt(task: str, instruction: str | None = None) -> tuple[str, str]:
    """The template split at the semantic tokens: (text before, text after)."""
    t = get_task(task)
    if t.instruction is None:
        if not instruction or not instruction.strip():
            raise SemcomError(f"task '{task}' needs a question (--question)")
        instruction = " ".join(instruction.strip().split())
    else:
        instruction = t.instruction
    before, after = TEMPLATE.format(task=task, instruction=instruction).split(SEM_PLACEHOLDER)
    return before, after


def caption_text(color: str, shape: str) -> str:
    return f"a {color} {shape}"


def parse_caption(text: str) -> tuple[str | None, str | None]:
    words = re.findall(r"[a-z]+", text.lower())
    color = next((w for w in words if w in COLORS), None)
    shape = next((w for w in words if w in SHAPES), None)
    return color, shape


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation and surrounding space: what exact match compares."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))
