"""How well a checkpoint answers questions about pictures, through the channel: the adapted domain's
test set (:func:`.domain.domain_test_set`) and easy-vqa's own test questions (what must not be lost)."""

from __future__ import annotations

import random

import torch

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.data.domains import STYLES, domain_test_set
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.system import SemcomModel
from semcom_cli.tasks import get_task

__all__ = ["vqa_accuracy", "domain_accuracy", "easy_vqa_accuracy"]


@torch.no_grad()
def vqa_accuracy(model: SemcomModel, images: torch.Tensor, questions: list[str], answers: list[str],
                 channel: str = "awgn", snr_db: float = 5.0, seed: int = 0, batch_size: int = 64) -> list[float]:
    """Each question's correctness (1.0 / 0.0) when its picture is sent at ``snr_db`` over ``channel``."""
    link = make_channel(channel, model.preset.channel.model_dump(), model.device)
    seed_channel(seed)
    task, right = get_task("vqa"), []
    for start in range(0, len(questions), batch_size):
        rows = slice(start, start + batch_size)
        tokens, mask = model.image_tokens(images[rows])
        y, h = link.send(model.encode(tokens, mask, "image"), snr_db)
        received = model.receive(y, h, snr_db, mask, "image")
        n = len(questions[rows])
        predictions = model.answer(["vqa"] * n, questions[rows], received, mask)
        right += [task.correct(p, a) for p, a in zip(predictions, answers[rows])]
    return right


def domain_accuracy(model: SemcomModel, per_style: int = 120, channel: str = "awgn", snr_db: float = 5.0,
                    seed: int = 1) -> dict:
    """VQA accuracy on the adapted domain's test set, overall and per style."""
    images, _, questions, answers = domain_test_set(per_style, seed)
    right = vqa_accuracy(model, images, questions, answers, channel, snr_db, seed)
    by_style = {style: sum(right[i * per_style:(i + 1) * per_style]) / per_style for i, style in enumerate(STYLES)}
    return {"accuracy": sum(right) / len(right), "by_style": by_style, "questions": len(right)}


def easy_vqa_accuracy(model: SemcomModel, limit: int = 500, channel: str = "awgn", snr_db: float = 5.0,
                      seed: int = 0) -> dict:
    """VQA accuracy on a seeded sample of easy-vqa's test questions."""
    data = EasyVQA.load("test")
    rows = sorted(random.Random(f"federated-easy-vqa:{seed}").sample(range(len(data.questions)),
                                                                     min(limit, len(data.questions))))
    images = data.batch_images(data.image_ids[i] for i in rows)
    right = vqa_accuracy(model, images, [data.questions[i] for i in rows], [data.answers[i] for i in rows],
                         channel, snr_db, seed)
    return {"accuracy": sum(right) / len(right), "questions": len(right)}
