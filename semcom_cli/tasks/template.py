"""The one instruction template every task follows, in training and at run time alike.

The LLM reads::

    <|im_start|>user
    [TASK] <received semantic tokens>
    INSTRUCTION<|im_end|>
    <|im_start|>assistant
    ANSWER<|im_end|>

``TASK`` is the task's tag, the received semantic tokens are spliced in as
embeddings (not text), ``INSTRUCTION`` is the user's question (vqa) or the
task's fixed instruction, and ``ANSWER`` is what the LLM is trained to write.

A receiver with knowledge bases (:mod:`semcom_cli.retrieval`) adds what it retrieved after the
instruction, one entry a line::

    INSTRUCTION
    Retrieved:
    - ENTRY
    - ENTRY<|im_end|>

Nothing retrieved (or no base) leaves the instruction as it is: the plain template.
"""

from __future__ import annotations

import re

__all__ = ["TEMPLATE", "SEM_PLACEHOLDER", "END_OF_TURN", "RETRIEVED_HEADER", "fill_template", "with_context",
           "normalize_answer"]

SEM_PLACEHOLDER = "<sem>"
END_OF_TURN = "<|im_end|>"
TEMPLATE = "<|im_start|>user\n[{task}] <sem>\n{instruction}<|im_end|>\n<|im_start|>assistant\n"
RETRIEVED_HEADER = "Retrieved:"


def with_context(instruction: str, context: list[str] | None) -> str:
    """The instruction followed by the retrieved entries (none: the instruction alone)."""
    if not context:
        return instruction
    return "\n".join([instruction, RETRIEVED_HEADER] + [f"- {' '.join(entry.split())}" for entry in context])


def fill_template(tag: str, instruction: str) -> tuple[str, str]:
    """The template split at the semantic tokens: (text before, text after)."""
    before, after = TEMPLATE.format(task=tag, instruction=instruction).split(SEM_PLACEHOLDER)
    return before, after


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation and surrounding space: what exact match compares."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))
