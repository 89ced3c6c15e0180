"""A task: what the transmitter sends, what the LLM is asked, how items are drawn and scored.

Tasks are registered by name (:func:`register_task`); presets, flags and files name
them, and training, evaluation and the CLI ask the task instead of branching on its
name. Adding a task is one module with a subclass and one ``register_task`` call.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import check_question
from semcom_cli.core.registry import Registry
from semcom_cli.tasks.template import fill_template, normalize_answer, with_context

__all__ = ["Task", "TASKS", "register_task", "get_task", "task_names", "MODALITIES"]

MODALITIES = ("image", "text")
TASKS: Registry["Task"] = Registry("task")

# (packet key, instruction or None, reference answer): a packet key is an easy-vqa image id
# (image tasks) or the sentence itself (text tasks)
Item = tuple[Any, "str | None", str]


class Task:
    """One task. Subclasses set the class attributes and :meth:`items` / :meth:`train_sample`."""

    name: ClassVar[str] = ""
    modality: ClassVar[str] = "image"          # what the transmitter encodes: "image" or "text"
    instruction: ClassVar[str | None] = None   # the fixed instruction; None: the user asks a question
    trainable: ClassVar[bool] = True           # False: an evaluation-only task
    output: ClassVar[str] = "text"             # what the receiver gives: the LLM's answer, or an "image"
    metrics: ClassVar[tuple[str, ...]] = ("accuracy",)  # names in semcom_cli.evaluation.metrics

    @property
    def tag(self) -> str:
        """The task name the LLM reads in its prompt."""
        return self.name

    def prompt(self, instruction: str | None = None, context: list[str] | None = None) -> tuple[str, str]:
        """The template split at the semantic tokens: (text before, text after); ``context``: entries a
        knowledge base returned, shown after the instruction (:func:`.template.with_context`)."""
        if self.instruction is None:
            if not instruction or not instruction.strip():
                raise SemcomError(f"task '{self.name}' needs a question (--question)")
            instruction = " ".join(check_question(instruction).strip().split())
        else:
            instruction = self.instruction
        return fill_template(self.tag, with_context(instruction, context))

    def answer_tokens(self, max_text_tokens: int) -> int:
        """New tokens the LLM may write for an answer."""
        return 8

    def items(self, data) -> list[Item]:
        """Every evaluation item of an easy-vqa split, in a fixed order."""
        raise NotImplementedError

    def train_sample(self, data, rng: random.Random) -> Item:
        """One training sample drawn with ``rng``."""
        raise NotImplementedError

    def correct(self, prediction: str, reference: str) -> float:
        """1.0 when the answer is right (normalised exact match by default)."""
        return float(normalize_answer(prediction) == normalize_answer(reference))


def register_task(task: Task) -> Task:
    if task.modality not in MODALITIES:
        raise ValueError(f"task '{task.name}': modality must be one of {MODALITIES}")
    return TASKS.register(task.name, task)


def get_task(name: str) -> Task:
    return TASKS.lookup(name)


def task_names(trainable: bool | None = None) -> list[str]:
    """Registered task names (only the trainable ones, or only the evaluation-only ones)."""
    return TASKS.names(lambda t: trainable is None or t.trainable == trainable)
