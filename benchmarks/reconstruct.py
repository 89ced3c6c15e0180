"""Query-guided image transmission (MLLM-SC) against its targets, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/reconstruct.py [-c checkpoints/semcom-scenes]
                                        [--limit 200] [-o runs/reconstruct] [--skip-speed]

On test scenes with test-only query wordings (seeded; plain and textured backgrounds alternate):

1. the main sweep: importance, uniform, digital over AWGN at 0, 3, 6, 9, 12 dB, 512 channel uses
   (bandwidth ratio 1/24), ROI share 0.7, with the VQA checkpoint's answers at 12 dB;
2. Rayleigh block fading at 0 and 12 dB;
3. the ROI-share sweep (0.3 … 0.9) at 12 dB; the refinement check (ROI PSNR against the share and the
   budget with the true box, :mod:`semcom_cli.evaluation.refinement`);
4. plain-background and textured-background scenes apart at 12 dB;
5. speed: encode + decode of batches of 64 images, without and with the guide (the LLM reading
   64 distinct queries, nothing cached), on this machine's CPU threads.

Writes each sweep's JSON, CSV, plots and example grid into ``-o`` and ``bench.json`` with the
targets table; exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _point(doc: dict, method: str, snr: float, channel: str = "awgn", share: float | None = None) -> dict:
    for p in doc["points"]:
        if p["method"] == method and p["snr_db"] == snr and p["channel"] == channel and \
                (share is None or p.get("roi_share") in (None, share)):
            return p["metrics"]
    raise KeyError((method, snr, channel))


def _speed(model, limit: int = 64, repeats: int = 3) -> dict:
    import torch

    from semcom_cli.evaluation.reconstruct import load_items
    from semcom_cli.reconstruct.imaging.pipeline import decode_streams, encode_images, guide_boxes

    items = load_items(limit, seed=1)
    boxes = guide_boxes(model, items.images, items.queries)[1]
    noise = torch.Generator().manual_seed(0)

    def link(with_guide: bool) -> float:
        started = time.perf_counter()
        b = boxes
        if with_guide:
            model.guide.reader._cache.clear()  # every query read anew by the LLM
            b = guide_boxes(model, items.images, items.queries)[1]
        packets = encode_images(model, items.images, b, 512, 0.7, 12.0)
        streams = [p.stream + 0.177 * torch.randn(p.stream.shape, generator=noise) for p in packets]
        decode_streams(model, streams, [torch.ones(1, dtype=torch.complex64)] * limit, 12.0, 512, 0.7)
        return time.perf_counter() - started

    link(False)  # warm-up
    codec = min(link(False) for _ in range(repeats))
    guided = min(link(True) for _ in range(repeats))
    return {"images": limit, "threads": torch.get_num_threads(), "codec_images_per_s": limit / codec,
            "with_guide_images_per_s": limit / guided}


def _refinement(args) -> dict:
    """ROI PSNR against the ROI's share and the budget (true boxes, AWGN 12 dB): do the symbols refine?"""
    from semcom_cli.evaluation.reconstruct import load_items
    from semcom_cli.evaluation.refinement import refinement
    from semcom_cli.reconstruct.model import ReconstructModel

    return refinement(ReconstructModel.from_pretrained(args.checkpoint, need_codec=True),
                      load_items(args.limit, seed=args.seed), seed=args.seed)


def main() -> None:
    from semcom_cli.evaluation.reconstruct_sweep import reconstruct_sweep
    from semcom_cli.reconstruct.model import ReconstructModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "runs" / "reconstruct")
    args = parser.parse_args()
    out = args.output
    out.mkdir(parents=True, exist_ok=True)

    def sweep(name, methods, channels, snrs, shares=(0.7,), background="both", vqa=False):
        return reconstruct_sweep(args.checkpoint, list(methods), list(channels), list(snrs), [512], list(shares),
                                 args.limit, args.seed, 64, background, vqa, "webp", "auto", out / f"{name}.json")

    snrs = [0.0, 3.0, 6.0, 9.0, 12.0]
    main_doc = sweep("awgn", ("importance", "uniform", "digital"), ("awgn",), snrs, vqa=True)
    rayleigh = sweep("rayleigh", ("importance", "uniform", "digital"), ("rayleigh",), (0.0, 12.0))
    shares = sweep("roi-share", ("importance",), ("awgn",), (12.0,), shares=(0.3, 0.5, 0.7, 0.8, 0.9))
    plain = sweep("plain", ("importance", "uniform", "digital"), ("awgn",), (12.0,), background="plain")
    textured = sweep("textured", ("importance", "uniform", "digital"), ("awgn",), (12.0,), background="textured")

    imp, uni = _point(main_doc, "importance", 12.0), _point(main_doc, "uniform", 12.0)
    ceiling = main_doc["run"]["guidance"]["vqa_accuracy_original"]["value"]
    refined = _refinement(args)
    rows = [
        ("guidance IoU, test scenes, unseen wordings", main_doc["run"]["guidance"]["iou"], ">= 0.85", 0.85),
        ("ROI PSNR importance - uniform, AWGN 12 dB, 512 uses (dB)",
         imp["roi_psnr_db"]["value"] - uni["roi_psnr_db"]["value"], ">= +6", 6.0),
        ("whole-image PSNR, importance, 12 dB, plain backgrounds (dB)",
         _point(plain, "importance", 12.0)["psnr_db"]["value"], ">= 25", 25.0),
        ("whole-image PSNR, uniform, 12 dB, plain backgrounds (dB)",
         _point(plain, "uniform", 12.0)["psnr_db"]["value"], "(reported)", None),
        ("VQA accuracy on the reconstruction, referred object, 12 dB",
         imp["vqa_accuracy"]["value"], "(reported)", None),
        ("VQA accuracy on the original images (ceiling)", ceiling, "(reported)", None),
        ("VQA on the reconstruction / on the originals, 12 dB", imp["vqa_accuracy"]["value"] / ceiling,
         ">= 0.95", 0.95),
    ]
    for channel, doc in (("AWGN", main_doc), ("Rayleigh", rayleigh)):
        name = channel.lower()
        rows.append((f"ROI PSNR importance - uniform, {channel} 0 dB (dB)",
                     _point(doc, "importance", 0.0, name)["roi_psnr_db"]["value"]
                     - _point(doc, "uniform", 0.0, name)["roi_psnr_db"]["value"], ">= 0", 0.0))
    rows += [("ROI PSNR rise, roi-share 0.3 -> 0.9, 512 uses, 12 dB, true box (dB)", refined["roi_share"]["rise_db"],
              ">= +4", 4.0),
             ("ROI PSNR rise, budget 256 -> 2048 uses, share 0.7, 12 dB, true box (dB)", refined["budget"]["rise_db"],
              "(reported)", None)]
    margins = [_point(main_doc, "importance", s)["roi_psnr_db"]["value"]
               - _point(main_doc, "digital", s)["roi_psnr_db"]["value"] for s in snrs]
    rows.append(("ROI PSNR importance - digital, worst of 0..12 dB (dB)", min(margins), "> 0", 1e-9))
    if not args.skip_speed:
        speed = _speed(ReconstructModel.from_pretrained(args.checkpoint))
        rows.append(("encode + decode, images/s, guide excluded", speed["codec_images_per_s"], ">= 200", 200.0))
        rows.append(("encode + decode, images/s, guide included", speed["with_guide_images_per_s"], ">= 2", 2.0))
    else:
        speed = None
    failures = 0
    print(f"\n{'measure':64s} {'measured':>10s}  target")
    table = []
    for name, value, target, floor in rows:
        met = None if floor is None else value >= floor
        failures += met is False
        print(f"{name:64s} {value:10.3f}  {target} {'' if met is None else ('met' if met else 'MISSED')}")
        table.append({"measure": name, "value": value, "target": target, "met": met})
    doc = {"checkpoint": main_doc["run"]["checkpoint"], "checkpoint_hash": main_doc["run"]["checkpoint_hash"],
           "limit": args.limit, "seed": args.seed, "targets": table, "speed": speed,
           "refinement": refined,
           "importance_minus_digital_roi_psnr_db": dict(zip([str(s) for s in snrs], margins)),
           "rayleigh": {m: {str(s): _point(rayleigh, m, s, "rayleigh") for s in (0.0, 12.0)}
                        for m in ("importance", "uniform", "digital")},
           "roi_share": {str(p["roi_share"]): {k: p["metrics"][k]["value"] for k in ("roi_psnr_db", "bg_psnr_db",
                                                                                      "psnr_db")}
                         for p in shares["points"]},
           "textured_12db": {m: {k: v["value"] for k, v in _point(textured, m, 12.0).items()}
                             for m in ("importance", "uniform", "digital")},
           "plain_12db": {m: {k: v["value"] for k, v in _point(plain, m, 12.0).items()}
                          for m in ("importance", "uniform", "digital")}}
    (out / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
