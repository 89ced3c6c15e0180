"""``finetune --stage federated``: federated split fine-tuning on Flower (semcom_cli.federated)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import checkpoint_folder, console, spinner
from semcom_cli.core.errors import SemcomError

ENGINES = ("simulation", "deployment")


def federated_overrides(clients: Optional[int], rounds: Optional[int], engine: str, steps: Optional[int],
                        batch_size: Optional[int], lr: Optional[float], save_every: Optional[int],
                        device: Optional[str], privacy: dict | None = None) -> dict:
    """The command's federated flags as ``train.federated.*`` overrides, or one line saying which is wrong
    (what the flags are checked against is the preset's ``FederatedTrain``)."""
    if engine not in ENGINES:
        raise SemcomError(f"unknown engine '{engine}' (choose from: {', '.join(ENGINES)})")
    if lr is not None:
        raise SemcomError("--lr: federated training has its own rates (train.federated.lr_front, lr_back, lr_lora)")
    if device not in (None, "cpu"):
        raise SemcomError("--stage federated runs on the CPU (devices and server share this machine)")
    overrides = {"clients": clients, "rounds": rounds, "local_steps": steps, "batch_size": batch_size,
                 "save_every": save_every, **(privacy or {})}
    return {f"train.federated.{k}": v for k, v in overrides.items() if v is not None}


def federated_stage(output: Path, checkpoint: Optional[Path], clients: Optional[int], rounds: Optional[int],
                    engine: str, steps: Optional[int], batch_size: Optional[int], lr: Optional[float],
                    save_every: Optional[int], resume: bool, device: Optional[str], force: bool = False,
                    privacy: dict | None = None) -> None:
    from rich.table import Table

    from semcom_cli.core.files import partial_path, refuse_foreign_partial
    from semcom_cli.core.outputs import check_output
    from semcom_cli.io.checkpoint import checkpoint_output

    overrides = federated_overrides(clients, rounds, engine, steps, batch_size, lr, save_every, device, privacy)
    refuse_foreign_partial(output, resume)
    from semcom_cli.federated.app import FederatedJob
    from semcom_cli.core.processes import Terminated, sigterm_raises
    from semcom_cli.system import SemcomModel

    if resume:
        if overrides:
            raise SemcomError(f"--resume continues a run with its own settings; drop "
                              f"{', '.join('--' + k.split('.')[-1].replace('_', '-') for k in overrides)}")
        saved = partial_path(output) / "checkpoint"
        if not (partial_path(output) / "resume.safetensors").is_file():
            raise SemcomError(f"{partial_path(output)}: no partial run to resume (no resume.safetensors)")
        check_output(output, [saved], kind=checkpoint_output("semcom"), force=force)
        cfg = SemcomModel.from_pretrained(saved).preset.train.federated  # checks the saved checkpoint
        source = str(saved)
    else:
        source = str(checkpoint_folder(checkpoint))
        check_output(output, [Path(source)], kind=checkpoint_output("semcom"), force=force)
        model = SemcomModel.from_pretrained(source, overrides)  # checks the checkpoint and the settings
        if model.compression is not None:
            raise SemcomError(f"{source}: a compressed checkpoint; fine-tune the checkpoint it was made from")
        cfg = model.preset.train.federated
    job = FederatedJob(source, str(output), overrides, resume, engine)
    try:
        # SIGTERM ends the run as Ctrl-C does: every Flower process and Ray ended, the run's folder removed
        with sigterm_raises(), spinner(f"federated: {cfg.clients} devices × {cfg.rounds} rounds × "
                                             f"{cfg.local_steps} steps ({engine} engine)"):
            if engine == "simulation":
                from semcom_cli.federated.run import run_in_simulation

                summary = run_in_simulation(job, cfg.clients)
            else:
                from semcom_cli.federated.deployment import run_in_deployment

                run_in_deployment(job, cfg.clients)
                from semcom_cli.system.checkpoint import read_manifest

                summary = read_manifest(output)["training"]["stages"][-1] | {"hash": read_manifest(output)["hash"]}
    except Terminated:
        print("semcom: terminated (the run's processes are stopped; a partial run, if any, is kept)",
              file=sys.stderr)
        raise typer.Exit(143)
    table = Table(title=f"federated → {output}")
    for key in ("engine", "clients", "rounds", "local_steps", "steps", "first_loss", "final_loss", "seconds"):
        value = summary[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    per = summary["bytes_per_round_per_device"]
    table.add_row("MB per round per device", ", ".join(f"{k} {v / 1e6:.3f}" for k, v in per.items()))
    table.add_row("devices dropped", str(len(summary["dropped"])))
    table.add_row("labels", "stay on the devices (U-shaped)" if summary.get("u_shaped") else "sent to the server")
    table.add_row("secure aggregation", "SecAgg+" if summary.get("secure_aggregation") else "no")
    privacy = summary.get("privacy") or {}
    if privacy.get("clip") is not None:
        epsilon = privacy["epsilon"] if privacy["epsilon"] == "inf" else f"{privacy['epsilon']:.2f}"
        table.add_row("differential privacy", f"ε = {epsilon} at δ = {privacy['delta']:g} (noise "
                      f"{privacy['noise_multiplier']:g}, clip {privacy['clip']:g}, {privacy['releases']} rounds)")
    table.add_row("checkpoint hash", summary["hash"][:16] + "…")
    console.print(table)
