"""Send an encoded file through the channel: symbols in, noisy symbols out (no model needed).

Given a share folder (from 'encode --share'), the public part is broadcast once and every
user receives it and its private part over its own channel: --snr and --channel take one
value for every user or one per user. The output folder gets, per user,
user-<u>.sem.safetensors and public.user-<u>.sem.safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from ..channel import check_channel, check_snr, seed_channel
from ..errors import SemcomError
from ..formats import SemanticFile, read_semantic, write_semantic
from ..pipeline import send
from .common import console, fail_cleanly, parse_floats, parse_names

NAME = "transmit"


@fail_cleanly
def run(
    input: str = typer.Argument(..., help="Encoded semantic file ('-' for stdin), or a share folder."),
    output: str = typer.Option(..., "--output", "-o", help="Output file ('-' for stdout); a folder for a share set."),
    channel: str = typer.Option("awgn", "--channel", help="awgn | rayleigh | rician | none (share set: one per user, "
                                                          "comma-separated)"),
    snr: str = typer.Option("10", "--snr", help="Es/N0 per complex symbol, in dB (share set: one per user, "
                                                "comma-separated)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the channel's noise and fading."),
    rician_k: float = typer.Option(3.0, "--rician-k", help="Rician K-factor (LOS/scattered power)."),
):
    if rician_k < 0:
        raise SemcomError(f"--rician-k must be ≥ 0 (got {rician_k})")
    if input != "-" and Path(input).is_dir():
        return _transmit_share(Path(input), Path(output), snr, channel, seed, rician_k)
    channel = check_channel(channel)
    snr_db = check_snr(snr)
    sem = read_semantic(input, stage="encode")
    if "share_id" in sem.meta:
        raise SemcomError(f"{input}: part of a share set; transmit the whole folder "
                          "(semcom transmit FOLDER -o OUT --snr s0,s1,...)")
    seed_channel(seed)
    y, h = send(sem.tensors["symbols"][None], snr_db, channel, rician_k)
    meta = {**sem.meta, "stage": "transmit", "channel": channel, "snr_db": snr_db, "seed": seed}
    if channel == "rician":
        meta["rician_k"] = rician_k
    out = SemanticFile({"symbols": y[0], "gain": torch.view_as_real(h[0])}, meta)
    write_semantic(output, out)


def _transmit_share(folder: Path, output: Path, snr: str, channel: str, seed: int, rician_k: float) -> None:
    from ..multiuser import private_name, read_share_set, received_public_name, transmit_share_set

    snrs = parse_floats(snr)
    channels = [check_channel(c) for c in parse_names(channel)]
    if not channels:
        raise SemcomError("--channel needs at least one channel")
    if output.exists() and not output.is_dir():
        raise SemcomError(f"{output}: exists and is not a folder")
    public, private = read_share_set(folder)
    rx_public, rx_private, uses = transmit_share_set(public, private, snrs, channels, seed, rician_k)
    for u, (pub, priv) in enumerate(zip(rx_public, rx_private)):  # each file atomically
        write_semantic(output / received_public_name(u), pub)
        write_semantic(output / private_name(u), priv)
    most = max(uses["public_repeats"], default=1)
    reps = "" if most == 1 else f" (tokens repeated ×{most} at most, for their worst user)"
    console.print(f"{len(private)} users: public {uses['public']} channel uses{reps}, private {uses['private']}; "
                  f"{uses['shared']} in all against {uses['separate']} sent separately "
                  f"({100 * uses['saving']:.1f}% fewer) → {output}/")
