"""Shared by ``align`` and ``finetune``: run a training stage with a progress bar, save the checkpoint.

While a stage runs it writes a partial run to ``<output>.partial`` every
``train.<stage>.save_every`` steps; ``--resume`` continues from there, and the
partial run is removed once the checkpoint is written.
"""

from __future__ import annotations

from pathlib import Path

from semcom_cli.cli.common import console, progress_bar, spinner
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import partial_path, refuse_foreign_partial


def resume_from(output: Path, stage: str, overrides: dict, device: str | None = None):
    """(model, resume state, history) of the partial run beside ``output``."""
    from semcom_cli.training.partial import load_partial

    given = [flag for flag, value in overrides.items() if value is not None]
    if given:
        raise SemcomError(f"--resume continues a run with its own settings; drop {', '.join(given)}")
    return load_partial(partial_path(output), stage, device)


def train_and_save(model, stage: str, output: Path, history: list[dict], resume=None) -> None:
    from rich.table import Table

    from semcom_cli.core.distributed import current_shard
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.training.partial import finish_partial, save_partial
    from semcom_cli.training.stages import run_stage
    from semcom_cli.training.trainer import Checkpointing

    cfg = getattr(model.preset.train, stage)
    from semcom_cli.training.memory import check_memory, preset_stage_need

    check_memory(f"stage {stage}", preset_stage_need(model, stage, cfg))  # before the LLM and data load
    refuse_foreign_partial(output, resume is not None)  # it removes only the partial run it made
    partial = partial_path(output)
    with spinner("loading the LLM and easy-vqa") as status:
        llm = model.get_llm(status)
        data = EasyVQA.load("train")
    if resume is not None:
        console.print(f"resuming {stage} at step {resume.step} of {cfg.steps} from {partial}")
    shard = current_shard()  # under torchrun: every process trains, the first one writes
    checkpointing = Checkpointing(
        cfg.save_every, (lambda state: save_partial(partial, model, stage, state, history)) if shard.is_main else None,
        resume)
    with progress_bar(f"{stage}", cfg.steps, show=shard.is_main) as update:
        def on_step(step, total, loss):
            if step % cfg.log_every == 0 or step == total:
                update(step, total, f"loss {loss:.4f}")

        summary = run_stage(stage, model, llm, data, on_step, checkpointing)
    if not shard.is_main:
        shard.barrier()
        return
    if shard.world > 1:
        summary["processes"] = shard.world
    digest = model.save_pretrained(output, training={"stages": history + [summary]})
    finish_partial(partial)  # the finished checkpoint supersedes it
    table = Table(title=f"{stage} → {output}")
    for key in ("steps", "batch_size", "lr", "first_loss", "final_loss", "seconds"):
        value = summary[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("checkpoint hash", digest[:16] + "…")
    console.print(table)
    shard.barrier()
