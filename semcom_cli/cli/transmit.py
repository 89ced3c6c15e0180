"""Send an encoded file through the channel: symbols in, noisy symbols out (no model needed)."""

from __future__ import annotations

import torch
import typer

from ..channel import check_channel, check_snr, seed_channel
from ..errors import SemcomError
from ..formats import SemanticFile, read_semantic, write_semantic
from ..pipeline import send
from .common import fail_cleanly

NAME = "transmit"


@fail_cleanly
def run(
    input: str = typer.Argument(..., help="Encoded semantic file ('-' for stdin)."),
    output: str = typer.Option(..., "--output", "-o", help="Output file ('-' for stdout)."),
    channel: str = typer.Option("awgn", "--channel", help="awgn | rayleigh | rician | none"),
    snr: str = typer.Option("10", "--snr", help="Es/N0 per complex symbol, in dB."),
    seed: int = typer.Option(0, "--seed", help="Seed of the channel's noise and fading."),
    rician_k: float = typer.Option(3.0, "--rician-k", help="Rician K-factor (LOS/scattered power)."),
):
    channel = check_channel(channel)
    snr_db = check_snr(snr)
    if rician_k < 0:
        raise SemcomError(f"--rician-k must be ≥ 0 (got {rician_k})")
    sem = read_semantic(input, stage="encode")
    seed_channel(seed)
    y, h = send(sem.tensors["symbols"][None], snr_db, channel, rician_k)
    meta = {**sem.meta, "stage": "transmit", "channel": channel, "snr_db": snr_db, "seed": seed}
    if channel == "rician":
        meta["rician_k"] = rician_k
    out = SemanticFile({"symbols": y[0], "gain": torch.view_as_real(h[0])}, meta)
    write_semantic(output, out)
