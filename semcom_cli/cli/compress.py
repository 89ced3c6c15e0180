"""Compress a checkpoint to fit a device's memory: int8, a smaller vocabulary, fewer layers, chosen by measurement.

Every candidate recipe is built and measured in its own process (VQA accuracy at 0 and 10 dB, text
BLEU, questions per second, the receiver's peak memory, sizes on disk); the fastest whose peak
memory fits --budget-mb and whose accuracy (questions as worded in training, at 0 and 10 dB, and
reworded) is at or above the floor is written to --output, with
the whole table in its manifest. The output loads in decode and evaluate like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import checkpoint_folder, checkpoint_option, console, fail_cleanly, parse_names, print_json
from semcom_cli.core.outputs import FORCE_HELP

NAME = "compress"


@fail_cleanly
def run(
    output: Path = typer.Option(..., "--output", "-o", help="Folder of the compressed checkpoint."),
    budget_mb: float = typer.Option(..., "--budget-mb", help="Most resident memory (MB) the receiver may peak at "
                                                             "while decoding (measured, batches of 64)."),
    checkpoint: Optional[Path] = checkpoint_option(),
    min_accuracy: Optional[float] = typer.Option(None, "--min-accuracy", help="Least VQA accuracy (0-1) at 0 and at "
                                                 "10 dB and on reworded questions; default: the source's less one "
                                                 "point (two reworded)."),
    recipes: Optional[str] = typer.Option(None, "--recipes", help="Comma list of candidate recipes (default: all)."),
    limit: int = typer.Option(200, "--limit", help="Questions (and sentences) per measured point."),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation sample, calibration and channel."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.compression.recipe import RECIPES
    from semcom_cli.compression.search import NoCandidateFits, compress_checkpoint, compress_settings
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.outputs import check_output
    from semcom_cli.io.checkpoint import checkpoint_output
    from semcom_cli.system.checkpoint import read_manifest

    source = checkpoint_folder(checkpoint)
    compress_settings(budget_mb=budget_mb, min_accuracy=min_accuracy, limit=limit, seed=seed)
    check_output(output, [source], kind=checkpoint_output("semcom"), force=force)
    read_manifest(source)  # one line now for a folder that is not a checkpoint
    chosen_recipes = None
    if recipes is not None:
        names = parse_names(recipes)
        if not names:
            raise SemcomError(f"--recipes names no recipe (choose from: {', '.join(RECIPES)})")
        chosen_recipes = [RECIPES.lookup(n) for n in names]
    try:
        with console.status("compressing", spinner="dots"):
            # progress lines on a terminal only: in a log, the error (if any) stays the one line
            result = compress_checkpoint(source, output, budget_mb, min_accuracy, chosen_recipes, limit, seed,
                                         status=console.log if console.is_terminal else None)
    except NoCandidateFits as err:
        if as_json:  # what was measured still goes to stdout; nothing is written
            print_json({"output": None, "chosen": None, "budget_mb": budget_mb, "floor": err.result.floor,
                        "table": err.result.table})
        raise
    doc = {"output": str(output), "hash": result.hash, "chosen": result.chosen["name"], "budget_mb": budget_mb,
           "floor": result.floor, "search_s": round(result.seconds, 1), "table": result.table}
    if as_json:
        print_json(doc)
        return
    _print_table(result.table, result.chosen["name"])
    console.print(f"wrote {output} ({result.chosen['name']}, hash {result.hash[:12]}…) in {result.seconds:.0f} s")


def _print_table(table: list[dict], chosen: str) -> None:
    from rich.table import Table

    out = Table(title="candidates (receiver measured in its own process)")
    for column in ("recipe", "receiver MB", "transmitter MB", "peak MB", "q/s", "VQA 0 dB", "VQA 10 dB",
                   "reworded 10 dB", "BLEU 10 dB", "Pareto"):
        out.add_column(column)
    for r in table:
        mark = " ✓" if r["name"] == chosen else ""
        out.add_row(r["name"] + mark, f"{r['receiver_mb']:.1f}", f"{r['transmitter_mb']:.2f}",
                    f"{r['peak_rss_mb']:.0f}", f"{r['questions_per_s']:.1f}", f"{r['vqa_0db']:.3f}",
                    f"{r['vqa_10db']:.3f}", f"{r['vqa_rephrased_10db']:.3f}", f"{r['text_bleu_10db']:.1f}",
                    "yes" if r.get("pareto") else "")
    console.print(out)
