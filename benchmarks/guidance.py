"""Query guidance: train the guide's two parts and measure its IoU.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/guidance.py [--steps 3000] [--count 400]
                                                                  [-o runs/guidance] [--measure-only]

Trains the image network on training scenes with their referents and the referent parser on
training wordings (SmolLM2 reads the queries, frozen), then measures the IoU of the thresholded map
against the referred object's mask on validation scenes (training wordings) and test scenes
(test-only wordings, held-out photographs), per query kind, through the whole guide (text → LLM →
parser → map) and with the true referent. Writes the weights, settings and figures into ``-o``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from semcom_cli.config.preset import load_preset
    from semcom_cli.core.runtime import versions
    from semcom_cli.models.llm import load_backbone
    from semcom_cli.reconstruct.guidance.store import load_guide, save_guide, train_guide
    from semcom_cli.reconstruct.guidance.train import GuidanceTrain, measure_iou

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=GuidanceTrain.model_fields["steps"].default)
    parser.add_argument("--batch-size", type=int, default=GuidanceTrain.model_fields["batch_size"].default)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", type=int, default=GuidanceTrain.model_fields["pool"].default, help="training scenes")
    parser.add_argument("--count", type=int, default=400, help="queries measured per split")
    parser.add_argument("--measure-only", action="store_true")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "runs" / "guidance")
    args = parser.parse_args()

    cfg = GuidanceTrain(steps=args.steps, batch_size=args.batch_size, seed=args.seed, pool=args.pool)
    llm = load_backbone(load_preset("smollm2").backbone)
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if args.measure_only:  # the settings a run of this script left beside the parts
        guide = load_guide(args.output, json.loads((args.output / "guide.json").read_text()), llm)
    else:
        guide, _ = train_guide(llm, cfg, on_log=lambda step, loss, s: print(
            f"step {step}/{cfg.steps} loss {loss:.4f} {s:.0f} s", file=sys.stderr, flush=True))
        save_guide(args.output, guide, cfg)
        (args.output / "guide.json").write_text(json.dumps({"guidance": cfg.model_dump(mode="json"), "query_layer": guide.reader.layer}))
    trained = time.time() - started
    results = {split: measure_iou(guide, split, args.count, args.seed) for split in ("val", "test")}
    doc = {"settings": cfg.model_dump(mode="json"), "train_seconds": round(trained, 1), "results": results,
           "parameters": sum(p.numel() for p in guide.net.parameters()), "versions": versions(),
           "query_layer": guide.reader.layer}
    (args.output / "guidance.json").write_text(json.dumps(doc, indent=2) + "\n")
    for split, r in results.items():
        kinds = ", ".join(f"{k} {v:.3f}" for k, v in r["per_kind"].items())
        print(f"{split}: IoU {r['iou']:.3f} (true referent {r['iou_true_referent']:.3f}, parser "
              f"{r['parser_accuracy']:.3f}) over {r['n']} queries ({kinds})")


if __name__ == "__main__":
    main()
