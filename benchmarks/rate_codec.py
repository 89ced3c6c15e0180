"""The channel code alone at variable rates: how often a packet's caption is read right, per pattern of copies.

    .venv/bin/python benchmarks/rate_codec.py [-c CHECKPOINT] [--snr=-8,-5,0,15] [--limit 1000]
                                              [--copies "1,1,1,1;1,0,1,0;0,1,0,1;2,2,2,2"]

No LLM: each captioned easy-vqa test image's tokens are sent with the given copies per token
(``;`` between patterns) over AWGN, decoded, and scored against the 24 captions on the slots that
arrived (the receiver's codebook rule); the table gives the caption, its colour and its shape read
right. It tells what the channel code does with tokens left out or repeated, and compares two
checkpoints' codecs at full rate (pattern 1,1,1,1) in seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", default=str(REPO / "checkpoints" / "semcom-smollm2"))
    parser.add_argument("--snr", default="-8,-5,0,15")
    parser.add_argument("--limit", type=int, default=1000, help="captioned test images")
    parser.add_argument("--copies", default="1,1,1,1;1,1,0,0;1,0,1,0;0,1,0,1;2,2,2,2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from semcom_cli.channel import make_channel, seed_channel, send_repeated
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.models.codebook import CAPTIONS, caption_scores
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(args.checkpoint)
    data = EasyVQA.load("test")
    ids = data.captioned_ids[: args.limit]
    truth = torch.tensor([CAPTIONS.index(tuple(data.captions[i])) for i in ids])
    captions = F.normalize(model.caption_codebook(), dim=-1)
    print(f"checkpoint {model.hash[:16]}…, {len(ids)} captioned test images, AWGN; caption / colour / shape read right")
    with torch.no_grad():
        tokens, _ = model.image_tokens(data.batch_images(ids))
        for snr in [float(s) for s in args.snr.split(",")]:
            for pattern in args.copies.split(";"):
                copies = torch.tensor([int(c) for c in pattern.split(",")])[None].expand(len(ids), -1)
                sent = (copies > 0).long()
                seed_channel(args.seed)
                y, g = send_repeated(make_channel("awgn"), model.encode(tokens, sent, "image"), copies, snr)
                decoded = model.receive_repeated(y, g, snr, copies, "image", codebook=False)
                guess = caption_scores(decoded, captions, sent).argmax(1)
                right = [(guess == truth), (guess // 3 == truth // 3), (guess % 3 == truth % 3)]
                print(f"{snr:6g} dB  copies [{pattern}]  " +
                      " / ".join(f"{100 * float(r.float().mean()):5.1f}" for r in right) + " %")


if __name__ == "__main__":
    main()
