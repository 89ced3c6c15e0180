"""Stages 2-4: train the channel codec through the channel, LoRA instruction tuning, or the codec at variable rates.

The reconstruct task's checkpoint (MLLM-SC) has stages of its own: ``guidance`` (the referent
parser on SmolLM2's reading of queries, and the image network that marks the referent),
``guide-checks`` (the parser and the presence check alone, with their "unknown" and "not found" thresholds) and
``image-codec`` (the dual-path encoder and its decoder); ``make checkpoint-scenes`` runs both. Its
generative decoder adds ``image-vae`` (fast mode), ``image-diffusion`` (quality mode)
and ``scene-features`` (the classifier behind the KID measure); ``make checkpoint-generative``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import checkpoint_folder, device_option, fail_cleanly
from semcom_cli.cli.stage import train_and_save
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.resources import DEFAULT_CHECKPOINT_NAME
from semcom_cli.core.outputs import FORCE_HELP

NAME = "finetune"


@fail_cleanly
def run(
    stage: str = typer.Option(..., "--stage", "-s", help="A training stage; `semcom list stages` lists them."),
    output: Path = typer.Option(..., "--output", "-o", help="Checkpoint folder to write."),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint folder to start from. The reconstruct task's stages read a "
                                         "reconstruct checkpoint instead: guidance starts one (no -c); the others "
                                         "add to -c, or to -o when it holds one (e.g. checkpoints/semcom-scenes).",
        show_default=f"checkpoints/{DEFAULT_CHECKPOINT_NAME}; reconstruct stages: -o"),
    steps: Optional[int] = typer.Option(None, "--steps",
                                        help="Override train.<stage>.steps (federated: local_steps per round)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override train.<stage>.batch_size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Override train.<stage>.lr."),
    save_every: Optional[int] = typer.Option(
        None, "--save-every", help="Write OUTPUT.partial every N steps, rounds for federated (override "
                                   "train.<stage>.save_every)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue the partial run at OUTPUT.partial (its own input and settings)."),
    device: Optional[str] = device_option(),
    clients: Optional[int] = typer.Option(None, "--clients",
                                          help="federated: devices (override train.federated.clients)."),
    rounds: Optional[int] = typer.Option(None, "--rounds",
                                         help="federated: rounds (override train.federated.rounds)."),
    engine: str = typer.Option("simulation", "--engine", help="federated: Flower's simulation | deployment engine."),
    u_shaped: bool = typer.Option(False, "--u-shaped", help="federated: labels stay on the device (the server returns "
                                                            "label-free scores, the device computes the loss)."),
    secagg: bool = typer.Option(False, "--secagg", help="federated: average the fronts with Flower's SecAgg+ "
                                                        "(the server learns only their sum)."),
    dp_noise: Optional[float] = typer.Option(None, "--dp-noise", help="federated: differential privacy's noise "
                                             "multiplier (Gaussian, on the averaged front); needs --dp-clip."),
    dp_clip: Optional[float] = typer.Option(None, "--dp-clip", help="federated: the L2 norm each device's update is "
                                            "clipped to (Flower's fixedclipping_mod)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.cli.registries import load_all
    from semcom_cli.training.stages import STAGES

    load_all()  # the reconstruct and federated parts register their stages
    family = STAGES.lookup(stage).family
    if stage == "align":
        raise SemcomError("--stage align: stage 1 is its own command, 'semcom align'")
    if family != "federated" and (clients is not None or rounds is not None or engine != "simulation" or secagg
                                  or u_shaped or dp_noise is not None or dp_clip is not None):
        raise SemcomError("--clients, --rounds, --engine, --u-shaped, --secagg, --dp-noise and --dp-clip are for "
                          "--stage federated")
    if family == "federated":
        from semcom_cli.cli.federated import federated_stage

        privacy = {"u_shaped": u_shaped or None, "secure_aggregation": secagg or None, "dp_noise": dp_noise,
                   "dp_clip": dp_clip}
        return federated_stage(output, checkpoint, clients, rounds, engine, steps, batch_size, lr, save_every,
                               resume, device, force=force, privacy=privacy)
    if family in ("reconstruct", "generative"):
        return _reconstruct_stage(stage, output, checkpoint, steps, batch_size, lr, save_every, resume, force=force,
                                  device=device)
    if resume:
        from semcom_cli.cli.stage import resume_from
        from semcom_cli.core.outputs import check_output
        from semcom_cli.io.checkpoint import checkpoint_output

        # a resumed run finishes the output it was started for: only its own kind is replaced
        check_output(output, [], kind=checkpoint_output("semcom"), force=True)
        model, state, history = resume_from(output, stage, {"--steps": steps, "--batch-size": batch_size,
                                                            "--lr": lr, "--save-every": save_every}, device)
        train_and_save(model, stage, output, history, resume=state)
        return
    from semcom_cli.core.outputs import check_output
    from semcom_cli.io.checkpoint import checkpoint_output
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import read_history

    check_output(output, [checkpoint_folder(checkpoint)], kind=checkpoint_output("semcom"), force=force)
    model = SemcomModel.from_pretrained(
        checkpoint, {f"train.{stage}.steps": steps, f"train.{stage}.batch_size": batch_size,
                     f"train.{stage}.lr": lr, f"train.{stage}.save_every": save_every}, device)
    if model.compression is not None:
        made_from = model.compression.get("source", {}).get("name")
        raise SemcomError(f"{checkpoint}: a compressed checkpoint; fine-tune the checkpoint it was made from "
                          f"({made_from})")
    train_and_save(model, stage, output, read_history(checkpoint_folder(checkpoint)))


def _reconstruct_stage(stage: str, output: Path, checkpoint: Optional[Path], steps: Optional[int],
                       batch_size: Optional[int], lr: Optional[float], save_every: Optional[int], resume: bool,
                       force: bool = False, device: Optional[str] = None) -> None:
    from semcom_cli.cli.common import console, progress_bar
    from semcom_cli.config.base import with_changes
    from semcom_cli.core.outputs import check_output
    from semcom_cli.io.checkpoint import checkpoint_output
    from semcom_cli.reconstruct.codec_stages import build_checks, build_codec, build_guidance
    from semcom_cli.reconstruct.generative_stages import build_generative, default_settings
    from semcom_cli.reconstruct.guidance.store import GuideChecksTrain
    from semcom_cli.reconstruct.guidance.train import GuidanceTrain
    from semcom_cli.reconstruct.imaging.train import CodecTrain
    from semcom_cli.training.stages import STAGES

    overrides = {"steps": steps, "batch_size": batch_size, "lr": lr}
    if device is not None and stage != "image-codec":
        raise SemcomError(f"--device: of the image stages only image-codec runs on a chosen device; "
                          f"--stage {stage} trains on the CPU")
    if device is not None:
        from semcom_cli.core.runtime import resolve_device

        resolve_device(device)  # a device this machine lacks is one line, before anything starts
    if resume and any(v is not None for v in (*overrides.values(), save_every)):
        raise SemcomError("--resume continues a run with its own settings; drop the other training flags")
    for flag, value in overrides.items():
        if value is not None and value <= 0:
            raise SemcomError(f"--{flag.replace('_', '-')} must be positive (got {value})")
    if save_every is not None and save_every <= 0:
        raise SemcomError(f"--save-every must be positive (got {save_every})")
    generative = STAGES[stage].family == "generative"
    if generative:
        if checkpoint is None and not resume and not (output / "manifest.json").is_file():
            raise SemcomError(f"--stage {stage} adds to a reconstruct checkpoint: give -c CKPT (for example "
                              f"checkpoints/semcom-scenes)")
        cfg = default_settings(stage)
    elif stage == "guide-checks":
        if resume or save_every is not None:
            raise SemcomError("--stage guide-checks takes minutes and keeps no partial runs: drop --resume and "
                              "--save-every")
        if checkpoint is None and not (output / "manifest.json").is_file():
            raise SemcomError("--stage guide-checks retrains the guide's checks of a reconstruct checkpoint: give "
                              "-c CKPT (for example checkpoints/semcom-scenes)")
        cfg = GuideChecksTrain()
    else:
        cfg = (GuidanceTrain() if stage == "guidance" else CodecTrain())
    cfg = with_changes(cfg, "flags", **{k: v for k, v in overrides.items() if v is not None})
    adds_to_input = checkpoint is not None and Path(checkpoint).resolve() == Path(output).resolve()
    if not resume and not adds_to_input:  # -c X -o X adds the stage to X (written atomically)
        check_output(output, [checkpoint], kind=checkpoint_output("reconstruct"), force=force)
    if not resume:  # refused before the progress bar starts: the refusal is the one line printed
        from semcom_cli.core.files import refuse_foreign_partial
        from semcom_cli.training.memory import check_memory

        refuse_foreign_partial(output, resume)
        check_memory(f"stage {stage}", cfg.memory())
    total = getattr(cfg, "total_steps", cfg.steps)  # guide-checks: the parser's steps, then the presence check's
    with progress_bar(stage, total) as update:
        def on_log(step, loss, seconds):
            update(step, total, f"loss {loss:.4f}")

        if generative:
            digest = build_generative(stage, output, checkpoint, cfg, resume, save_every or 250, on_log)
        elif stage == "guidance":
            if checkpoint is not None:
                raise SemcomError("--stage guidance starts a reconstruct checkpoint: it takes no --checkpoint")
            digest = build_guidance(output, cfg, resume, save_every or 250, on_log)
        elif stage == "guide-checks":
            digest = build_checks(output, checkpoint, cfg, on_log)
        else:
            digest = build_codec(output, checkpoint, cfg, resume, save_every or 250, on_log, device or "cpu")
    console.print(f"{stage} → {output} (checkpoint hash {digest[:16]}…)")
