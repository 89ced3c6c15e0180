"""Pictures larger than 64×64 through the reconstruct link: tiles of 64×64 against squashing to 64×64.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/pictures_any_size.py [-c checkpoints/semcom-scenes]
                                        [--limit 64] [--snr 12] [--channel-uses 512] [--json out.json]

On 128×128 test scenes (plain and photographed backgrounds alternate, one test-wording query each, seeded),
through the same library calls as ``semcom encode | transmit | decode`` (AWGN), for importance and uniform:

- ``tiled``: the picture at its own size, 2×2 tiles of ``--channel-uses`` each (the guide read once over
  the whole picture), decoded at 128×128;
- ``squashed``: what semcom did before tiling: the picture resized to 64×64 (bicubic), one packet of
  ``--channel-uses``, decoded and resized back to 128×128 (bicubic): a quarter of the channel uses;
- ``squashed, same uses``: the same at 4 × ``--channel-uses`` in one packet (the tiled total);
- ``64×64 alone``: the squashed decode scored against the 64×64 picture it was sent as (what a 64×64
  picture's PSNR means).

PSNR of the whole picture and inside the referred object (its exact mask, at the picture's size).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZE = 128


def _psnr(a, b, where=None) -> float:
    import torch

    error = (a - b).pow(2).mean(0)
    if where is not None:
        error = error[where]
    return float(10 * torch.log10(1.0 / error.mean().clamp_min(1e-10)))


def _resize(image, side: int):
    """[3, H, W] in [0, 1] → [3, side, side], bicubic on 8-bit pixels as semcom read files before tiling."""
    import numpy as np
    import torch
    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    small = Image.fromarray(np.ascontiguousarray(pixels)).resize((side, side), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1).float() / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", default=None, help="reconstruct checkpoint (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=64, help="scenes")
    parser.add_argument("--snr", type=float, default=12.0, help="AWGN SNR (dB)")
    parser.add_argument("--channel-uses", type=int, default=512, help="channel uses per 64×64 tile")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from semcom_cli.channel import make_channel
    from semcom_cli.data.scenes import referring_queries, scene_at
    from semcom_cli.link.transmit import transmit_file
    from semcom_cli.reconstruct.model import ReconstructModel
    from semcom_cli.reconstruct.packets import decode_image_file, encode_image_file

    model = ReconstructModel.from_pretrained(Path(args.checkpoint) if args.checkpoint else None)
    channel = make_channel("awgn")
    budget = args.channel_uses
    rng = random.Random("pictures-any-size:0")
    rows: dict[str, dict[str, list[float]]] = {}

    def score(name: str, method: str, received, original, mask) -> None:
        got = rows.setdefault(f"{name} / {method}", {"psnr_db": [], "roi_psnr_db": []})
        got["psnr_db"].append(_psnr(received, original))
        got["roi_psnr_db"].append(_psnr(received, original, mask))

    def link(picture, query, method, uses, seed):
        sem, _ = encode_image_file(model, picture, "scene.png", query if method == "importance" else None, uses,
                                   0.7, method, args.snr)
        image, result = decode_image_file(model, transmit_file(sem, channel, args.snr, seed), "scene.png")
        return image, result["channel_uses"]

    began = time.perf_counter()
    spent = {}
    for index in range(args.limit):
        scene = scene_at("test", index, SIZE)
        options = referring_queries(scene, "test", seed=rng.randrange(1 << 30))
        q = options[rng.randrange(len(options))]
        original = torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0
        mask = torch.from_numpy(scene.masks[q.target])
        small = _resize(original, 64)
        # the object's mask at 64×64 (nearest)
        small_mask = torch.from_numpy(np.array(Image.fromarray(scene.masks[q.target].astype(np.uint8) * 255)
                                                 .resize((64, 64), Image.Resampling.NEAREST))) > 127
        for method in ("importance", "uniform"):
            tiled, uses = link(original, q.text, method, budget, index)
            score("tiled 128×128", method, tiled, original, mask)
            spent[f"tiled 128×128 / {method}"] = uses
            squashed, uses = link(small, q.text, method, budget, index)
            score("squashed to 64×64", method, _resize(squashed, SIZE), original, mask)
            spent[f"squashed to 64×64 / {method}"] = uses
            if small_mask.any():
                score("64×64 alone", method, squashed, small, small_mask)
                spent[f"64×64 alone / {method}"] = uses
            same, uses = link(small, q.text, method, 4 * budget, index)
            score("squashed, same uses", method, _resize(same, SIZE), original, mask)
            spent[f"squashed, same uses / {method}"] = uses
    seconds = time.perf_counter() - began

    summary = {name: {k: round(float(np.mean(v)), 2) for k, v in got.items()} | {"n": len(got["psnr_db"]),
                                                                                   "channel_uses": spent[name]}
               for name, got in rows.items()}
    doc = {"scenes": args.limit, "size": SIZE, "snr_db": args.snr, "channel": "awgn", "channel_uses_per_tile": budget,
           "roi_share": 0.7, "checkpoint": model.name, "checkpoint_hash": model.hash,
           "seconds": round(seconds, 1), "results": summary}
    print(f"{args.limit} test scenes of {SIZE}×{SIZE}, AWGN {args.snr:g} dB, {budget} channel uses per 64×64 tile, "
          f"checkpoint {model.name} ({model.hash[:12]}…), {seconds:.0f} s")
    print(f"{'':34} {'uses':>6} {'PSNR':>7} {'ROI PSNR':>9}")
    for name, s in summary.items():
        print(f"{name:34} {s['channel_uses']:>6} {s['psnr_db']:>7.2f} {s['roi_psnr_db']:>9.2f}")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
