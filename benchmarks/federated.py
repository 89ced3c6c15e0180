"""Federated split fine-tuning against its targets, in one run.

    .venv/bin/python benchmarks/federated.py [-c checkpoints/semcom-smollm2] [--work runs/federated]
                                             [-o docs/federated-bench.json] [--report-only] [--skip-eight]

On the shipped checkpoint and its ``train.federated`` recipe (4 devices × 15 rounds × 5 steps of 32
pictures: 300 server steps), measured at AWGN 5 dB:

1. the shipped checkpoint: VQA accuracy on the adapted domain's test set (outline, dark and photograph
   styles, 240 pictures each, test photographs, one question each in the generator's wordings) and on
   500 easy-vqa test questions;
2. federated, 4 non-IID devices, Flower's simulation engine (``semcom finetune --stage federated``):
   wall time, the same accuracies, bytes per round per device by kind;
3. centralised: the same split step, the same 300 steps of 32, on the union of the 4 devices' data;
4. federated, 8 devices holding the same 1,024 pictures split finer (128 each), 15 rounds × 3 steps
   (360 server steps);
5. with ``--variants``: the 4-device recipe with the devices' Adam moments kept between rounds, with
   25 rounds × 3 steps (300 server steps), with Flower's FedAvgM (server momentum 0.5, 0.3 and 0.2) and
   with FedProx (μ 0.5);
6. with ``--privacy``: the 4-device recipe U-shaped (labels stay on the devices), with Flower's SecAgg+
   averaging (its fronts against the plain run's: the fixed-point difference), and with central
   differential privacy (client-side clipping to ``DP_CLIP``, Gaussian noise) at ε = 8 and ε = 2
   (δ = 1e-5 over the 15 rounds, Flower's RDP accountant).
A checkpoint already under ``--work`` is not trained again, and one the earlier ``-o`` measured
(same hash) is not measured again.
Every run writes its checkpoint under ``--work``; prints the targets table and writes ``-o``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


PER_STYLE = 240  # domain test pictures per style (720 questions: ±1.5 points at 80 %)


def accuracies(folder: Path, earlier: dict | None = None) -> dict:
    """The checkpoint's accuracies; an earlier report's, when it measured the same checkpoint (hash)
    on the same test set."""
    from semcom_cli.federated.evaluate import domain_accuracy, easy_vqa_accuracy
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(folder)
    if earlier and earlier.get("hash") == model.hash and earlier.get("domain", {}).get("questions") == 3 * PER_STYLE:
        print(f"  {folder}: measured before (same hash)", flush=True)
        return {k: earlier[k] for k in ("checkpoint", "hash", "domain", "easy_vqa", "eval_seconds")}
    started = time.time()
    out = {"checkpoint": str(folder), "hash": model.hash,
           "domain": domain_accuracy(model, per_style=PER_STYLE), "easy_vqa": easy_vqa_accuracy(model, limit=500)}
    out["eval_seconds"] = round(time.time() - started, 1)
    print(f"  {folder}: domain {out['domain']['accuracy']:.3f} {out['domain']['by_style']}, "
          f"easy-vqa {out['easy_vqa']['accuracy']:.3f}", flush=True)
    return out


def federated(checkpoint: Path, output: Path, args: list[str], earlier: dict | None) -> dict:
    """``semcom finetune --stage federated`` as a user runs it; its wall time and summary (a run
    already there is not repeated: its wall time is the earlier report's)."""
    from semcom_cli.system.checkpoint import read_manifest

    if not (output / "manifest.json").is_file():
        command = [str(Path(sys.executable).with_name("semcom")), "finetune", "--stage", "federated", "-c",
                   str(checkpoint), "-o", str(output), *args]
        started = time.time()
        subprocess.run(command, check=True)
        wall = time.time() - started
    else:
        wall = (earlier or {}).get("wall_seconds")
    summary = read_manifest(output)["training"]["stages"][-1]
    return {"wall_seconds": round(wall, 1) if wall is not None else None, "summary": summary}


VARIANTS = {"federated_4_keep": {"keep_moments": True},
            "federated_4_steps3": {"local_steps": 3, "rounds": 25},
            "federated_4_fedavgm5": {"strategy": "fedavgm", "server_momentum": 0.5},
            "federated_4_fedavgm3": {"strategy": "fedavgm", "server_momentum": 0.3},
            "federated_4_fedavgm2": {"strategy": "fedavgm", "server_momentum": 0.2},
            "federated_4_fedprox5": {"strategy": "fedprox", "proximal_mu": 0.5}}


DP_CLIP = 5e-4  # see docs/federated.md: with 4 devices the noise on ~1 M averaged weights swamps any update


def privacy_variants(rounds: int) -> dict:
    from semcom_cli.federated.averaging import noise_for_epsilon

    return {"federated_4_ushaped": {"u_shaped": True},
            "federated_4_secagg": {"secure_aggregation": True},
            **{f"federated_4_dp{eps}": {"dp_noise": noise_for_epsilon(eps, rounds), "dp_clip": DP_CLIP}
               for eps in (8, 2)}}


def front_difference(a: Path, b: Path) -> dict:
    """Largest and RMS difference between two checkpoints' fronts (SecAgg+'s fixed point against plain)."""
    import numpy as np

    from semcom_cli.federated.split import front_parameters
    from semcom_cli.system import SemcomModel

    fa, fb = (front_parameters(SemcomModel.from_pretrained(f)) for f in (a, b))
    diffs = np.concatenate([(x - y).ravel() for x, y in zip(fa, fb)])
    return {"max_abs": float(np.abs(diffs).max()), "rms": float(np.sqrt((diffs ** 2).mean()))}


def variant(checkpoint: Path, output: Path, settings: dict, earlier: dict | None) -> dict:
    """The 4-device recipe with other ``train.federated`` settings, in the simulation engine."""
    from semcom_cli.federated.app import FederatedJob
    from semcom_cli.federated.run import run_in_simulation
    from semcom_cli.system.checkpoint import read_manifest

    wall = (earlier or {}).get("wall_seconds")
    if not (output / "manifest.json").is_file():
        started = time.time()
        run_in_simulation(FederatedJob(str(checkpoint), str(output),
                                       {f"train.federated.{k}": v for k, v in settings.items()}), 4)
        wall = round(time.time() - started, 1)
    return {"settings": settings, "wall_seconds": wall, "summary": read_manifest(output)["training"]["stages"][-1]}


def centralised(checkpoint: Path, output: Path, overrides: dict | None = None) -> dict:
    from semcom_cli.federated.centralised import train_centralised
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import read_history, read_manifest

    if not (output / "manifest.json").is_file():
        model = SemcomModel.from_pretrained(checkpoint, overrides or {})
        cfg = model.preset.train.federated
        summary = train_centralised(model, cfg.clients * cfg.rounds * cfg.local_steps)
        model.save_pretrained(output, training={"stages": read_history(checkpoint) + [summary]})
    return {"summary": read_manifest(output)["training"]["stages"][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", type=Path, default=REPO / "checkpoints" / "semcom-smollm2")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "federated")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "federated-bench.json")
    parser.add_argument("--report-only", action="store_true", help="print the table of an earlier -o")
    parser.add_argument("--skip-eight", action="store_true", help="leave out the 8-device run")
    parser.add_argument("--privacy", action="store_true",
                        help="also SecAgg+ and differential privacy at epsilon 8 and 2")
    parser.add_argument("--share-variant", action="store_true",
                        help="also FedAvgM 0.2 with a larger easy-vqa share on the devices (plain_share 0.4), against "
                             "a centralised run on the same data")
    parser.add_argument("--only", nargs="*", help="run only these (shipped, federated_4, centralised, federated_8 "
                                                  "or a variant); the others are copied from the earlier -o")
    parser.add_argument("--variants", action="store_true",
                        help="also the recipe's variants: device moments kept, 3 steps × 25 rounds, FedAvgM")
    args = parser.parse_args()
    if args.report_only:
        report(json.loads(args.output.read_text()))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(args.output.read_text()) if args.output.is_file() else {}
    doc: dict = {"machine": "2 CPU cores", "checkpoint": str(args.checkpoint)}

    def wanted(name: str) -> bool:
        if not args.only or name in args.only:
            return True
        if name in earlier:
            doc[name] = earlier[name]
        return False

    if wanted("shipped"):
        print("shipped checkpoint", flush=True)
        doc["shipped"] = accuracies(args.checkpoint, earlier.get("shipped"))
    four = args.work / "four"
    if wanted("federated_4"):
        print("federated, 4 devices (simulation engine)", flush=True)
        doc["federated_4"] = federated(args.checkpoint, four, [], earlier.get("federated_4")) | \
            accuracies(four, earlier.get("federated_4"))
    if wanted("centralised"):
        print("centralised, same steps", flush=True)
        central = args.work / "centralised"
        doc["centralised"] = centralised(args.checkpoint, central) | accuracies(central, earlier.get("centralised"))
    if args.skip_eight and "federated_8" in earlier:
        doc["federated_8"] = earlier["federated_8"]
    elif wanted("federated_8"):
        print("federated, 8 devices (same pictures, split finer)", flush=True)
        eight = args.work / "eight"
        doc["federated_8"] = federated(args.checkpoint, eight, ["--clients", "8", "--steps", "3"],
                                       earlier.get("federated_8")) | accuracies(eight, earlier.get("federated_8"))
    variants = dict(VARIANTS) if args.variants else {}
    if args.privacy:
        variants.update(privacy_variants(15))
    if variants:
        for name, settings in variants.items():
            print(f"variant {name}: {settings}", flush=True)
            if not wanted(name):
                continue
            folder = args.work / name
            doc[name] = variant(args.checkpoint, folder, settings, earlier.get(name)) | \
                accuracies(folder, earlier.get(name))
            save(args.output, {**earlier, **doc})  # each run as it ends: a stopped benchmark keeps what it measured
        if "federated_4_secagg" in doc and (four / "manifest.json").is_file():
            doc["federated_4_secagg"]["front_vs_plain"] = front_difference(args.work / "four",
                                                                           args.work / "federated_4_secagg")
    if args.share_variant:  # the devices' data change, so the centralised baseline is retrained on it
        share = {"plain_share": 0.4}
        folder = args.work / "centralised_share4"
        if wanted("centralised_share4"):
            overrides = {f"train.federated.{k}": v for k, v in share.items()}
            doc["centralised_share4"] = centralised(args.checkpoint, folder, overrides) | \
                accuracies(folder, earlier.get("centralised_share4"))
        folder = args.work / "federated_4_fedavgm2_share4"
        if wanted("federated_4_fedavgm2_share4"):
            settings = {"strategy": "fedavgm", "server_momentum": 0.2, **share}
            doc["federated_4_fedavgm2_share4"] = variant(args.checkpoint, folder, settings,
                                                         earlier.get("federated_4_fedavgm2_share4")) | \
                accuracies(folder, earlier.get("federated_4_fedavgm2_share4"))
    for name, entry in earlier.items():  # what this invocation did not run stays as the earlier report has it
        doc.setdefault(name, entry)
    save(args.output, doc)
    report(doc)


def save(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def report(doc: dict) -> None:
    def acc(run, part="domain"):
        return 100 * doc[run][part]["accuracy"]

    shipped, fed, cen = acc("shipped"), acc("federated_4"), acc("centralised")
    rows = [
        ("adapted domain, 4 devices vs centralised", f"{fed:.1f} vs {cen:.1f} ({fed - cen:+.1f})",
         "within 2 points", abs(fed - cen) <= 2 or fed > cen),
        ("adapted domain vs shipped", f"{fed:.1f} vs {shipped:.1f} ({fed - shipped:+.1f})", "≥ +10 points",
         fed - shipped >= 10 or (shipped > 85 and fed >= 95)),
        ("easy-vqa test after adaptation", f"{acc('federated_4', 'easy_vqa'):.1f} vs "
         f"{acc('shipped', 'easy_vqa'):.1f}", "≤ 1 point lower",
         acc("federated_4", "easy_vqa") >= acc("shipped", "easy_vqa") - 1),
    ]
    if "federated_8" in doc:
        rows.append(("8 devices, same data split finer", f"{acc('federated_8'):.1f} (easy-vqa "
                     f"{acc('federated_8', 'easy_vqa'):.1f})", "reported", None))
    per = doc["federated_4"]["summary"]["bytes_per_round_per_device"]
    rows.append(("MB per round per device", ", ".join(f"{k} {v / 1e6:.3f}" for k, v in per.items()), "reported",
                 None))
    if "federated_4_ushaped" in doc:
        u = doc["federated_4_ushaped"]["summary"]["bytes_per_round_per_device"]
        crossing = ", ".join(f"{k} {v / 1e6:.3f}" for k, v in u.items())
        rows.append(("U-shaped: what crosses per round per device",
                     f"{crossing} MB (labels: {u.get('labels', 0):.0f} B)", "no picture, caption or label id",
                     "labels" not in u))
    if "federated_4_secagg" in doc:
        secure = doc["federated_4_secagg"]
        worst = secure.get("front_vs_plain", {}).get("max_abs", float("nan"))
        rows.append(("SecAgg+ vs plain, adapted domain",
                     f"{acc('federated_4_secagg'):.1f} vs {fed:.1f} (fronts differ by ≤ {worst:.1e})",
                     "equal within the fixed point", None))
    for eps in (8, 2):
        if f"federated_4_dp{eps}" in doc:
            run = doc[f"federated_4_dp{eps}"]
            spent = run["summary"]["privacy"]["epsilon"]
            rows.append((f"DP ε = {eps} (spent {spent:.2f}) vs ε = ∞, adapted domain",
                         f"{acc(f'federated_4_dp{eps}'):.1f} vs {fed:.1f}",
                         "within 5 points" if eps == 8 else "reported",
                         (fed - acc(f"federated_4_dp{eps}") <= 5) if eps == 8 else None))
    wall = doc["federated_4"]["wall_seconds"] or doc["federated_4"]["summary"]["seconds"]
    rows.append(("simulated run, 4 devices, 2 cores", f"{wall / 60:.1f} min", "≤ 30 min", wall <= 1800))
    print("| measure | measured | target | |\n| --- | --- | --- | --- |")
    for name, value, target, met in rows:
        print(f"| {name} | {value} | {target} | {'' if met is None else ('met' if met else 'missed')} |")
    print("\n| run | server steps | adapted domain | outline | dark | photo | easy-vqa test | checkpoint |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    names = {"shipped": "shipped checkpoint", "federated_4": "federated, 4 devices (recipe)",
             "centralised": "centralised", "federated_8": "federated, 8 devices, 15 × 3 steps",
             "federated_4_keep": "federated, 4 devices, device moments kept",
             "federated_4_steps3": "federated, 4 devices, 25 rounds × 3 steps",
             "federated_4_fedavgm5": "federated, 4 devices, FedAvgM (server momentum 0.5)",
             "federated_4_fedavgm3": "federated, 4 devices, FedAvgM (server momentum 0.3)",
             "federated_4_fedavgm2": "federated, 4 devices, FedAvgM (server momentum 0.2)",
             "federated_4_fedprox5": "federated, 4 devices, FedProx (μ 0.5)",
             "centralised_share4": "centralised, easy-vqa share 0.4",
             "federated_4_fedavgm2_share4": "federated, 4 devices, FedAvgM 0.2, easy-vqa share 0.4",
             "federated_4_ushaped": "federated, 4 devices, U-shaped (labels stay on the devices)",
             "federated_4_secagg": "federated, 4 devices, SecAgg+ averaging",
             "federated_4_dp8": f"federated, 4 devices, DP ε = 8 (clip {DP_CLIP:g})",
             "federated_4_dp2": f"federated, 4 devices, DP ε = 2 (clip {DP_CLIP:g})"}
    for run, label in names.items():
        if run not in doc:
            continue
        r = doc[run]
        steps = r.get("summary", {}).get("steps", 0)
        styles = " | ".join(f"{100 * v:.1f}" for v in r["domain"]["by_style"].values())
        print(f"| {label} | {steps} | {100 * r['domain']['accuracy']:.1f} | {styles} | "
              f"{100 * r['easy_vqa']['accuracy']:.1f} | {r['hash'][:12]} |")


if __name__ == "__main__":
    main()
