"""Tasks: a registry of what can be asked of the receiver, and the one template they share."""

from semcom_cli.tasks import vqa, caption, text, reconstruct  # noqa: F401,I001  (each registers its tasks; this order is the listing order)
from semcom_cli.tasks.base import MODALITIES, TASKS, Task, get_task, register_task, task_names
from semcom_cli.tasks.shapes import COLORS, SHAPES, caption_text, parse_caption
from semcom_cli.tasks.template import END_OF_TURN, SEM_PLACEHOLDER, TEMPLATE, fill_template, normalize_answer

__all__ = ["Task", "TASKS", "MODALITIES", "register_task", "get_task", "task_names", "TEMPLATE",
           "SEM_PLACEHOLDER", "END_OF_TURN", "fill_template", "normalize_answer", "COLORS", "SHAPES",
           "caption_text", "parse_caption"]
