"""Fading measured against what the AWGN curve predicts for the same draws, and the diversity channel.

    .venv/bin/python benchmarks/fading.py [-c CHECKPOINT] [--limit 200] [--snr 0,10] [--json out.json]

With one fading draw per packet (block fading) a packet caught in a deep fade is lost for any code,
so Rayleigh accuracy is not compared with AWGN at the same average SNR but with its prediction: the
mean over packets of the AWGN accuracy at each packet's effective SNR |h|²·SNR, read off the AWGN
curve measured here (linear interpolation between its points; flat beyond them). Then the channel
with diversity (``rayleigh-iid``, a gain per symbol) against AWGN at the same SNR. All on the same
seeded VQA test questions; exit code 1 when a target is missed (Rayleigh within 2 points of its
prediction, rayleigh-iid at 0 dB within 5 points of AWGN).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Rayleigh's effective SNRs at 0 and 10 dB average fall mostly in [-20, 20] dB; beyond the ends the curve is flat
AWGN_GRID = [-20.0, -15.0, -10.0, -7.5, -5.0, -2.5, 0.0, 2.5, 5.0, 10.0, 20.0]


def answers_right(model, data, items, channel_name: str, snr_db: float, seed: int, batch: int = 64):
    """Per item: 1.0 when the answer is right; and each packet's fading power |h|² (mean per packet)."""
    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.tasks import get_task

    task = get_task("vqa")
    channel = make_channel(channel_name, model.preset.channel.model_dump(), model.device)
    seed_channel(seed)
    right, power = [], []
    with torch.no_grad():
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            tokens, mask = model.image_tokens(data.batch_images([i[0] for i in chunk]))
            y, h = channel.send(model.encode(tokens, mask, "image"), snr_db)
            received = model.receive(y, h, snr_db, mask, "image")
            answers = model.answer(["vqa"] * len(chunk), [i[1] for i in chunk], received, mask)
            right += [task.correct(a, i[2]) for a, i in zip(answers, chunk)]
            power += h.abs().pow(2).reshape(len(chunk), -1).mean(1).tolist()
    return np.array(right), np.array(power)


def interval(values: np.ndarray) -> tuple[float, float]:
    """95 % normal interval of a mean (the paired differences' or a proportion's)."""
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(values.mean() - half), float(values.mean() + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", default=str(REPO / "checkpoints" / "semcom-smollm2"))
    parser.add_argument("--limit", type=int, default=200, help="seeded VQA test questions")
    parser.add_argument("--snr", default="0,10", help="average SNRs for the fading checks (dB)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N [default: the preset's, cpu]")
    args = parser.parse_args()

    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.evaluation.points import sample_items
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(args.checkpoint, device=args.device)
    model.get_llm()
    data = EasyVQA.load("test")
    items = sample_items(data, "vqa", args.limit, args.seed)
    curve = {snr: float(answers_right(model, data, items, "awgn", snr, args.seed)[0].mean()) for snr in AWGN_GRID}
    print("AWGN curve: " + ", ".join(f"{s:g} dB {a:.1%}" for s, a in curve.items()))
    grid, accuracy = np.array(list(curve)), np.array(list(curve.values()))
    report = {"checkpoint": model.name, "checkpoint_hash": model.hash, "n": len(items), "seed": args.seed,
              "awgn_curve": curve, "rayleigh": [], "diversity": []}
    missed = 0
    for snr in (float(s) for s in args.snr.split(",")):
        right, power = answers_right(model, data, items, "rayleigh", snr, args.seed)
        predicted = np.interp(snr + 10 * np.log10(np.maximum(power, 1e-12)), grid, accuracy)
        gap = right - predicted
        low, high = interval(gap)
        ok = abs(gap.mean()) <= 0.02
        missed += not ok
        report["rayleigh"].append({"snr_db": snr, "measured": right.mean(), "predicted": predicted.mean(),
                                   "difference": gap.mean(), "interval": [low, high], "met": ok})
        print(f"Rayleigh {snr:g} dB: {right.mean():.1%} measured, {predicted.mean():.1%} predicted by AWGN "
              f"({gap.mean() * 100:+.1f} points [{low * 100:+.1f}, {high * 100:+.1f}]) {'met' if ok else 'MISSED'}")
    awgn_0 = answers_right(model, data, items, "awgn", 0.0, args.seed)[0]
    diverse = answers_right(model, data, items, "rayleigh-iid", 0.0, args.seed)[0]
    gap = diverse - awgn_0
    low, high = interval(gap)
    ok = gap.mean() >= -0.05
    missed += not ok
    report["diversity"].append({"channel": "rayleigh-iid", "snr_db": 0.0, "measured": diverse.mean(),
                                "awgn": awgn_0.mean(), "difference": gap.mean(), "interval": [low, high],
                                "met": ok})
    print(f"rayleigh-iid 0 dB: {diverse.mean():.1%} against AWGN {awgn_0.mean():.1%} ({gap.mean() * 100:+.1f} points "
          f"[{low * 100:+.1f}, {high * 100:+.1f}]) {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
