"""Stages 2-4: train the channel codec through the channel, LoRA instruction tuning, or the codec at variable rates."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import SemcomError
from .common import checkpoint_folder, checkpoint_option, device_option, fail_cleanly
from .stage import train_and_save

NAME = "finetune"


@fail_cleanly
def run(
    stage: str = typer.Option(..., "--stage", "-s", help="channel | instruct | rate"),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint folder to write."),
    checkpoint: Optional[Path] = checkpoint_option(),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override train.<stage>.steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override train.<stage>.batch_size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Override train.<stage>.lr."),
    save_every: Optional[int] = typer.Option(None, "--save-every",
                                             help="Write OUTPUT.partial every N steps (override train.<stage>.save_every)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue the partial run at OUTPUT.partial (its own input and settings)."),
    device: Optional[str] = device_option(),
):
    if stage not in ("channel", "instruct", "rate"):
        raise SemcomError(f"unknown stage '{stage}' (choose from: channel, instruct, rate; 'semcom align' is stage 1)")
    if resume:
        from .stage import resume_from

        model, state, history = resume_from(output, stage, {"--steps": steps, "--batch-size": batch_size,
                                                            "--lr": lr, "--save-every": save_every}, device)
        train_and_save(model, stage, output, history, resume=state)
        return
    from ..limits import check_output
    from ..models import SemcomModel
    from ..models.checkpoint import read_history

    check_output(output, [checkpoint_folder(checkpoint)], folder=True)
    model = SemcomModel.from_pretrained(
        checkpoint, {f"train.{stage}.steps": steps, f"train.{stage}.batch_size": batch_size,
                     f"train.{stage}.lr": lr, f"train.{stage}.save_every": save_every}, device)
    train_and_save(model, stage, output, read_history(checkpoint_folder(checkpoint)))
