"""``semcom evaluate --share``: channel uses and accuracy of multi-user sharing against separate sending.

Sweeps scenarios (how related the users' content is) × number of users × channel × SNR;
every point draws ``--limit`` groups of users (seeded) and measures both schemes on the same
images, questions and channel draws. JSON (``format: semcom-share-evaluate/1``) and PNG plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import SemcomError
from .common import console, parse_floats, parse_names, print_json, progress_bar, spinner, write_json

FORMAT = "semcom-share-evaluate/1"


def parse_users(text: str) -> list[int]:
    out = []
    for v in parse_names(text):
        try:
            n = int(v)
        except ValueError:
            n = 0
        if not 1 <= n <= 8:
            raise SemcomError(f"--users takes numbers of users from 1 to 8 (got {v!r})")
        out.append(n)
    if not out:
        raise SemcomError("--users needs at least one number")
    return list(dict.fromkeys(out))


def share_sweep(checkpoint: Optional[Path], task: str, scenarios: str, users: str, channels: str, snrs: str,
                groups: int, seed: int, threshold: Optional[float], batch_size: int, output: Optional[Path],
                as_json: bool, neutral: bool = False) -> None:
    from ..channel import check_channel
    from ..checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, versions
    from ..data import EasyVQA
    from ..scenarios import check_scenario
    from ..share_evaluation import SharePoint, evaluate_share_point
    from ..sharing import DEFAULT_THRESHOLD

    if task not in ("vqa", "caption"):
        raise SemcomError(f"--share evaluates the image tasks vqa and caption (got '{task}')")
    names = [check_scenario(s) for s in parse_names(scenarios)]
    counts = parse_users(users)
    chans = [check_channel(c) for c in parse_names(channels)]
    if "none" in chans:
        raise SemcomError("--share compares schemes over a noisy channel: awgn, rayleigh or rician")
    levels = parse_floats(snrs)
    if groups < 1:
        raise SemcomError(f"--limit: groups of users per point must be at least 1 (got {groups})")
    if batch_size < 1:
        raise SemcomError(f"--batch-size must be at least 1 (got {batch_size})")
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not 0.0 <= threshold < 2.0:
        raise SemcomError(f"--threshold must be in [0, 2) (got {threshold})")
    points = [SharePoint(s, n, c, snr) for s in names for n in counts for c in chans for snr in levels]
    model = load_checkpoint(checkpoint or DEFAULT_CHECKPOINT)
    with spinner("loading the LLM and the easy-vqa test split") as status:
        model.get_llm(status)
        data = EasyVQA.load("test")
    run = {"checkpoint": model.name, "checkpoint_hash": model.hash, "preset": model.preset.name, "task": task,
           "groups": groups, "seed": seed, "threshold": threshold, "power_neutral": neutral,
           "versions": versions(),
           "snr_floor_db": model.preset.train.channel.snr_min}
    records = []
    total = sum(2 * p.users * groups for p in points)
    finished = 0
    with progress_bar("evaluate --share", total) as update:
        for point in points:
            base = finished
            records.append(evaluate_share_point(
                model, data, point, groups, seed, task, threshold, batch_size, neutral,
                on_progress=lambda d, n: update(base + d, total, point.key)))
            finished += 2 * point.users * groups
            update(finished, total, point.key)
    doc = {"format": FORMAT, "run": run, "points": records}
    _print_table(doc)
    if output is not None:
        from ..report import plot_share

        write_json(output, doc)
        plots = plot_share(doc, output.with_suffix(""))
        console.print(f"wrote {output} and {len(plots)} plots")
    if as_json:
        print_json(doc)


def _print_table(doc: dict) -> None:
    from rich.table import Table

    table = Table(title=f"evaluate --share — {doc['run']['checkpoint']}, {doc['run']['task']}, "
                        f"{doc['run']['groups']} groups per row", padding=(0, 0))
    # short headers: the table fits an 80-column terminal
    for col in ("scenario", "users", "ch", "SNR", "uses", "separate", "saved", "acc", "acc sep", "Δ acc [95% CI]"):
        table.add_column(col, justify="left" if col in ("scenario", "ch") else "right", no_wrap=True)
    for p in doc["points"]:
        a, d = p["accuracy"], p["accuracy"]["difference"]
        table.add_row(p["scenario"], str(p["users"]), p["channel"][:4], f"{p['snr_db']:g}",
                      f"{p['channel_uses']['shared']:.1f}", f"{p['channel_uses']['separate']:.1f}",
                      f"{100 * p['saving']['mean']:.1f}%", f"{100 * a['shared']['value']:.1f}%",
                      f"{100 * a['separate']['value']:.1f}%",
                      f"{100 * d['value']:+.1f} [{100 * d['ci95'][0]:+.1f},{100 * d['ci95'][1]:+.1f}]")
    console.print(table)
