"""``semcom evaluate --share``: channel uses and accuracy of multi-user sharing against separate sending.

Sweeps scenarios (how related the users' content is) × number of users × channel × SNR;
every point draws ``--limit`` groups of users (seeded) and measures both schemes on the same
images, questions and channel draws. JSON (``format: semcom-share-evaluate/1``) and PNG plots.
With ``--channel-uses N`` both schemes run at a variable rate with that budget per user, shared
out by importance to each user's question; sharing then buys copies instead of saving uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from semcom_cli.cli.common import (
    checkpoint_folder,
    console,
    parse_floats,
    parse_names,
    print_json,
    progress_bar,
    spinner,
    write_json,
)
from semcom_cli.core.errors import SemcomError


def parse_users(text: str) -> list[int]:
    out = []
    for v in parse_names(text):
        try:
            n = int(v)
        except ValueError:
            raise SemcomError(f"--users takes numbers of users from 1 to 8 (got {v!r})") from None
        out.append(n)
    if not out:
        raise SemcomError("--users needs at least one number")
    return list(dict.fromkeys(out))


def share_sweep(checkpoint: Optional[Path], task: str, scenarios: str, users: str, channels: str, snrs: str,
                groups: int, seed: int, threshold: Optional[float], batch_size: int, output: Optional[Path],
                as_json: bool, device: Optional[str] = None, channel_uses: Optional[str] = None) -> None:
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.evaluation.share import ShareSweep, share_sweep
    from semcom_cli.link.sharing import DEFAULT_THRESHOLD
    from semcom_cli.system import SemcomModel

    budget = None
    if channel_uses is not None:
        try:
            budget = int(channel_uses)
        except ValueError:
            raise SemcomError(f"--share takes one whole budget of channel uses per user (got {channel_uses[:40]!r})"
                              ) from None
    sweep = ShareSweep(tuple(parse_names(scenarios)), tuple(parse_users(users)), tuple(parse_names(channels)),
                       tuple(parse_floats(snrs)), groups, seed, task,
                       DEFAULT_THRESHOLD if threshold is None else threshold, batch_size, budget).check()
    if output is not None:
        from semcom_cli.core.outputs import check_output

        check_output(output, [checkpoint_folder(checkpoint)])
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    with spinner("loading the LLM and the easy-vqa test split") as status:
        model.get_llm(status)
        data = EasyVQA.load("test")
    with progress_bar("evaluate --share", 1) as update:
        doc = share_sweep(sweep, model, data, on_progress=update)
    _print_table(doc)
    if output is not None:
        from semcom_cli.evaluation.report import plot_share

        write_json(output, doc)
        plots = plot_share(doc, output.with_suffix(""))
        console.print(f"wrote {output} and {len(plots)} plots")
    if as_json:
        print_json(doc)


def _print_table(doc: dict) -> None:
    """The sweep's tables, each fitting the terminal: channel uses, then accuracy (percentage points)."""
    from semcom_cli.core.terminal import printable
    from semcom_cli.evaluation.report import Column, fitted_tables, numbered

    points = doc["points"]
    keys = [Column("scenario", [printable(p["scenario"]) for p in points], left=True),
            Column("users", [str(p["users"]) for p in points]),
            Column("channel", [printable(p["channel"]) for p in points], left=True, said=str),
            Column("SNR dB", [f"{p['snr_db']:g}" for p in points], said=lambda v: f"{v} dB")]

    def percent(header: str, values: list[float], family: str) -> Column:
        return Column(header, [f"{100 * v:.1f}" for v in values], family=family)

    def difference(p: dict) -> str:
        d = p["accuracy"]["difference"]
        return f"{100 * d['value']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"

    values = [Column("uses", [f"{p['channel_uses']['shared']:.1f}" for p in points], family="uses"),
              Column("separate uses", [f"{p['channel_uses']['separate']:.1f}" for p in points], family="uses"),
              percent("saved %", [p["saving"]["mean"] for p in points], "uses"),
              percent("acc %", [p["accuracy"]["shared"]["value"] for p in points], "accuracy"),
              percent("separate acc %", [p["accuracy"]["separate"]["value"] for p in points], "accuracy"),
              Column("Δ acc, points [95% CI]", [difference(p) for p in points], family="accuracy")]
    title = printable(f"evaluate --share — {doc['run']['checkpoint']}, {doc['run']['task']}, "
                      f"{doc['run']['groups']} groups per row")
    for table in numbered(fitted_tables(title, keys, values, console.width)):
        console.print(table)
