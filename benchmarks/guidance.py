"""Query guidance (issue 16, first part): train the guidance network and measure its IoU.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/guidance.py [--steps 3000] [--batch-size 32]
                                                                  [--count 400] [-o runs/guidance]

Trains :class:`semcom_cli.guidance.GuidanceNet` on training scenes with training wordings (SmolLM2
reads the queries, frozen), then measures the IoU of its thresholded map against the referred
object's mask on validation scenes (training wordings) and test scenes (test-only wordings, held-out
photographs), per query kind. Writes the weights (safetensors), the settings and the figures as JSON
into ``-o``; a second run with ``--measure-only`` re-measures saved weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from semcom_cli.config import load_preset
    from semcom_cli.guidance import GuidanceNet, QueryReader
    from semcom_cli.guidance.train import GuidanceTrain, measure_iou, train_guidance
    from semcom_cli.models.llm import load_backbone
    from semcom_cli.runtime import versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=GuidanceTrain.steps)
    parser.add_argument("--batch-size", type=int, default=GuidanceTrain.batch_size)
    parser.add_argument("--lr", type=float, default=GuidanceTrain.lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=400, help="queries measured per split")
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "runs" / "guidance")
    args = parser.parse_args()

    cfg = GuidanceTrain(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    llm = load_backbone(load_preset("smollm2").backbone)
    reader = QueryReader(llm)
    args.output.mkdir(parents=True, exist_ok=True)
    weights = args.output / "guidance.safetensors"
    started = time.time()
    if args.measure_only:
        net = GuidanceNet(reader.dim, cfg.width)
        net.load_state_dict(load_file(weights))
        net.eval()
    else:
        net = train_guidance(reader, cfg, on_log=lambda step, loss, s: print(
            f"step {step}/{cfg.steps} loss {loss:.4f} {s:.0f} s", file=sys.stderr, flush=True))
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, weights)
    trained = time.time() - started
    results = {split: measure_iou(net, reader, split, args.count, args.seed) for split in ("val", "test")}
    doc = {"settings": asdict(cfg), "train_seconds": round(trained, 1), "results": results,
           "parameters": sum(p.numel() for p in net.parameters()), "versions": versions(),
           "query_layer": reader.layer}
    (args.output / "guidance.json").write_text(json.dumps(doc, indent=2) + "\n")
    for split, r in results.items():
        kinds = ", ".join(f"{k} {v:.3f}" for k, v in r["per_kind"].items())
        print(f"{split}: IoU {r['iou']:.3f} over {r['n']} queries ({kinds})")


if __name__ == "__main__":
    main()
