"""Stage 1, multi-modal alignment: train the vision encoder and KAN projector (LLM frozen)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import device_option, fail_cleanly
from semcom_cli.cli.stage import train_and_save
from semcom_cli.core.outputs import FORCE_HELP

NAME = "align"


@fail_cleanly
def run(
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint folder to write."),
    preset: str = typer.Option("smollm2", "--preset", "-p", help="Preset name (presets/) or YAML path."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override train.align.steps."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override train.align.batch_size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Override train.align.lr."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the preset's seed."),
    save_every: Optional[int] = typer.Option(None, "--save-every",
                                             help="Write OUTPUT.partial every N steps (override train.align.save_every)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the partial run at OUTPUT.partial."),
    device: Optional[str] = device_option(),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.cli.common import spinner
    from semcom_cli.config.preset import apply_overrides, load_preset
    from semcom_cli.core.outputs import check_output
    from semcom_cli.core.runtime import resolve_device
    from semcom_cli.io.checkpoint import checkpoint_output
    from semcom_cli.models import load_backbone
    from semcom_cli.system import SemcomModel

    check_output(output, [], kind=checkpoint_output("semcom"), force=force or resume)
    if resume:
        from semcom_cli.cli.stage import resume_from

        model, state, history = resume_from(output, "align", {"--steps": steps, "--batch-size": batch_size,
                                                              "--lr": lr, "--seed": seed, "--save-every": save_every},
                                            device)
        train_and_save(model, "align", output, history, resume=state)
        return
    cfg = apply_overrides(load_preset(preset), {"seed": seed, "train.align.steps": steps,
                                                "train.align.batch_size": batch_size, "train.align.lr": lr,
                                                "train.align.save_every": save_every, "device": device})
    with spinner("loading the LLM") as status:
        llm = load_backbone(cfg.backbone, cfg.seed, status=status, device=resolve_device(cfg.device))
    model = SemcomModel(cfg, llm.embed_dim)
    model.llm = llm
    train_and_save(model, "align", output, history=[])
