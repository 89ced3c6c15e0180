"""VQA accuracy of the shipped pipeline at other channel-use budgets (8 and 64 per image by default).

    .venv/bin/python benchmarks/channel_uses.py [-c checkpoints/semcom-smollm2] [--symbols 2,16]
        [--snr=-5,0,20] [--limit 1000] [-o runs/channel-uses.json]

A budget is the codec's ``symbols_per_token`` × the image's 4 tokens. For each budget
the script keeps the checkpoint's vision encoder, projector and LoRA adapter, trains a
fresh channel codec of that width with the preset's own channel stage (its steps, SNR
range and channels), and evaluates VQA through it on the same seeded questions and
channel draws as ``semcom evaluate``. The adapter is the one instruction-tuned on the
checkpoint's own codec: it has not seen this codec's errors (the checkpoint's own
budget is evaluated alongside, for comparison).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semcom_cli.config.preset import apply_overrides
from semcom_cli.core.resources import default_checkpoint
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.evaluation import Point, Settings, evaluate_point
from semcom_cli.system import SemcomModel
from semcom_cli.training.stages import train_channel


def with_codec_width(model: SemcomModel, symbols_per_token: int) -> SemcomModel:
    """The same transmitter front end, LLM and adapter, with an untrained codec of another width."""
    preset = apply_overrides(model.preset, {"codec.symbols_per_token": symbols_per_token})
    other = SemcomModel(preset, model.embed_dim)
    other.vision.load_state_dict(model.vision.state_dict())
    other.projector.load_state_dict(model.projector.state_dict())
    other.llm, other.adapter_dir, other.base_model_sha256 = model.get_llm(), model.adapter_dir, model.base_model_sha256
    other.name = f"{model.name} (codec: {symbols_per_token} symbols per token)"
    other.requires_grad_(False)
    return other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--checkpoint", default=str(default_checkpoint()))
    parser.add_argument("--symbols", default="2,16", help="symbols per token to train, comma-separated")
    parser.add_argument("--snr", default="-5,0,20", help="comma-separated, dB")
    parser.add_argument("--limit", type=int, default=1000, help="VQA questions per point")
    parser.add_argument("-o", "--output", default="runs/channel-uses.json")
    args = parser.parse_args()

    model = SemcomModel.from_pretrained(args.checkpoint)
    train_data, test_data = EasyVQA.load("train"), EasyVQA.load("test")
    settings = Settings(limit=args.limit, seed=0)
    snrs = [float(s) for s in args.snr.split(",")]
    rows = []
    widths = [model.symbols_per_token] + [int(s) for s in args.symbols.split(",")]
    for width in widths:
        started = time.time()
        if width == model.symbols_per_token:
            candidate, trained = model, None
        else:
            candidate = with_codec_width(model, width)
            trained = train_channel(candidate, candidate.get_llm(), train_data)
        uses = width * model.preset.projector.n_tokens
        for snr in snrs:
            point = Point("semantic", "vqa", "awgn", snr, None)
            record = evaluate_point({"main": candidate}, test_data, point, settings)
            accuracy = record["metrics"]["accuracy"]
            rows.append({"channel_uses": uses, "snr_db": snr, "accuracy": accuracy, "codec_training": trained,
                         "own_codec": trained is None})
            print(f"{uses:>3} uses  {snr:>5g} dB  VQA {accuracy['value']:.1%} (n={accuracy['n']})", flush=True)
        print(f"    ({time.time() - started:.0f} s)", flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"format": "semcom-channel-uses/1", "checkpoint": args.checkpoint,
                               "checkpoint_hash": model.hash, "settings": vars(settings), "points": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
