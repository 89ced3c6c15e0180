"""Pictures easy-vqa did not draw: how the checkpoint reads them, before and after the whole pipeline.

    .venv/bin/python benchmarks/pictures.py [-c CHECKPOINT] [--limit 400] [--snr 0] [--json out.json]

Three sets of pictures with known colour and shape: easy-vqa's captioned test images; the same
images moved, rotated, scaled, recoloured slightly, on another background, some JPEG-saved
(``augment``, seeded apart from training); and shapes drawn anew by ``augment.render_shapes``
(seeded apart from training). For each: the share whose 4 semantic tokens all read as the right
caption words (nearest word, noiseless), and the caption task's accuracy (colour and shape both
right) through the codec, AWGN at ``--snr`` and the LLM, and noiseless.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEED = 10_000  # far from the seeds training draws its pictures with


def picture_sets(data, llm, n_tokens: int, limit: int):
    """name → (pictures [N, 3, 64, 64], captions [(colour, shape)], caption token ids [N, n_tokens])."""
    from semcom_cli.data.augment import augment_batch, render_shapes
    from semcom_cli.models.codebook import caption_token_ids
    from semcom_cli.tasks.shapes import COLORS, SHAPES

    ids = random.Random(SEED).sample(data.captioned_ids, min(limit, len(data.captioned_ids)))
    captions = [data.captions[i] for i in ids]
    images = data.batch_images(ids)
    rng = random.Random(SEED + 1)
    drawn = [(rng.choice(COLORS), rng.choice(SHAPES)) for _ in range(limit)]
    sets = {"easy-vqa": (images, captions),
            "moved": (augment_batch(images, random.Random(SEED + 2), 1.0), captions),
            "drawn anew": (render_shapes(drawn, random.Random(SEED + 3)), drawn)}
    return {name: (pictures, caps, torch.tensor([caption_token_ids(llm, c, s, n_tokens) for c, s in caps]))
            for name, (pictures, caps) in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", default=str(REPO / "checkpoints" / "semcom-smollm2"))
    parser.add_argument("--limit", type=int, default=400, help="pictures per set")
    parser.add_argument("--snr", type=float, default=0.0, help="AWGN SNR for the pipeline (dB)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.system import SemcomModel
    from semcom_cli.tasks import get_task
    from semcom_cli.tasks.shapes import caption_text

    model = SemcomModel.from_pretrained(args.checkpoint)
    llm = model.get_llm()
    caption = get_task("caption")
    vocab = F.normalize(llm.model.get_input_embeddings().weight.detach(), dim=-1)
    report = {"checkpoint": model.name, "checkpoint_hash": model.hash, "snr_db": args.snr, "sets": {}}
    at = f"caption {args.snr:g} dB"
    print(f"{'pictures':>11} {'n':>5} {'tokens read':>12} {'caption noiseless':>18} {at:>14}")
    sets = picture_sets(EasyVQA.load("test"), llm, model.preset.projector.n_tokens, args.limit)
    for name, (pictures, captions, target_ids) in sets.items():
        words = torch.unique(target_ids)
        with torch.no_grad():
            tokens, mask = model.image_tokens(pictures)
            read = words[(F.normalize(tokens, dim=-1) @ vocab[words].T).argmax(-1)]
            tokens_right = float((read == target_ids).all(1).float().mean())
            seed_channel(0)
            y, h = make_channel("awgn").send(model.encode(tokens, mask, "image"), args.snr)
            received = model.receive(y, h, args.snr, mask, "image")
            scores = {}
            for method, packet in (("noiseless", tokens), ("awgn", received)):
                answers = []
                for start in range(0, len(captions), 64):
                    rows = slice(start, start + 64)
                    answers += model.answer(["caption"] * len(captions[rows]), [None] * len(captions[rows]),
                                            packet[rows], mask[rows])
                right = [caption.correct(a, caption_text(*c)) for a, c in zip(answers, captions)]
                scores[method] = sum(right) / len(captions)
        report["sets"][name] = {"n": len(captions), "tokens_read": tokens_right,
                                "caption_noiseless": scores["noiseless"], "caption_awgn": scores["awgn"]}
        print(f"{name:>11} {len(captions):>5} {tokens_right:>11.1%} {scores['noiseless']:>17.1%} "
              f"{scores['awgn']:>13.1%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
