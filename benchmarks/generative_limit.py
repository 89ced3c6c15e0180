"""Where the quality decoder stops helping, and how sure it is: what ``--decoder auto`` reads.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/generative_limit.py [-c CKPT] [--limit 128]
        [--snr=-5,-2,0,3,6,9,12,20] [--methods importance,uniform] [--boxes true|guide]
        [--doubt-limit 48] [--samples 4]
        [--tolerance 0.02] [-o runs/generative-limit] [--record]

Test scenes with test-only wordings, coded as the CLI codes them (512 channel uses, ROI share 0.7; an
importance packet carries the query, which quality's guidance reads; a uniform one none), through AWGN
at each SNR. The
*same* received symbols are decoded by the fast decoder and by the quality decoder (20 steps), so the
two VQA accuracies on the reconstruction (the VQA checkpoint's answer about the referred object) are
compared per scene: the paired difference's mean and normal 95 % interval.

**The limit**, per coding method: the lowest SNR of the grid from which quality's VQA falls under fast's
by more than ``--tolerance`` (2 points) at no grid SNR above it (up to auto's ``snr_least_db``, where
auto keeps fast anyway); a smaller drop is within the noise of a few flipped answers. ``--record``
writes it into the checkpoint's manifest (``metrics.auto_quality_limit``, through
``io.checkpoint.record_metrics``: the content hash does not change), with the command, n, seed and every
point; ``auto`` reads it.

**The doubt**: for the first ``--doubt-limit`` scenes of the first method, quality draws ``--samples``
samples in one batch; per scene the samples' spread over the ROI (``sample_spread``) and the posterior's
standard deviation there (``posterior_std``) are kept beside whether VQA read the quality image right:
their means per SNR and how well each tells a right reconstruction from a wrong one (AUROC, 0.5:
not at all), pooled over SNRs and within each SNR.

Resumable: every finished point is kept in ``-o``/limit.json; a rerun skips them (``--fresh``: start over).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

USES, ROI_SHARE, STEPS, BATCH = 512, 0.7, 20, 64


def _auroc(scores: list[float], positives: list[bool]) -> float | None:
    """The probability that a positive scores above a negative (ties half); None without both kinds."""
    pos = [s for s, p in zip(scores, positives) if p]
    neg = [s for s, p in zip(scores, positives) if not p]
    if not pos or not neg:
        return None
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def measure_point(model, vqa_model, items, boxes, queries, method: str, snr: float, seed: int,
                  doubt_limit: int, samples: int) -> dict:
    import torch

    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.evaluation.reconstruct import vqa_right
    from semcom_cli.reconstruct.imaging.pipeline import encode_images, receive_streams

    channel = make_channel("awgn")
    seed_channel(seed)
    g = model.generative
    n = items.images.shape[0]
    starts = ([0] + list(range(doubt_limit, n, BATCH))) if doubt_limit else list(range(0, n, BATCH))
    ends = starts[1:] + [n]
    fast_images, quality_images, rows = [], [], []
    for start, end in zip(starts, ends):
        packets = encode_images(model, items.images[start:end], boxes[start:end], USES, ROI_SHARE, snr, method)
        streams, gains = [], []
        for p in packets:
            y, h = channel.send(p.stream[None, :, None], snr)
            streams.append(y[0, :, 0])
            gains.append(h.reshape(-1))
        r = receive_streams(streams, gains, snr, USES, ROI_SHARE, method)
        q = queries[start:end]
        f_img, f_choice = g.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, q, "fast")
        k = samples if start < doubt_limit else 1
        q_img, q_choice = g.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, q, "quality", STEPS,
                                   seed * 100_003 + start, samples=k)
        fast_images.append(f_img)
        quality_images.append(q_img)
        spread, spread_image = q_choice.per_image["sample_spread"], q_choice.per_image["sample_spread_image"]
        for i in range(end - start):
            rows.append({"posterior_std": float(f_choice.per_image["posterior_std"][i]),
                         "posterior_std_image": float(f_choice.per_image["posterior_std_image"][i]),
                         "sample_spread": float(spread[i]) if spread is not None else None,
                         "sample_spread_image": float(spread_image[i]) if spread is not None else None,
                         "quality_confidence": float(q_choice.per_image["confidence"][i]),
                         "fast_confidence": float(f_choice.per_image["confidence"][i])})
    fast_right = vqa_right(vqa_model, torch.cat(fast_images), items, seed)
    quality_right = vqa_right(vqa_model, torch.cat(quality_images), items, seed)
    for row, f, q in zip(rows, fast_right, quality_right):
        row.update(fast_right=f, quality_right=q)
    return {"method": method, "snr_db": snr, "rows": rows}


def summarise_point(point: dict) -> dict:
    from semcom_cli.evaluation.metrics import mean, proportion

    rows = point["rows"]
    diff = mean([r["quality_right"] - r["fast_right"] for r in rows])
    return {"method": point["method"], "snr_db": point["snr_db"], "n": len(rows),
            "vqa_fast": proportion([r["fast_right"] for r in rows]),
            "vqa_quality": proportion([r["quality_right"] for r in rows]),
            "quality_minus_fast": diff}


def limit_of(summaries: list[dict], method: str, snr_least_db: float, tolerance: float) -> float:
    """The lowest grid SNR from which quality's VQA does not fall under fast's (by more than ``tolerance``)
    at any grid point above it (below snr_least_db, where auto keeps fast anyway)."""
    grid = sorted((s for s in summaries if s["method"] == method and s["snr_db"] < snr_least_db),
                  key=lambda s: s["snr_db"])
    limit = grid[0]["snr_db"] if grid else snr_least_db
    for k, s in enumerate(grid):
        if s["quality_minus_fast"]["value"] < -tolerance:
            limit = grid[k + 1]["snr_db"] if k + 1 < len(grid) else snr_least_db
    return limit


def doubt_table(points: list[dict]) -> dict:
    """Per SNR the measures' means and AUROC for 'VQA read the quality image wrong' (higher doubt: wrong);
    pooled too."""
    names = ("posterior_std", "posterior_std_image", "sample_spread", "sample_spread_image")
    out, pooled = {}, {**{name: [] for name in names}, "wrong": []}
    for p in points:
        rows = [r for r in p["rows"] if r["sample_spread"] is not None]
        if not rows:
            continue
        wrong = [not r["quality_right"] for r in rows]
        entry = {"n": len(rows), "vqa_quality": sum(r["quality_right"] for r in rows) / len(rows)}
        for name in names:
            values = [r[name] for r in rows]
            entry[name] = sum(values) / len(values)
            entry[f"{name}_auroc_wrong"] = _auroc(values, wrong)
            pooled[name] += values
        entry["quality_confidence"] = sum(r["quality_confidence"] for r in rows) / len(rows)
        pooled["wrong"] += wrong
        out[f"{p['snr_db']:g}"] = entry
    out["pooled"] = {f"{name}_auroc_wrong": _auroc(pooled[name], pooled["wrong"])
                     for name in names} | {"n": len(pooled["wrong"])}
    return out


def main() -> None:
    import torch
    from torch.nn.functional import avg_pool2d

    from semcom_cli.evaluation.reconstruct import load_items
    from semcom_cli.io.checkpoint import record_metrics
    from semcom_cli.io.patches import PATCH, roi_box
    from semcom_cli.reconstruct.generative.decoder import QUALITY_LIMIT_KEY, embed_queries
    from semcom_cli.reconstruct.imaging.pipeline import guide_boxes
    from semcom_cli.reconstruct.model import ReconstructModel
    from semcom_cli.system import SemcomModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr", default="-5,-2,0,3,6,9,12,20")
    parser.add_argument("--methods", default="importance,uniform")
    parser.add_argument("--boxes", choices=("true", "guide"), default="true",
                        help="importance packets' ROI: the referred object's own box, or the guide's")
    parser.add_argument("--doubt-limit", type=int, default=48)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("-o", "--output", type=Path, default=REPO / "runs" / "generative-limit")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="a drop of quality's VQA under fast's that counts (default 2 points: one flipped "
                             "answer in 128 scenes is 0.8)")
    parser.add_argument("--record", action="store_true", help="write the limit into the checkpoint's manifest")
    parser.add_argument("--fresh", action="store_true", help="forget the points a previous run kept")
    args = parser.parse_args()
    snrs = [float(s) for s in args.snr.split(",")]
    methods = args.methods.split(",")
    args.output.mkdir(parents=True, exist_ok=True)
    store = args.output / "limit.json"
    settings = {"limit": args.limit, "seed": args.seed, "doubt_limit": args.doubt_limit, "samples": args.samples,
                "channel_uses": USES, "roi_share": ROI_SHARE, "steps": STEPS, "channel": "awgn",
                "boxes": args.boxes}
    kept = json.loads(store.read_text()) if store.is_file() and not args.fresh else {}
    if kept.get("settings") != settings:
        kept = {"settings": settings, "points": {}}
    model = ReconstructModel.from_pretrained(args.checkpoint)
    vqa_model = SemcomModel.from_pretrained(None)
    items = load_items(args.limit, seed=args.seed)
    queries = embed_queries(items.queries)
    boxes = []
    if args.boxes == "guide":
        for start in range(0, args.limit, BATCH):
            boxes += guide_boxes(model, items.images[start:start + BATCH], items.queries[start:start + BATCH])[1]
    else:  # the referred object's own box, as a guide that read the query right would mark it
        boxes = [roi_box(avg_pool2d(m[None, None].float(), PATCH)[0, 0], model.roi_threshold) for m in items.masks]
    for method in methods:
        for snr in snrs:
            key = f"{method}/{snr:g}"
            if key in kept["points"]:
                continue
            began = time.perf_counter()
            guided = method == "importance"  # a uniform packet carries no query (encode refuses one)
            point = measure_point(model, vqa_model, items, boxes if guided else [None] * len(boxes),
                                  queries if guided else torch.zeros_like(queries), method, snr, args.seed,
                                  args.doubt_limit if method == methods[0] else 0, args.samples)
            kept["points"][key] = point
            store.write_text(json.dumps(kept) + "\n")
            s = summarise_point(point)
            print(f"{key:>16s}: VQA fast {s['vqa_fast']['value']:.3f}, quality {s['vqa_quality']['value']:.3f}, "
                  f"q−f {s['quality_minus_fast']['value']:+.3f} [{s['quality_minus_fast']['ci95'][0]:+.3f}, "
                  f"{s['quality_minus_fast']['ci95'][1]:+.3f}] ({time.perf_counter() - began:.0f} s)", flush=True)
    points = [kept["points"][f"{m}/{s:g}"] for m in methods for s in snrs]
    summaries = [summarise_point(p) for p in points]
    snr_least = model.generative.denoiser[2].snr_least_db
    limits = {m: limit_of(summaries, m, snr_least, args.tolerance) for m in methods}
    doubt = doubt_table([p for p in points if p["method"] == methods[0]])
    command = "benchmarks/generative_limit.py " + " ".join(sys.argv[1:])
    record = {"snr_db": limits, "rule": f"the lowest grid SNR from which quality's VQA on the reconstruction falls "
                                        f"under fast's by more than {args.tolerance:g} at no grid SNR above it "
                                        f"(paired scenes)", "tolerance": args.tolerance,
              "command": command, "n": args.limit, "seed": args.seed, "channel": "awgn", "channel_uses": USES,
              "steps": STEPS, "boxes": args.boxes, "torch_threads": torch.get_num_threads(),
              "points": [{"method": s["method"], "snr_db": s["snr_db"], "vqa_fast": round(s["vqa_fast"]["value"], 4),
                          "vqa_quality": round(s["vqa_quality"]["value"], 4),
                          "quality_minus_fast": round(s["quality_minus_fast"]["value"], 4),
                          "ci95": [round(v, 4) for v in s["quality_minus_fast"]["ci95"]]} for s in summaries]}
    doc = {"record": record, "doubt": doubt, "summaries": summaries}
    (args.output / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"limits": limits, "doubt": doubt}, indent=1))
    if args.record:
        folder = model.folder
        print("checkpoint hash", record_metrics(folder, {QUALITY_LIMIT_KEY: record}, merge=True))


if __name__ == "__main__":
    main()
