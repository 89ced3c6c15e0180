"""Reconstruct (MLLM-SC): send a picture so that the region the user's query names arrives best.

Unlike the other tasks the receiver's output is an image, not the LLM's answer, and the packets come
from the reconstruct checkpoint's dual-path codec (:mod:`semcom_cli.reconstruct.imaging`), not from the VQA
checkpoint; the LLM reads the query at the transmitter (:mod:`semcom_cli.reconstruct.guidance`). Its items are
scenes of the scene generator's test split with their referring queries (:mod:`semcom_cli.data.scenes`).
"""

from __future__ import annotations

from semcom_cli.tasks.base import Task, register_task

__all__ = ["Reconstruct"]


class Reconstruct(Task):
    name = "reconstruct"
    output = "image"
    trainable = False  # trained by its own stages (finetune --stage guidance | image-codec), not instruct
    metrics = ("psnr", "roi_psnr", "ssim", "roi_ssim", "iou", "vqa_accuracy")

    def items(self, data):
        raise NotImplementedError("reconstruct items are scenes: semcom_cli.evaluation.reconstruct")


register_task(Reconstruct())
