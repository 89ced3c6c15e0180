"""Send an encoded file through the channel: symbols in, noisy symbols out (no model needed).

Given a share folder (from 'encode --share'), the public part is broadcast once and every
user receives it and its private part over its own channel: --snr and --channel take one
value for every user or one per user. The output folder gets, per user,
user-<u>.sem.safetensors and public.user-<u>.sem.safetensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import console, fail_cleanly, parse_floats, parse_names
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.outputs import FORCE_HELP

NAME = "transmit"


@fail_cleanly
def run(
    input: str = typer.Argument(..., help="Encoded semantic file ('-' for stdin), or a share folder."),
    output: str = typer.Option(..., "--output", "-o", help="Output file ('-' for stdout); a folder for a share set."),
    channel: str = typer.Option("awgn", "--channel", help="A channel (`semcom list channels`); a share set: "
                                                          "one per user, comma-separated."),
    snr: str = typer.Option("10", "--snr", help="Es/N0 per complex symbol, in dB (share set: one per user, "
                                                "comma-separated)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the channel's noise and fading."),
    rician_k: Optional[float] = typer.Option(None, "--rician-k", help="Rician K-factor (LOS/scattered power).",
                                             show_default="3.0"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.channel import check_snr, make_channel
    from semcom_cli.core.limits import check_seed
    from semcom_cli.core.outputs import check_output

    check_seed(seed, "--seed")
    if rician_k is not None and rician_k < 0:
        raise SemcomError(f"--rician-k must be ≥ 0 (got {rician_k})")
    params = {} if rician_k is None else {"rician_k": rician_k}  # the Rician channel's own default otherwise
    channels = [make_channel(c, params) for c in parse_names(channel)]
    if not channels:
        raise SemcomError("--channel needs at least one channel")
    if input != "-" and Path(input).is_dir():
        return _transmit_share(Path(input), Path(output), parse_floats(snr), channels, seed, force)
    if len(channels) > 1:
        raise SemcomError("one file goes over one channel: give one --channel")
    snr_db = check_snr(snr)
    from semcom_cli.io.semantic import SEMANTIC_OUTPUT, read_semantic, write_semantic
    from semcom_cli.link.transmit import transmit_file

    check_output(output, [input], kind=SEMANTIC_OUTPUT, force=force)
    sem = read_semantic(input, stage="encode")
    write_semantic(output, transmit_file(sem, channels[0], snr_db, seed, input))


def _transmit_share(folder: Path, output: Path, snrs: list[float], channels: list, seed: int,
                    force: bool = False) -> None:
    from semcom_cli.core.outputs import check_output, check_outputs
    from semcom_cli.io.semantic import write_semantic
    from semcom_cli.link.share_set import (
        PUBLIC_NAME,
        SHARE_SET_OUTPUT,
        private_name,
        read_share_set,
        received_public_name,
        transmit_share_set,
    )

    if str(output) == "-":
        raise SemcomError("a share set is sent to several files: give a folder with -o")
    check_output(output, [folder], kind=SHARE_SET_OUTPUT, force=force)
    public, private = read_share_set(folder)
    names = [name(u) for u in range(len(private)) for name in (received_public_name, private_name)]
    check_outputs([output / n for n in names], [folder / PUBLIC_NAME] + [folder / private_name(u)
                                                                        for u in range(len(private))])
    rx_public, rx_private, uses = transmit_share_set(public, private, snrs, channels, seed)
    for u, (pub, priv) in enumerate(zip(rx_public, rx_private)):  # each file atomically
        write_semantic(output / received_public_name(u), pub)
        write_semantic(output / private_name(u), priv)
    if "public_copies" in uses:  # a variable-rate set: the budget is spent, sharing buys copies
        console.print(f"{len(private)} users: public {uses['public']} channel uses (copies {uses['public_copies']}), "
                      f"private {uses['private']}; {uses['shared']} in all, budget {uses['separate']} → {output}/")
        return
    most = max(uses["public_repeats"], default=1)
    reps = "" if most == 1 else f" (tokens repeated ×{most} at most, for their worst user)"
    console.print(f"{len(private)} users: public {uses['public']} channel uses{reps}, private {uses['private']}; "
                  f"{uses['shared']} in all against {uses['separate']} sent separately "
                  f"({100 * uses['saving']:.1f}% fewer) → {output}/")
