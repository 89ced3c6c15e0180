"""The side information of a guided packet: its ROI box, sent ahead of the image's symbols.

:data:`~.allocation.BOX_BITS` bits (a flag "there is a ROI", then x0, y0, x1, y1 in 3 bits each,
then zeros), coded with 5G NR LDPC at rate 1/3 and mapped to QPSK with Sionna (the digital
baseline's blocks, :mod:`semcom_cli.channel.digital`), so :data:`~.allocation.SIDE_USES` complex
symbols at power 1. The receiver demaps them (exact LLRs after one-tap equalisation) and decodes;
bits that decode to no valid box read as "no ROI".
"""

from __future__ import annotations

import torch

from semcom_cli.channel.digital import _ldpc, _qam, demap
from semcom_cli.channel.message_link import from_bits, to_bits
from semcom_cli.io.patches import BOX_BITS, SIDE_USES, Box

__all__ = ["box_bits", "bits_box", "side_symbols", "read_side"]

_Q = 2  # QPSK


def box_bits(box: Box | None) -> torch.Tensor:
    bits = torch.zeros(BOX_BITS)
    if box is not None:
        bits[0] = 1
        bits[1:13] = to_bits(box.to_json(), 3)
    return bits


def bits_box(bits: torch.Tensor) -> Box | None:
    if bits[0] < 0.5:
        return None
    values = from_bits((bits[1:13] > 0.5).float(), 3)
    try:
        return Box(*values)
    except ValueError:
        return None


def side_symbols(boxes: list[Box | None]) -> torch.Tensor:
    """One box per packet → [B, SIDE_USES] complex64 QPSK symbols."""
    encoder, _ = _ldpc(BOX_BITS, SIDE_USES * _Q, _Q)
    mapper, _ = _qam(_Q)
    return mapper(encoder(torch.stack([box_bits(b) for b in boxes]))).reshape(len(boxes), SIDE_USES)


def read_side(y: torch.Tensor, h: torch.Tensor, snr_db: float) -> list[Box | None]:
    """Received side symbols [B, SIDE_USES] complex and their gains ([B] or [B, SIDE_USES]) → boxes."""
    _, decoder = _ldpc(BOX_BITS, SIDE_USES * _Q, _Q)
    return [bits_box(row) for row in decoder(demap(y, h, snr_db, _Q))]
