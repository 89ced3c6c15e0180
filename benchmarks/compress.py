"""Adaptive compression of the shipped checkpoint against its targets, in one run.

    .venv/bin/python benchmarks/compress.py [-c CHECKPOINT] [--budget-mb 900] [--limit 200]
                                            [-o runs/compress] [--report-only]

Runs ``semcom compress``'s default search (every candidate recipe built and measured in its own
processes: VQA accuracy at 0 and 10 dB and on reworded questions, text BLEU at 10 dB on a seeded
sample of the *train* split; decoding speed and peak memory of a receiver process decoding 256
received test packets in batches of 64, AWGN 10 dB, as ``benchmarks/speed.py``), writes the chosen
checkpoint to ``-o``/checkpoint, then measures the source and the chosen one again on the *test*
split. Prints the Pareto table and the targets table (ratios measured in this one run; exit code 1
when one is missed) and writes bench.json and pareto.png (accuracy against receiver size, one point
per candidate) to ``-o``. ``--report-only`` prints the tables of a finished run again and redraws
the plot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    markers = "*osD^v<>pXh"
    for i, r in enumerate(table):  # a legend, not labels: candidates of one size sit on top of each other
        worst = min(r["vqa_0db"], r["vqa_10db"]) * 100
        ax.scatter(r["receiver_mb"], worst, marker=markers[i % len(markers)], s=70, alpha=0.8,
                   label=f"{r['name']} ({r['questions_per_s']:.0f} q/s)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("receiver size on disk (MB, log)")
    ax.set_ylabel("VQA accuracy, worse of 0 and 10 dB (%)")
    ax.set_title("semcom compress: candidates (train-split sample)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_FLOOR = """
import json, sys
from semcom_cli.compression.measure import peak_resident_mb
from semcom_cli.models import SemcomModel  # noqa: F401  (what a receiver process imports)
from semcom_cli.models.llm import backbone_identity
model = SemcomModel.from_pretrained(sys.argv[1])
backbone_identity(model.preset.backbone, model.preset.seed)  # the base model's tokenizer
print(json.dumps({"runtime_floor_mb": peak_resident_mb()}))
"""


def _runtime_floor(checkpoint: Path) -> float:
    """Peak memory of a receiver process before its LLM: the interpreter, torch, transformers, the
    checkpoint's small parts and the tokenizer (the same for every candidate)."""
    import subprocess

    run = subprocess.run([sys.executable, "-c", _FLOOR, str(checkpoint)], capture_output=True, text=True,
                         cwd=REPO, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])["runtime_floor_mb"]


def _targets(doc: dict) -> list[tuple[str, str, str, bool]]:
    table, chosen = doc["table"], doc["chosen"]
    source = table[0]
    pick = next(r for r in table if r["name"] == chosen)
    test_src, test_pick = doc["test"]["source"], doc["test"]["chosen"]
    size_ratio = pick["receiver_mb"] / source["receiver_mb"]
    drop = max(test_src["vqa_0db"] - test_pick["vqa_0db"], test_src["vqa_10db"] - test_pick["vqa_10db"]) * 100
    speed = pick["questions_per_s"] / source["questions_per_s"]
    memory = pick["peak_rss_mb"] / source["peak_rss_mb"]
    floor = doc["runtime_floor_mb"]
    own = (pick["peak_rss_mb"] - floor) / (source["peak_rss_mb"] - floor)
    within3 = [r for r in table[1:] if (source["vqa_10db"] - r["vqa_10db"]) * 100 <= 3]
    smallest = min(within3, key=lambda r: r["receiver_mb"]) if within3 else None
    bleu = test_src["text_bleu_10db"] - test_pick["text_bleu_10db"]
    return [
        ("receiver size / float32", f"{size_ratio:.3f} ({pick['receiver_mb']:.0f} / {source['receiver_mb']:.0f} MB)",
         "≤ 0.25", size_ratio <= 0.25),
        ("VQA drop, test, worse of 0/10 dB", f"{drop:+.1f} points", "≤ 1", drop <= 1),
        ("decode questions/s / float32", f"{speed:.2f} ({pick['questions_per_s']:.1f} / "
         f"{source['questions_per_s']:.1f})", "≥ 2", speed >= 2),
        ("peak resident memory / float32", f"{memory:.2f} ({pick['peak_rss_mb']:.0f} / "
         f"{source['peak_rss_mb']:.0f} MB)", "≤ 0.5", memory <= 0.5),
        ("  the same above the runtime floor", f"{own:.2f} (floor {floor:.0f} MB)", "shown", True),
        ("smallest receiver within 3 points at 10 dB",
         f"{smallest['receiver_mb']:.0f} MB ({smallest['name']})" if smallest else "none", "reported", True),
        ("text BLEU drop at 10 dB, test", f"{bleu:+.1f}", "≤ 2", bleu <= 2),
        ("compress run time", f"{doc['search_s'] / 60:.1f} min", "≤ 20", doc["search_s"] <= 1200),
    ]


def _report(doc: dict) -> bool:
    print(f"{'recipe':<24}{'recv MB':>9}{'tx MB':>7}{'peak MB':>9}{'q/s':>7}{'0 dB':>7}{'10 dB':>7}"
          f"{'reworded':>9}{'BLEU':>7}  Pareto")
    for r in doc["table"]:
        mark = "*" if r["name"] == doc["chosen"] else " "
        print(f"{r['name'] + mark:<24}{r['receiver_mb']:>9.1f}{r['transmitter_mb']:>7.2f}{r['peak_rss_mb']:>9.0f}"
              f"{r['questions_per_s']:>7.1f}{r['vqa_0db']:>7.3f}{r['vqa_10db']:>7.3f}{r['vqa_rephrased_10db']:>9.3f}"
              f"{r['text_bleu_10db']:>7.1f}  {'yes' if r.get('pareto') else ''}")
    print(f"\ntest split, {doc['test']['limit']} per point: source {json.dumps(_short(doc['test']['source']))}")
    print(f"                     chosen {json.dumps(_short(doc['test']['chosen']))}\n")
    ok = True
    print(f"{'measure':<44}{'measured':<34}{'target':<10}")  # ratios: the chosen candidate / the source
    for name, value, target, met in _targets(doc):
        ok &= met
        print(f"{name:<44}{value:<34}{target:<10}{'✓' if met else '✗'}")
    return ok


def _short(figures: dict) -> dict:
    return {k: round(figures[k], 3) for k in ("vqa_0db", "vqa_10db", "vqa_rephrased_10db", "text_bleu_10db")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--checkpoint", type=Path, default=REPO / "checkpoints" / "semcom-smollm2")
    parser.add_argument("--budget-mb", type=float, default=900.0)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=REPO / "runs" / "compress")
    parser.add_argument("--report-only", action="store_true", help="print the tables of a finished run again")
    args = parser.parse_args()
    bench = args.output / "bench.json"
    if args.report_only:
        doc = json.loads(bench.read_text())
        if "runtime_floor_mb" not in doc:  # a run from before the floor was measured: measure it now
            doc["runtime_floor_mb"] = _runtime_floor(Path(doc["checkpoint"]))
            bench.write_text(json.dumps(doc, indent=2) + "\n")
        _plot(doc["table"], args.output / "pareto.png")
        sys.exit(0 if _report(doc) else 1)

    from semcom_cli.compression.measure import measure_checkpoint
    from semcom_cli.compression.search import compress_checkpoint

    args.output.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    result = compress_checkpoint(args.checkpoint, args.output / "checkpoint", args.budget_mb, None, None,
                                 args.limit, args.seed, status=lambda m: print(m, file=sys.stderr, flush=True))
    print("measuring the source and the chosen checkpoint on the test split", file=sys.stderr, flush=True)
    test = {"limit": args.limit,
            "source": measure_checkpoint(args.checkpoint, "test", args.limit, args.seed),
            "chosen": measure_checkpoint(args.output / "checkpoint", "test", args.limit, args.seed)}
    doc = {"checkpoint": str(args.checkpoint), "chosen": result.chosen["name"], "hash": result.hash,
           "budget_mb": args.budget_mb, "floor": result.floor, "search_s": result.seconds, "table": result.table,
           "test": test, "runtime_floor_mb": _runtime_floor(args.checkpoint), "bench_s": time.perf_counter() - began}
    bench.write_text(json.dumps(doc, indent=2) + "\n")
    _plot(result.table, args.output / "pareto.png")
    sys.exit(0 if _report(doc) else 1)


if __name__ == "__main__":
    main()
