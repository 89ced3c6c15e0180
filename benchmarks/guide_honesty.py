"""Does the guide say what it does not know? Its "unknown" and "not found" on test queries.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/guide_honesty.py [-c checkpoints/semcom-scenes]
                                                                       [--scenes 300] [--outside 600] [-o OUT.json]

Through the whole guide as the transmitter runs it (SmolLM2 reads the query, the parser, the image
network, the checkpoint's thresholds), on test scenes: queries naming an object the scene holds, in
the test split's own wordings; queries naming what the scene does not hold (a colour, shape,
colour-and-shape or corner it lacks); and unreadable queries made of held-out words no training query
uses (colours and shapes outside the 8 and 3, objects, attributes of no field, other languages,
nonsense, other requests). Targets (issue 35): ≥ 95 % of the unreadable and absent queries end
unknown or not found; ≤ 2 % of the present ones do. About 3 minutes on 2 cores.
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
    from semcom_cli.core.runtime import versions
    from semcom_cli.reconstruct.guidance.calibrate import measure_honesty
    from semcom_cli.reconstruct.model import ReconstructModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", type=Path, default=None)
    parser.add_argument("--scenes", type=int, default=300, help="test scenes (two present, one absent query each)")
    parser.add_argument("--outside", type=int, default=600, help="unreadable queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()

    model = ReconstructModel.from_pretrained(args.checkpoint, need_codec=False)
    started = time.time()
    result = measure_honesty(model.guide, args.scenes, args.outside, args.seed)
    targets = [
        {"measure": "unreadable or absent queries ending unknown / not found", "target": ">= 0.95",
         "value": result["unreadable_or_absent_stopped"], "met": result["unreadable_or_absent_stopped"] >= 0.95},
        {"measure": "queries naming a present object ending unknown / not found", "target": "<= 0.02",
         "value": result["present_stopped"], "met": result["present_stopped"] <= 0.02},
    ]
    doc = {"command": " ".join(["benchmarks/guide_honesty.py", *sys.argv[1:]]), "checkpoint": model.name,
           "checkpoint_hash": model.hash, "thresholds": model.guide.thresholds.model_dump(mode="json"),
           "seconds": round(time.time() - started, 1), "versions": versions(), **result, "targets": targets}
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(doc, indent=2) + "\n")
    for name, r in result["per_class"].items():
        print(f"  {name:<20} {100 * r['stopped']:5.1f} % stopped (n = {r['n']})")
    for t in targets:
        print(f"{t['measure']}: {100 * t['value']:.1f} % (target {t['target']}) {'met' if t['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
