"""The side information of a guided packet: its ROI box, sent ahead of the image's symbols.

:data:`~semcom_cli.io.patches.BOX_BITS` bits (a flag "there is a ROI", then x0, y0, x1, y1 in 3 bits
each, then zeros), coded with 5G NR LDPC and mapped to QPSK with Sionna (the digital baseline's
blocks, :mod:`semcom_cli.channel.digital`). A misread box misplaces every symbol of the packet, so the
box is the packet's weakest link; two things make it hold at low SNR:

- **Maximum-likelihood decoding among the boxes that exist.** Only 1,297 of the 65,536 messages are
  boxes ("no ROI" and the 36 × 36 column and row spans), so the receiver scores each one's codeword
  against the LLRs and takes the best, instead of belief propagation over every 16-bit word (at
  0 dB on AWGN in 24 uses, BP misread 25 % of boxes).
- **A longer code when the reported SNR is low** (:func:`side_uses_for`): 24 uses at rate 1/3 from
  6 dB up, 48 from 0 dB, 96 below (:data:`ROBUST_FROM_DB`). Up to 40 uses the codeword is LDPC's
  own (at most rate 1/5); beyond, it is repeated (5G rate matching's circular buffer) and the
  receiver adds the repeats' LLRs.

The bits are not scrambled: a 24-use packet's side symbols are the same as before ML decoding came,
so packets written then decode (better) now. The box's error rate per SNR and channel is measured
by ``benchmarks/side_information.py``.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from semcom_cli.channel.digital import _ldpc, _qam, demap
from semcom_cli.channel.message_link import from_bits, to_bits
from semcom_cli.io.patches import BOX_BITS, GRID, SIDE_USES, SIDE_USES_CHOICES, Box

__all__ = ["box_bits", "bits_box", "side_symbols", "read_side", "side_uses_for", "side_uses_rows", "box_candidates",
           "ROBUST_FROM_DB"]

_Q = 2  # QPSK
_LOWEST_RATE_BITS = 5 * BOX_BITS  # 5G LDPC's lowest rate is 1/5: the longest codeword of the box
# the reported SNR (dB) from which each length is enough (benchmarks/side_information.py): on AWGN ≥ 99 %
# of boxes are read right down to 0 dB in 24 uses, -2 dB in 48, -6 dB in 96; the margin is for block
# fading, where the reported SNR is an average and a fade can take the box (Rayleigh at 0 dB: 29 % of
# boxes misread in 24 uses, 15 % in 48, 7 % in 96)
ROBUST_FROM_DB = {SIDE_USES_CHOICES[0]: 6.0, SIDE_USES_CHOICES[1]: 0.0}


def side_uses_rows(snr_db: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """The box's channel uses for a batch of reported SNRs [B] and budgets [B], on their device (training and
    :func:`side_uses_for`): the shortest length whose threshold the SNR reaches, the longest below all of
    them, never more than the budget leaves the patches (one use each)."""
    uses = torch.full_like(budget, max(SIDE_USES_CHOICES))
    for n, floor in sorted(ROBUST_FROM_DB.items(), reverse=True):  # the shortest that the SNR allows wins
        uses = torch.where(snr_db >= floor, n, uses)
    for n in sorted(SIDE_USES_CHOICES, reverse=True):  # never more than the budget leaves the patches
        shorter = max([m for m in SIDE_USES_CHOICES if m < n], default=SIDE_USES)
        uses = torch.where((uses == n) & (n + GRID * GRID > budget), shorter, uses)
    return uses


def side_uses_for(snr_db: float, budget: int | None = None) -> int:
    """Channel uses of the box at the reported ``snr_db``: the shortest whose threshold the SNR reaches,
    the longest below all of them, never more than the ``budget`` leaves the patches (one use each)."""
    budget = GRID * GRID + max(SIDE_USES_CHOICES) if budget is None else budget
    return int(side_uses_rows(torch.tensor([float(snr_db)]), torch.tensor([int(budget)]))[0])


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


@lru_cache(maxsize=1)
def box_candidates() -> tuple[list[Box | None], torch.Tensor]:
    """Every message the side information can carry: (boxes, their bits [1297, BOX_BITS]); "no ROI" first."""
    spans = [(a, b) for a in range(GRID) for b in range(a, GRID)]
    boxes: list[Box | None] = [None] + [Box(x0, y0, x1, y1) for y0, y1 in spans for x0, x1 in spans]
    return boxes, torch.stack([box_bits(b) for b in boxes])


def _code(side_uses: int):
    """(encoder, codeword length n, positions of the sent bits in the codeword [2·side_uses])."""
    if side_uses not in SIDE_USES_CHOICES:
        raise ValueError(f"side information of {side_uses} channel uses (one of {SIDE_USES_CHOICES})")
    n = min(side_uses * _Q, _LOWEST_RATE_BITS)
    encoder, _ = _ldpc(BOX_BITS, n, _Q)
    return encoder, n, torch.arange(side_uses * _Q) % n


@lru_cache(maxsize=len(SIDE_USES_CHOICES))
def _candidate_codewords(side_uses: int) -> torch.Tensor:
    encoder, _, _ = _code(side_uses)
    return encoder(box_candidates()[1])


def side_symbols(boxes: list[Box | None], side_uses: int = SIDE_USES) -> torch.Tensor:
    """One box per packet → [B, side_uses] complex64 QPSK symbols."""
    encoder, _, positions = _code(side_uses)
    mapper, _ = _qam(_Q)
    coded = encoder(torch.stack([box_bits(b) for b in boxes]))[:, positions]
    return mapper(coded).reshape(len(boxes), side_uses)


def read_side(y: torch.Tensor, h: torch.Tensor, snr_db: float) -> list[Box | None]:
    """Received side symbols [B, side_uses] complex and their gains ([B] or [B, side_uses]) → the most
    likely box of each (the length says which code was used)."""
    _, n, positions = _code(int(y.shape[1]))
    llr = demap(y, h, snr_db, _Q)
    combined = torch.zeros(y.shape[0], n).index_add_(1, positions, llr)
    # Sionna's LLRs are log p(1)/p(0): a codeword's log-likelihood is, up to a constant, the sum of the
    # LLRs at its ones
    best = (combined @ _candidate_codewords(int(y.shape[1])).T).argmax(1)
    boxes = box_candidates()[0]
    return [boxes[i] for i in best.tolist()]
