"""Shared by ``align`` and ``finetune``: run a training stage with a progress bar, save the checkpoint."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from ..errors import SemcomError
from .common import console, progress_bar, spinner


def train_and_save(model, stage: str, output: Path, history: list[dict]) -> None:
    from ..checkpoint import save_checkpoint
    from ..data import EasyVQA
    from ..training import run_stage

    cfg = getattr(model.preset.train, stage)
    if output.exists() and not (output / "manifest.json").is_file():
        raise SemcomError(f"{output}: exists and is not a checkpoint; refusing to overwrite it")
    with spinner("loading the LLM and easy-vqa") as status:
        llm = model.get_llm(status)
        data = EasyVQA.load("train")
    with progress_bar(f"{stage}", cfg.steps) as update:
        def on_step(step, total, loss):
            if step % cfg.log_every == 0 or step == total:
                update(step, total, f"loss {loss:.4f}")

        summary = run_stage(stage, model, llm, data, on_step)
    digest = save_checkpoint(model, output, training={"stages": history + [summary]})
    table = Table(title=f"{stage} → {output}")
    for key in ("steps", "batch_size", "lr", "first_loss", "final_loss", "seconds"):
        value = summary[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("checkpoint hash", digest[:16] + "…")
    console.print(table)
