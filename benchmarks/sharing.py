"""Multi-user sharing on the shipped checkpoint, against the targets (docs/results.md, "Multi-user sharing").

    .venv/bin/python benchmarks/sharing.py [--groups 100] [--snr 0] [--json out.json]

At the given SNR over AWGN, with --groups groups of users per row (seed 0):

- four users, one scene (scenario a): channel uses saved ≥ 60 %, accuracy ≤ 1 point below separate;
- four users whose scenes share an attribute (scenario b: same-color, same-shape):
  saving ≥ 30 %, accuracy ≤ 1 point below separate;
- one scene for 1, 2, 4, 8 users: the saving grows with the number of users;
- as-unrelated-as-possible scenes (distinct) for 1, 2, 4, 8 users: no group ever saves
  less than nothing (the smallest group's saving ≥ 0), and 1 or 2 users save exactly nothing.

Each check prints the measured value, the target and whether it is met; the exit code is the
number of checks missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--snr", type=float, default=0.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N [default: the preset's, cpu]")
    args = parser.parse_args()

    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.evaluation.share import SharePoint, evaluate_share_point
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(args.checkpoint, device=args.device)
    model.get_llm()
    data = EasyVQA.load("test")
    records: dict[tuple[str, int], dict] = {}

    def point(scenario: str, users: int) -> dict:
        if (scenario, users) not in records:
            records[(scenario, users)] = evaluate_share_point(
                model, data, SharePoint(scenario, users, "awgn", args.snr), args.groups)
            r = records[(scenario, users)]
            print(f"  measured {scenario:<12} {users} users: saving {100 * r['saving']['mean']:5.1f} %, accuracy "
                  f"{100 * r['accuracy']['shared']['value']:.1f} % shared vs "
                  f"{100 * r['accuracy']['separate']['value']:.1f} % separate", flush=True)
        return records[(scenario, users)]

    checks = []

    def check(name: str, value: float, target: float, higher: bool, unit: str = " %") -> None:
        met = value >= target if higher else value <= target
        checks.append({"check": name, "value": value, "target": target, "met": met})
        sign = "≥" if higher else "≤"
        print(f"{'ok  ' if met else 'MISS'} {name}: {value:+.1f}{unit} (target {sign} {target:+.1f}{unit})")

    for scenario, saving in (("same-scene", 60.0), ("same-color", 30.0), ("same-shape", 30.0)):
        r = point(scenario, 4)
        check(f"{scenario}, 4 users: fewer channel uses", 100 * r["saving"]["mean"], saving, True)
        check(f"{scenario}, 4 users: accuracy shared − separate", 100 * r["accuracy"]["difference"]["value"],
              -1.0, True, " points")
    growth = [point("same-scene", n)["saving"]["mean"] for n in (1, 2, 4, 8)]
    check("same-scene: saving grows from 1 to 2, 4, 8 users (smallest step)",
          100 * min(b - a for a, b in zip(growth, growth[1:])), 0.0, True)
    distinct = [point("distinct", n) for n in (1, 2, 4, 8)]
    check("distinct: smallest group's saving, any number of users", 100 * min(r["saving"]["min"] for r in distinct),
          0.0, True)
    check("distinct, 1-2 users: largest group's saving", 100 * max(r["saving"]["max"] for r in distinct[:2]),
          0.0, False)
    if args.json:
        args.json.write_text(json.dumps({"snr_db": args.snr, "groups": args.groups, "checks": checks,
                                         "points": list(records.values())}, indent=2, sort_keys=True) + "\n")
    return sum(not c["met"] for c in checks)


if __name__ == "__main__":
    sys.exit(main())
