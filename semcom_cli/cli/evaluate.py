"""Run the whole pipeline on easy-vqa test data over SNRs and channels; print a table, write JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import checkpoint_option, console, fail_cleanly, parse_floats, parse_names, print_json, write_json

NAME = "evaluate"


@fail_cleanly
def run(
    task: str = typer.Option("vqa", "--task", "-t", help="Comma list of tasks: vqa,caption,text."),
    snr: str = typer.Option("-5,0,10,20", "--snr", help="Comma list of SNRs (dB)."),
    channel: str = typer.Option("awgn", "--channel", help="Comma list: awgn,rayleigh,rician,none."),
    limit: int = typer.Option(200, "--limit", "-n", help="Questions (or captions, sentences) per point; 0 = all."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the channel."),
    batch_size: int = typer.Option(64, "--batch-size", help="Questions decoded per LLM batch."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write results as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the results JSON to stdout."),
    checkpoint: Path = checkpoint_option(),
):
    from ..channel import check_channel
    from ..checkpoint import load_checkpoint, versions
    from ..data import EasyVQA
    from ..errors import SemcomError
    from ..evaluation import evaluate
    from ..tasks import get_task
    from .common import progress_bar, spinner

    tasks = [get_task(t).name for t in parse_names(task)]
    channels = [check_channel(c) for c in parse_names(channel)]
    snrs = parse_floats(snr)
    if limit < 0 or batch_size <= 0:
        raise SemcomError("--limit must be ≥ 0 and --batch-size > 0")
    model = load_checkpoint(checkpoint)
    with spinner("loading the LLM and the easy-vqa test split") as status:
        model.get_llm(status)
        data = EasyVQA.load("test")
    records = []
    for t in tasks:
        for ch in channels:
            with progress_bar(f"{t} over {ch}", 1) as update:
                records += evaluate(model, data, t, snrs, ch, limit or None, seed, batch_size,
                                    on_progress=lambda d, n: update(d, n))
    result = {"checkpoint": model.name, "checkpoint_hash": model.hash, "preset": model.preset.name,
              "seed": seed, "limit": limit, "versions": versions(), "results": records}
    table = Table(title=f"semcom evaluate — {model.name}")
    for col in ("task", "channel", "SNR (dB)", "channel uses", "metric", "value", "n"):
        table.add_column(col, justify="right" if col not in ("task", "channel", "metric") else "left")
    for r in records:
        table.add_row(r["task"], r["channel"], f"{r['snr_db']:g}", f"{r['channel_uses']:g}", r["metric"],
                      f"{100 * r['value']:.1f}%", str(r["n"]))
    console.print(table)
    if output is not None:
        write_json(output, result)
    if as_json:
        print_json(result)
