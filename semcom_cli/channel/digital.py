"""The digital baseline: separate source and channel coding, and its capacity bound.

What every semantic-communication paper is compared with. A packet (an image or
a sentence) is source-coded to bytes (an image codec at the highest quality that
fits, :mod:`.image_codecs`; UTF-8 for text), framed with a 16-bit length field,
protected with 5G NR LDPC, scrambled and mapped to QAM (Sionna), sent through the same
channel as the semantic pipeline, demapped (exact APP LLRs after one-tap
equalisation with perfect CSI) and decoded. A packet whose bits do not fit, or
that arrives with any bit error (what a CRC would catch), is lost: the cliff
effect.

Bit accounting for ``N`` complex channel uses with ``Q`` bits per QAM symbol and
code rate ``r``: ``N·Q`` coded bits, ``floor(N·Q·r)`` information bits, of which
16 are the length field; the rest, in whole bytes, is the payload. Code blocks
longer than 5G's 8,448 information bits are split into equal segments.

The modulation and coding scheme follows ideal link adaptation on the average
SNR: the highest spectral efficiency whose SNR threshold (Shannon's for that
efficiency plus :data:`CODING_GAP_DB`) is met. Under fading the transmitter does
not know the draw, so deep fades lose packets.

The capacity bound is the best any separate scheme could do: a packet arrives
intact when its source bits fit ``N·log2(1 + |h|²·SNR)`` (block fading: the
draw's own capacity), and is lost otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from semcom_cli.channel.base import Channel, noise_variance
from semcom_cli.core.errors import SemcomError

__all__ = ["MCS_TABLE", "CODING_GAP_DB", "DigitalLink", "choose_mcs", "link_for", "send_payloads", "capacity_bits",
           "LENGTH_BITS", "MAX_K", "MIN_K", "scramble", "descramble_llrs", "demap", "send_coded_bits"]

# name → (bits per QAM symbol, code rate), in increasing spectral efficiency
MCS_TABLE: dict[str, tuple[int, float]] = {
    "qpsk-1/3": (2, 1 / 3), "qpsk-1/2": (2, 1 / 2), "qpsk-2/3": (2, 2 / 3),
    "16qam-1/2": (4, 1 / 2), "16qam-2/3": (4, 2 / 3), "16qam-3/4": (4, 3 / 4),
    "64qam-2/3": (6, 2 / 3), "64qam-3/4": (6, 3 / 4), "64qam-5/6": (6, 5 / 6),
    "256qam-3/4": (8, 3 / 4), "256qam-5/6": (8, 5 / 6),
}
CODING_GAP_DB = 2.5  # distance of short 5G LDPC blocks with BICM from capacity at about 10% block errors
LENGTH_BITS = 16  # the frame's payload-length field
MAX_K = 8448  # 5G LDPC base graph 1: information bits per code block
MIN_K = 12


def mcs_threshold_db(name: str) -> float:
    q, r = MCS_TABLE[name]
    return 10 * math.log10(2 ** (q * r) - 1) + CODING_GAP_DB


def choose_mcs(snr_db: float, mcs: str = "auto") -> str:
    """The scheme for an average SNR: ``mcs`` itself, or link adaptation when ``auto``."""
    if mcs != "auto":
        if mcs not in MCS_TABLE:
            raise SemcomError(f"unknown modulation and coding scheme '{mcs}' (choose from: auto, "
                              f"{', '.join(MCS_TABLE)})")
        return mcs
    usable = [name for name in MCS_TABLE if mcs_threshold_db(name) <= snr_db]
    return usable[-1] if usable else next(iter(MCS_TABLE))


@dataclass(frozen=True)
class DigitalLink:
    """One packet's frame: ``channel_uses`` complex symbols carrying LDPC-coded QAM."""

    channel_uses: int
    mcs: str

    @property
    def bits_per_symbol(self) -> int:
        return MCS_TABLE[self.mcs][0]

    @property
    def coded_bits(self) -> int:
        return self.channel_uses * self.bits_per_symbol

    @property
    def info_bits(self) -> int:
        return int(self.coded_bits * MCS_TABLE[self.mcs][1])

    @property
    def payload_bytes(self) -> int:
        """Whole bytes of source data one frame carries (0: nothing fits)."""
        if self.segments() is None:
            return 0
        return max(0, (self.info_bits - LENGTH_BITS) // 8)

    def segments(self) -> list[tuple[int, int]] | None:
        """(information bits, symbols) of each code block; None when no 5G LDPC block fits."""
        blocks = max(1, math.ceil(self.info_bits / MAX_K))
        k = [self.info_bits // blocks + (1 if i < self.info_bits % blocks else 0) for i in range(blocks)]
        s = [self.channel_uses // blocks + (1 if i < self.channel_uses % blocks else 0) for i in range(blocks)]
        if min(k) < MIN_K:
            return None
        return list(zip(k, s))


def link_for(channel_uses: int, snr_db: float, mcs: str = "auto") -> DigitalLink:
    if channel_uses <= 0:
        raise SemcomError(f"channel uses must be positive (got {channel_uses})")
    return DigitalLink(int(channel_uses), choose_mcs(snr_db, mcs))


# channel coding and modulation -------------------------------------------------

@lru_cache(maxsize=64)
def _ldpc(k: int, n: int, q: int, device: str = "cpu"):
    from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder  # heavy: Sionna, on first use

    encoder = LDPC5GEncoder(k, n, num_bits_per_symbol=q, precision="single", device=device)
    return encoder, LDPC5GDecoder(encoder, hard_out=True, num_iter=20, precision="single", device=device)


@lru_cache(maxsize=8)
def _qam(q: int, device: str = "cpu"):
    from sionna.phy.mapping import Demapper, Mapper  # heavy: Sionna, on first use

    return (Mapper("qam", q, precision="single", device=device),
            Demapper("app", "qam", q, precision="single", device=device))


@lru_cache(maxsize=64)
def _scrambling_sequence(n_bits: int) -> torch.Tensor:
    """A fixed pseudo-random 0/1 sequence both ends know. Coded bits are scrambled with it before QAM,
    as 5G scrambles them: a frame padded with zeros would otherwise sit on a few constellation points,
    below the average power of 16-QAM and up, and lose packets a real link does not."""
    return torch.randint(0, 2, (n_bits,), generator=torch.Generator().manual_seed(0x5C4A), dtype=torch.int64).float()


def scramble(bits: torch.Tensor) -> torch.Tensor:
    """Coded bits [B, n] → scrambled bits (XOR with the sequence)."""
    return (bits + _scrambling_sequence(bits.shape[-1]).to(bits.device)) % 2


def descramble_llrs(llr: torch.Tensor) -> torch.Tensor:
    """LLRs of scrambled bits [B, n] → LLRs of the coded bits (a scrambled one's sign is flipped)."""
    return llr * (1 - 2 * _scrambling_sequence(llr.shape[-1]).to(llr.device))


def demap(y: torch.Tensor, h: torch.Tensor, snr_db: float, q: int) -> torch.Tensor:
    """Received QAM symbols [B, N] complex and their gains ([B] or [B, N]) → exact APP LLRs [B, N·q] after
    coherent one-tap detection: the gain undone, the noise grown by 1/|h|²."""
    _, demapper = _qam(q, str(y.device))
    h = h if h.dim() == 2 else h[:, None]
    gain = h.abs().clamp_min(1e-6) ** 2
    return demapper(y / h, (noise_variance(snr_db, y.device) / gain).expand_as(y).contiguous())


def send_coded_bits(coded: torch.Tensor, q: int, snr_db: float, channel: Channel) -> torch.Tensor:
    """Coded bits [B, N·q] scrambled, mapped to QAM, through the channel, demapped and descrambled:
    the LLRs [B, N·q] a decoder reads. What the framed link and the message link share."""
    mapper, _ = _qam(q, str(channel.device))
    y, h = channel(mapper(scramble(coded)).reshape(coded.shape[0], -1), snr_db)
    return descramble_llrs(demap(y, h, snr_db, q))


def _frame_bits(payload: bytes, info_bits: int) -> torch.Tensor:
    frame = len(payload).to_bytes(2, "big") + payload
    bits = np.unpackbits(np.frombuffer(frame, dtype=np.uint8))
    out = np.zeros(info_bits, dtype=np.float32)
    out[: bits.size] = bits
    return torch.from_numpy(out)


def _unframe(bits: torch.Tensor) -> bytes | None:
    raw = np.packbits(bits.to(torch.uint8).cpu().numpy()).tobytes()
    length = int.from_bytes(raw[:2], "big")
    if 2 + length > len(raw):
        return None
    return raw[2 : 2 + length]


def send_payloads(payloads: list[bytes | None], link: DigitalLink, snr_db: float,
                  channel: Channel) -> list[bytes | None]:
    """Send each payload in one frame; returns what arrived intact (None: lost or did not fit)."""
    segments = link.segments()
    fits = [p is not None and segments is not None and len(p) <= link.payload_bytes for p in payloads]
    rows = [i for i, ok in enumerate(fits) if ok]
    arrived: list[bytes | None] = [None] * len(payloads)
    if not rows:
        return arrived
    q = link.bits_per_symbol
    info = torch.stack([_frame_bits(payloads[i], link.info_bits) for i in rows]).to(channel.device)
    coded, start = [], 0
    for k, symbols in segments:
        encoder, _ = _ldpc(k, symbols * q, q, str(channel.device))
        coded.append(encoder(info[:, start : start + k]))
        start += k
    llr = send_coded_bits(torch.cat(coded, dim=1), q, snr_db, channel)
    decoded, start, at = [], 0, 0
    for k, symbols in segments:
        encoder, decoder = _ldpc(k, symbols * q, q, str(channel.device))
        decoded.append(decoder(llr[:, at : at + symbols * q]))
        at += symbols * q
        start += k
    bits = torch.cat(decoded, dim=1)
    intact = (bits == info).all(dim=1)
    for row, i in enumerate(rows):
        if intact[row]:
            arrived[i] = _unframe(bits[row])
    return arrived


def capacity_bits(channel_uses: list[int], snr_db: float, channel: Channel) -> torch.Tensor:
    """Bits each packet of ``channel_uses[i]`` uses could carry at capacity: N·log2(1 + |h|²·SNR) with
    one fading draw per packet, or the sum of log2(1 + |h_k|²·SNR) over its symbols' own draws."""
    batch, most = len(channel_uses), max(channel_uses, default=0)
    if not channel.noisy:
        return torch.full((batch,), math.inf)
    snr = 10 ** (snr_db / 10)
    uses = torch.tensor(channel_uses, dtype=torch.float32)
    if not channel.per_symbol:
        return uses * torch.log2(1 + channel.gains(batch).abs().cpu() ** 2 * snr)
    per_use = torch.log2(1 + channel.gains(batch, max(most, 1)).abs().cpu() ** 2 * snr)  # [batch, most]
    counted = torch.arange(per_use.shape[1])[None, :] < uses[:, None]
    return (per_use * counted).sum(1)
