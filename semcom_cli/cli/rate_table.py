"""Measure a checkpoint's rate table (accuracy per SNR × channel-use budget) for --channel-uses auto."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import (
    checkpoint_folder,
    checkpoint_option,
    console,
    device_option,
    fail_cleanly,
    parse_floats,
    parse_names,
    print_json,
    progress_bar,
    spinner,
)

NAME = "rate-table"


def _budgets(text: str) -> list[int]:
    from semcom_cli.core.errors import SemcomError

    out = []
    for v in parse_names(text):
        try:
            out.append(int(v))
        except ValueError:
            raise SemcomError(f"--channel-uses takes whole numbers (got {v[:40]!r})") from None
    return out


@fail_cleanly
def run(
    checkpoint: Optional[Path] = checkpoint_option(),
    snr: Optional[str] = typer.Option(None, "--snr",
                                      help="Comma list of SNRs (dB). [default: -10,-8,-5,-2,0,2,5,10,15,20]"),
    channel_uses: Optional[str] = typer.Option(None, "--channel-uses",
                                               help="Comma list of budgets per image. [default: 4,8,16,32,64,128]"),
    limit: int = typer.Option(200, "--limit", "-n", help="Questions per point (easy-vqa train split)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and the channel."),
    write: bool = typer.Option(False, "--write", help="Record the table in the checkpoint's manifest "
                                                     "(metrics.rate_table; the hash does not change)."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON to stdout."),
    device: Optional[str] = device_option(),
):
    from rich.table import Table

    from semcom_cli.channel import check_snr
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.limits import check_seed
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.evaluation.rate_table import measure_rate_table
    from semcom_cli.link.rate import check_budget
    from semcom_cli.link.rate.policy import DEFAULT_BUDGETS, DEFAULT_SNRS, RATE_METHODS
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import record_metrics
    from semcom_cli.tasks import get_task

    snrs = [check_snr(s) for s in parse_floats(snr)] if snr else list(DEFAULT_SNRS)
    budgets = _budgets(channel_uses) if channel_uses else list(DEFAULT_BUDGETS)
    if limit <= 0:
        raise SemcomError(f"--limit must be positive (got {limit})")
    check_seed(seed)
    folder = checkpoint_folder(checkpoint)
    model = SemcomModel.from_pretrained(folder, device=device)
    model.check_task(get_task("vqa"))
    for b in budgets:
        check_budget(b, model.preset.projector.n_tokens, model.symbols_per_token, model.reads_captions("image"))
    with spinner("loading the LLM and easy-vqa") as status:
        model.get_llm(status)
        data = EasyVQA.load("train")
    total = len(RATE_METHODS) * len(snrs) * len(budgets)
    with progress_bar("rate table", total) as update:
        done = [0]

        def on_point(method, s, budget, acc):
            done[0] += 1
            update(done[0], total, f"{method} {s:g} dB {budget} uses: {100 * acc:.1f} %")

        table = measure_rate_table(model, data, snrs=snrs, budgets=budgets, limit=limit, seed=seed,
                                   on_point=on_point)
    doc = {**table.to_json(), "checkpoint_hash": model.hash}
    if write:
        record_metrics(folder, {"rate_table": doc}, merge=True)
    if as_json:
        print_json(doc)
        return
    for method in RATE_METHODS:
        t = Table(title=f"{method}: VQA accuracy, AWGN, {limit} train questions per point")
        t.add_column("SNR dB", justify="right")
        for b in table.budgets:
            t.add_column(f"{b} uses", justify="right")
        for s, row in zip(table.snrs, table.accuracy[method]):
            t.add_row(f"{s:g}", *["—" if a is None else f"{100 * a:.1f}" for a in row])
        console.print(t)
    if write:
        console.print(f"recorded in {folder}/manifest.json (metrics.rate_table)")
