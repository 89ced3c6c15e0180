"""How often the guided packet's ROI box is misread, per SNR and channel.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/side_information.py [--boxes 2000]
        [-o docs/side-information.json]

The box (16 bits: a flag and four 3-bit patch coordinates) goes ahead of the image's symbols in QPSK
(:mod:`semcom_cli.reconstruct.imaging.side`); a misread box misplaces every symbol of the packet. For
random boxes (seeded), each side length (24, 48, 96 channel uses) decoded by maximum likelihood among
the 1,297 boxes, the link's choice at each SNR (``side_uses_for``, a 512-use packet), and the decoder
before this one (belief propagation on the 24-use code, for reference), on AWGN, Rayleigh block
fading and Rayleigh with a gain per symbol. Prints a table; writes the JSON with Wilson intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from semcom_cli.channel import make_channel, seed_channel  # noqa: E402
from semcom_cli.channel.digital import _ldpc, demap  # noqa: E402
from semcom_cli.evaluation.metrics import proportion  # noqa: E402
from semcom_cli.io.patches import BOX_BITS, SIDE_USES, SIDE_USES_CHOICES  # noqa: E402
from semcom_cli.reconstruct.imaging.side import (  # noqa: E402
    bits_box,
    box_candidates,
    read_side,
    side_symbols,
    side_uses_for,
)

CHANNELS = ("awgn", "rayleigh", "rayleigh-iid")
SNRS = (-10.0, -6.0, -4.0, -2.0, 0.0, 3.0, 6.0, 9.0, 12.0)
BUDGET = 512


def _belief_propagation(y: torch.Tensor, h: torch.Tensor, snr_db: float) -> list:
    """The decoder before maximum likelihood: BP over every 16-bit word of the 24-use code."""
    _, decoder = _ldpc(BOX_BITS, SIDE_USES * 2, 2)
    return [bits_box(row) for row in decoder(demap(y, h, snr_db, 2))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "side-information.json")
    args = parser.parse_args()

    every = box_candidates()[0]
    pick = torch.randint(1, len(every), (args.boxes,), generator=torch.Generator().manual_seed(args.seed))
    boxes = [every[i] for i in pick.tolist()]
    decoders = {f"ml-{n}": n for n in SIDE_USES_CHOICES} | {"policy": None, "bp-24": SIDE_USES}
    results: dict = {}
    for channel_name in CHANNELS:
        channel = make_channel(channel_name)
        for name, uses in decoders.items():
            row = {}
            for snr in SNRS:
                n = side_uses_for(snr, BUDGET) if uses is None else uses
                seed_channel(args.seed)  # every decoder meets the same noise at a point
                y, h = channel(side_symbols(boxes, n), snr)
                h = h if h.dim() == 2 else h.reshape(-1)
                read = _belief_propagation(y, h, snr) if name.startswith("bp") else read_side(y, h, snr)
                row[str(snr)] = {**proportion([float(a != b) for a, b in zip(read, boxes)]), "side_uses": n}
            results.setdefault(channel_name, {})[name] = row
    doc = {"what": "share of ROI boxes misread", "boxes": args.boxes, "seed": args.seed, "budget": BUDGET,
           "snr_db": list(SNRS), "results": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=1) + "\n")
    print("box error rate (%)   SNR dB: " + " ".join(f"{s:>6g}" for s in SNRS))
    for channel_name, rows in results.items():
        for name, row in rows.items():
            print(f"{channel_name:>12} {name:>7}: " + " ".join(f"{100 * row[str(s)]['value']:6.1f}" for s in SNRS))
    print(f"→ {args.output}")


if __name__ == "__main__":
    main()
