"""A short message of known length over the digital link: the separation baseline's channel code.

Where :mod:`.digital` frames a payload of any length (a 16-bit length field in front), a message
whose length both ends know (a caption's index, an object's box, a sentence's token ids) needs no
frame: its ``m`` bits are padded to 5G LDPC's shortest block (12 bits) and coded at the rate the
channel uses leave. The modulation is the lowest QAM order whose highest code rate in
:data:`~.digital.MCS_TABLE` carries the bits, so a few bits in many uses go at a low rate on QPSK; 5G
LDPC's lowest rate is 1/5, and what the uses hold beyond one codeword is filled by repeating it
(rate matching's circular buffer), the receiver adding the repeats' LLRs before decoding. The bits
are scrambled, mapped and demapped as the framed link's are (:func:`~.digital.send_coded_bits`).

There is no CRC: the receiver takes the bits it decodes. A message that does not fit the uses at the
highest order and rate is not sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from semcom_cli.channel.base import Channel
from semcom_cli.channel.digital import MCS_TABLE, MIN_K, _ldpc, send_coded_bits
from semcom_cli.core.errors import SemcomError

__all__ = ["MessageLink", "message_link", "send_messages", "fits_bits", "to_bits", "from_bits", "bits_for"]

LOWEST_RATE = 1 / 5  # 5G LDPC base graph 2's lowest code rate
# bits per QAM symbol → the highest code rate the MCS table uses with it
_HIGHEST_RATE = {q: max(r for q2, r in MCS_TABLE.values() if q2 == q) for q, _ in MCS_TABLE.values()}


@dataclass(frozen=True)
class MessageLink:
    """How an ``bits``-bit message goes in ``channel_uses`` complex symbols."""

    bits: int
    channel_uses: int
    bits_per_symbol: int

    @property
    def k(self) -> int:
        """Information bits of the code block: the message, padded with zeros to LDPC's shortest block."""
        return max(MIN_K, self.bits)

    @property
    def n(self) -> int:
        """The codeword's length: every coded bit the uses hold, or 5·k (rate 1/5), whichever is less,
        a whole number of QAM symbols."""
        q = self.bits_per_symbol
        return min(self.channel_uses * q, (int(self.k / LOWEST_RATE) // q) * q)

    @property
    def code_rate(self) -> float:
        """Information bits per coded bit sent, repeats counted."""
        return self.bits / (self.channel_uses * self.bits_per_symbol)

    @property
    def modulation(self) -> str:
        return {2: "qpsk", 4: "16qam", 6: "64qam", 8: "256qam"}[self.bits_per_symbol]

    def record(self) -> dict:
        return {"bits": self.bits, "modulation": self.modulation, "code_rate": round(self.code_rate, 4),
                "ldpc": [self.k, self.n], "repeats": round(self.channel_uses * self.bits_per_symbol / self.n, 3)}


def fits_bits(channel_uses: int) -> int:
    """The longest message ``channel_uses`` can carry (the highest order at its highest rate)."""
    q = max(_HIGHEST_RATE)
    return int(channel_uses * q * _HIGHEST_RATE[q])


def message_link(bits: int, channel_uses: int) -> MessageLink | None:
    """The lowest QAM order whose highest code rate carries ``bits`` in ``channel_uses``; None when none does."""
    if bits <= 0 or channel_uses <= 0:
        raise SemcomError(f"a message needs bits and channel uses (got {bits} bits in {channel_uses} uses)")
    for q in sorted(_HIGHEST_RATE):
        link = MessageLink(bits, int(channel_uses), q)
        if link.k <= link.n * _HIGHEST_RATE[q] and link.k / link.n >= LOWEST_RATE - 1e-9:
            return link
    return None


def to_bits(values: list[int], width: int) -> torch.Tensor:
    """Integers → their ``width``-bit binary, most significant first, one row [len(values) · width]."""
    return torch.tensor([[(v >> (width - 1 - i)) & 1 for v in values for i in range(width)]], dtype=torch.float32)[0]


def from_bits(bits: torch.Tensor, width: int) -> list[int]:
    """The inverse of :func:`to_bits`: a row of bits → integers of ``width`` bits."""
    weights = 2 ** torch.arange(width - 1, -1, -1)
    return (bits.reshape(-1, width).long() * weights).sum(1).tolist()


def send_messages(messages: torch.Tensor, link: MessageLink, snr_db: float, channel: Channel,
                  candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Messages [B, bits] of 0/1 → the bits the receiver decodes [B, bits] (no CRC). ``candidates``
    [C, bits]: every message the receiver knows can be sent (a codebook's indices); it then decodes
    by maximum likelihood among their codewords, the best a receiver can do, instead of belief
    propagation."""
    batch = messages.shape[0]
    q, k, n = link.bits_per_symbol, link.k, link.n
    info = torch.zeros(batch, k, device=channel.device)
    info[:, : link.bits] = messages.to(channel.device)
    encoder, decoder = _ldpc(k, n, q, str(channel.device))
    coded = encoder(info)
    sent_bits = link.channel_uses * q
    positions = torch.arange(sent_bits, device=coded.device) % n  # the circular buffer, read to the end
    llr = send_coded_bits(coded[:, positions], q, snr_db, channel)
    combined = torch.zeros(batch, n, device=llr.device).index_add_(1, positions, llr)
    if candidates is None:
        return decoder(combined)[:, : link.bits]
    # Sionna's LLRs are log p(1)/p(0): a codeword's log-likelihood is, up to a constant, the sum of the
    # LLRs at its ones
    padded = torch.zeros(candidates.shape[0], k, device=combined.device)
    padded[:, : link.bits] = candidates.to(combined.device)
    best = (combined @ encoder(padded).T).argmax(1)
    return padded[best, : link.bits]


def bits_for(count: int) -> int:
    """Bits that index ``count`` things."""
    return max(1, math.ceil(math.log2(count)))
