"""The link as a library call: an encoded file through the channel, a received file out.

Needs no model: ``semcom transmit`` imports this, the channel and the file formats only.
"""

from __future__ import annotations

import torch

from semcom_cli.channel import Channel, check_snr, gain_to_real, seed_channel, send_repeated
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import check_seed
from semcom_cli.io.semantic import SemanticFile

__all__ = ["transmit_file"]


def transmit_file(sem: SemanticFile, channel: Channel, snr_db: float, seed: int, source: str = "input") -> SemanticFile:
    """Send one encoded packet through ``channel`` at ``snr_db`` with the channel seeded by ``seed``."""
    if sem.header.share_id is not None:
        raise SemcomError(f"{source}: part of a share set; transmit the whole folder "
                          "(semcom transmit FOLDER -o OUT --snr s0,s1,...)")
    seed_channel(check_seed(seed))
    symbols = sem.tensors["symbols"][None].to(channel.device)
    if sem.header.copies is not None:  # a variable-rate packet: each token's copies, combined (MRC)
        copies = torch.tensor(sem.header.copies, device=channel.device)[None]
        y, h = send_repeated(channel, symbols, copies, check_snr(snr_db))
    else:
        y, h = channel.send(symbols, check_snr(snr_db))
    if not bool(torch.isfinite(y).all()):
        raise SemcomError(f"{source}: the channel output is not finite at {snr_db:g} dB")
    header = sem.header.received(channel=channel.name, snr_db=snr_db, seed=seed, **channel.params())
    return SemanticFile({"symbols": y[0], "gain": gain_to_real(h[0])}, header)
