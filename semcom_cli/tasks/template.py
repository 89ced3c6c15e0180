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
"""

from __future__ import annotations

import re

__all__ = ["TEMPLATE", "SEM_PLACEHOLDER", "END_OF_TURN", "fill_template", "normalize_answer"]

SEM_PLACEHOLDER = "<sem>"
END_OF_TURN = "<|im_end|>"
TEMPLATE = "<|im_start|>user\n[{task}] <sem>\n{instruction}<|im_end|>\n<|im_start|>assistant\n"


def fill_template(tag: str, instruction: str) -> tuple[str, str]:
    """The template split at the semantic tokens: (text before, text after)."""
    before, after = TEMPLATE.format(task=tag, instruction=instruction).split(SEM_PLACEHOLDER)
    return before, after


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation and surrounding space: what exact match compares."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))
