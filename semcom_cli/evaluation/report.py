"""Results of an evaluation run: the JSON document, its CSV, its plots, its floors.

The JSON (``format: semcom-evaluate/1``) holds ``run`` (checkpoint and its hash,
preset, seeds, sample size, package versions, the command's settings) and
``points``: one record per (method, task, channel, SNR, channel uses) with each
metric as ``{value, n, ci95}``. Every CSV row and plot is derived from it, so
``semcom evaluate --plot results.json`` redraws a saved run.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from semcom_cli.config.preset import short_repr
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes, read_json_file
from semcom_cli.core.terminal import printable

__all__ = ["FORMAT", "load_results", "csv_text", "plot_results", "check_floors", "point_label", "metric_names",
           "plot_share", "Unit", "UNITS", "unit_of", "KID_MIN_N", "metric_note", "result_notes", "results_tables",
           "Column", "fitted_tables", "numbered", "best_codecs", "method_name"]

FORMAT = "semcom-evaluate/1"


@dataclass(frozen=True)
class Unit:
    """How a metric is shown: its table header and plot label (both naming the unit), the factor from the
    stored value (accuracies are stored as 0-1) to the shown one, and its decimals."""

    header: str
    label: str
    scale: float = 1.0
    decimals: int = 1
    family: str = ""  # metrics of one family share a table (PSNRs with PSNRs) where the width allows

    def show(self, value: float) -> str:
        return f"{self.scale * value:.{self.decimals}f}"


# The order of a table's columns: the answers' measures, the image's (PSNRs, SSIMs), then what is read from
# the reconstruction. A metric not listed is shown under its own name, as stored.
UNITS: dict[str, Unit] = {
    "accuracy": Unit("acc %", "accuracy (%)", 100),
    "exact_match": Unit("exact %", "exact match (%)", 100),
    "bleu": Unit("BLEU", "BLEU (0-100)"),
    "similarity": Unit("sim ×100", "MiniLM similarity (×100)", 100),
    "delivered": Unit("delivered %", "packets delivered (%)", 100),
    "psnr_db": Unit("PSNR dB", "PSNR (dB)", 1, 2, "psnr"),
    "roi_psnr_db": Unit("ROI PSNR dB", "PSNR inside the referred object (dB)", 1, 2, "psnr"),
    "bg_psnr_db": Unit("bg PSNR dB", "PSNR of the background (dB)", 1, 2, "psnr"),
    "ssim": Unit("SSIM", "SSIM (0-1)", 1, 3, "ssim"),
    "roi_ssim": Unit("ROI SSIM", "SSIM inside the referred object (0-1)", 1, 3, "ssim"),
    "bg_ssim": Unit("bg SSIM", "SSIM of the background (0-1)", 1, 3, "ssim"),
    "vqa_accuracy": Unit("VQA %", "VQA accuracy on the reconstruction (%)", 100),
    "kid": Unit("KID ×1000", "KID (×1000, lower is closer)", 1, 2),
    "iou": Unit("guide IoU", "guide IoU (0-1)", 1, 3),
}

# KID compares two distributions through subsets of 50 images; under 50 its estimate is noise (it can be
# far below zero), so it is printed and plotted with a note rather than as a figure to read.
KID_MIN_N = 50


def unit_of(metric: str) -> Unit:
    """The metric's :class:`Unit`; a metric without one is shown under its own name, as stored."""
    return UNITS.get(metric) or Unit(metric, metric, 1, 3)


def metric_note(metric: str, record: dict) -> str | None:
    """Why a measured value means little (KID under :data:`KID_MIN_N` images), or None; a record that
    carries a ``note`` (the sweep writes one) gives it."""
    if record.get("note"):
        return str(record["note"])
    if metric == "kid" and record["n"] < KID_MIN_N:
        return f"KID at n={record['n']} is not meaningful (n < {KID_MIN_N})"
    return None


def result_notes(doc: dict) -> list[str]:
    """Every distinct :func:`metric_note` of a results document, in order (one warning line each)."""
    return list(dict.fromkeys(note for p in doc["points"] for name, m in p["metrics"].items()
                              if (note := metric_note(name, m))))


def load_results(path: Path) -> dict:
    """A results JSON written by ``semcom evaluate`` (one clear error otherwise)."""

    doc = read_json_file(path, "json", "results file")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("points"), list):
        raise SemcomError(f"{path}: not a semcom evaluate results file (format {FORMAT})")
    for i, point in enumerate(doc["points"]):
        check_point_record(point, f"{path}: point {i}")
    run = doc.get("run")
    if not (isinstance(run, dict) and all(isinstance(run.get(k), str) for k in ("checkpoint", "checkpoint_hash",
                                                                                   "preset"))):
        raise SemcomError(f"{path}: not a semcom evaluate results file (no run record)")
    return doc


_POINT_FIELDS = {"method": str, "task": str, "channel": str, "channel_uses_mean": (int, float), "metrics": dict,
                 "seed": int}


# task, channel and metric names become parts of the plots' file names: a plain name, never a path
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def check_point_record(point, where: str) -> None:
    """One measured point as ``evaluate`` writes it: its fields, and each metric's value, n and interval."""
    if not isinstance(point, dict) or any(not isinstance(point.get(k), t) for k, t in _POINT_FIELDS.items()):
        raise SemcomError(f"{where}: not a point record of semcom evaluate")
    for field in ("task", "channel"):
        if not _PLAIN_NAME.fullmatch(point[field]):
            raise SemcomError(f"{where}: its {field} {short_repr(point[field])} is not a plain name (a plots' file "
                              "name is made of it)")
    snr = point.get("snr_db")
    if (not isinstance(snr, (int, float)) and not (snr is None and point["channel"] == "none")) or not isinstance(
            point.get("channel_uses"), (int, type(None))) and point.get("channel_uses") != "auto" \
            or not point["metrics"]:
        raise SemcomError(f"{where}: not a point record of semcom evaluate")
    for name, m in point["metrics"].items():
        if not _PLAIN_NAME.fullmatch(name):
            raise SemcomError(f"{where}: metric {short_repr(name)} is not a plain name (a plots' file name is made "
                              "of it)")
        if not (isinstance(m, dict) and isinstance(m.get("value"), (int, float)) and isinstance(m.get("n"), int)
                and isinstance(m.get("ci95"), list) and len(m["ci95"]) == 2
                and all(isinstance(v, (int, float)) for v in m["ci95"])):
            raise SemcomError(f"{where}: metric {short_repr(name)} is not a value with n and ci95")


def metric_names(points: list[dict]) -> list[str]:
    return list(dict.fromkeys(m for p in points for m in p["metrics"]))


_RATE = ("uniform", "content", "importance")  # the semantic pipeline at a variable rate
_BUDGETED = ("digital", "separation", "capacity", *_RATE)  # methods measured at each budget
_RATE_STYLE = {"uniform": ":", "content": "--", "importance": "-"}
_LINE_STYLES = ("-", ":", "--", "-.", (0, (1, 4)), (0, (5, 2, 1, 2)), (0, (3, 1)))


def method_name(p: dict) -> str:
    """The method, with the reconstruct task's generative decoder when one decoded (``importance/quality``)
    and the digital baseline's image codec (``digital/avif``)."""
    return (p["method"] + (f"/{p['decoder']}" if p.get("decoder") not in (None, "codec") else "")
            + (f"/{p['codec']}" if p.get("codec") else ""))


def best_codecs(points: list[dict], metric_of: Callable[[str], str]) -> list[dict]:
    """The digital baseline's best image codec at each (task, channel, SNR, channel uses): the highest
    value of the task's first metric (``metric_of(task)``), ties to the codec listed first; ``tied``
    lists every codec with that value (all of them where nothing arrived)."""
    best: dict[tuple, dict] = {}
    for p in points:
        metric = metric_of(p["task"])
        if p["method"] != "digital" or not p.get("codec") or metric not in p["metrics"]:
            continue
        where = (p["task"], p["channel"], p["snr_db"], p["channel_uses"])
        value = p["metrics"][metric]["value"]
        if where not in best or value > best[where]["value"]:
            best[where] = {"task": p["task"], "channel": p["channel"], "snr_db": p["snr_db"],
                           "channel_uses": p["channel_uses"], "metric": metric, "codec": p["codec"], "value": value,
                           "tied": [p["codec"]]}
        elif value == best[where]["value"]:
            best[where]["tied"].append(p["codec"])
    return list(best.values())


def point_label(p: dict) -> str:
    """A method's line in plots: budgeted methods carry their channel-use budget."""
    if p["method"] in _BUDGETED:
        uses = "matched" if p["channel_uses"] is None else p["channel_uses"]
        return f"{method_name(p)} ({uses} uses)"
    return method_name(p)


def csv_text(doc: dict) -> str:
    """One row per point and metric."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", "task", "channel", "snr_db", "channel_uses", "channel_uses_mean", "metric",
                     "value", "ci95_low", "ci95_high", "n", "seed", "checkpoint_hash", "preset"])
    run = doc["run"]
    for p in doc["points"]:
        for name, m in sorted(p["metrics"].items()):
            writer.writerow([method_name(p), p["task"], p["channel"], "" if p["snr_db"] is None else p["snr_db"],
                             "matched" if p["channel_uses"] is None else p["channel_uses"],
                             f"{p['channel_uses_mean']:g}", name, f"{m['value']:.6g}", f"{m['ci95'][0]:.6g}",
                             f"{m['ci95'][1]:.6g}", m["n"], p["seed"], p.get("checkpoint_hash", run["checkpoint_hash"]),
                             run["preset"]])
    return out.getvalue()


@dataclass
class Column:
    """One column of a printed table: its header (with the unit), one cell per row, and how it is laid out.
    ``said``: how a title says the column's one value when every row has the same (the column is then left
    out); None keeps the column always. ``family``: value columns of one family share a table where the
    width allows. ``notes``: what the table's caption must say about the column's marked (``*``) cells."""

    header: str
    cells: list[str]
    left: bool = False
    said: Callable[[str], str] | None = None
    family: str = ""
    notes: tuple[str, ...] = ()


def fitted_tables(title: str, keys: list[Column], values: list[Column], width: int) -> list[Table]:
    """Rich tables of the rows, each at most ``width`` columns wide, never cut: the ``keys`` (which row is
    which) in every table, less those with one value throughout, which the title says instead; the
    ``values`` spread over as many tables as it takes, as many per table as fit. The first table's title says
    what all the rows share; the others are titled as its continuation."""
    varying = [k for k in keys if k.said is None or len(set(k.cells)) > 1]
    shared = [said for k in keys if k not in varying and k.cells and k.cells[0] and (said := k.said(k.cells[0]))]
    full_title = title + (f": {', '.join(shared)}" if shared else "")
    rows = len(keys[0].cells) if keys else 0

    def table(columns: list[Column], title: str = full_title) -> Table:
        notes = list(dict.fromkeys(n for c in columns for n in c.notes))
        out = Table(title=title, caption="; ".join(f"* {n}" for n in notes) or None, caption_justify="left")
        for c in [*varying, *columns]:
            out.add_column(c.header, justify="left" if c.left else "right", overflow="fold")
        for i in range(rows):
            out.add_row(*(c.cells[i] for c in [*varying, *columns]))
        return out

    # measured unbounded: a measurement on the printing console is clamped to its width
    measure = Console(width=100_000, file=io.StringIO()).measure
    groups: list[list[Column]] = []
    for column in values:
        if groups and column.family == groups[-1][-1].family and measure(table([*groups[-1], column])).maximum <= width:
            groups[-1].append(column)
        else:
            groups.append([column])
    groups = groups or [[]]
    return [table(groups[0]), *(table(group, f"{title}, continued") for group in groups[1:])]


def numbered(tables: list[Table]) -> list[Table]:
    """Tables printed one after another, their titles numbered (1/3, 2/3, …) when there are several."""
    if len(tables) > 1:
        for k, t in enumerate(tables, 1):
            t.title = f"{t.title} ({k}/{len(tables)})"
    return tables


_RUN_LEVEL = {"iou"}  # the guide's IoU: one figure per run (the same on every point), said in the title


def results_tables(doc: dict, width: int) -> list[Table]:
    """A results document as rich tables at most ``width`` columns wide (:func:`fitted_tables`): one set per
    task, rows naming method, channel, SNR, channel uses, ROI share and sample size, then the metrics with
    their units (PSNRs together, SSIMs together). A value that means little at its sample size (KID under
    50 images) is marked ``*`` and the note is the table's caption."""
    run = doc["run"]
    guidance = run.get("guidance") if isinstance(run.get("guidance"), dict) else None
    order = list(UNITS)
    tables = []
    for task in dict.fromkeys(p["task"] for p in doc["points"]):
        points = [p for p in doc["points"] if p["task"] == task]
        keys = [
            Column("method", [printable(method_name(p)) for p in points], left=True),
            Column("task", [printable(p["task"]) for p in points], left=True, said=str),
            Column("channel", [printable(p["channel"]) for p in points], left=True, said=str),
            Column("SNR dB", ["—" if p["snr_db"] is None else f"{p['snr_db']:g}" for p in points],
                   said=lambda v: "" if v == "—" else f"{v} dB"),
            Column("uses", [f"{p['channel_uses_mean']:g}" for p in points], said=lambda v: f"{v} channel uses"),
            Column("ROI share", ["" if p.get("roi_share") is None else f"{p['roi_share']:g}" for p in points],
                   said=lambda v: f"ROI share {v}"),
            Column("n", [str(next(iter(p["metrics"].values()))["n"]) for p in points], said=lambda v: f"n = {v}"),
        ]
        if guidance and isinstance(guidance.get("iou"), (int, float)):
            keys.append(Column("", [f"{guidance['iou']:.3f}"] * len(points), said=lambda v: f"guide IoU {v}"))
        names = sorted((m for m in metric_names(points) if not (guidance and m in _RUN_LEVEL)),
                       key=lambda m: order.index(m) if m in order else len(order))
        values = []
        for m in names:
            unit, records = unit_of(m), [p["metrics"].get(m) for p in points]
            notes = [metric_note(m, r) if r is not None else None for r in records]
            values.append(Column(unit.header, ["" if r is None else unit.show(r["value"]) + (" *" if note else "")
                                               for r, note in zip(records, notes)],
                                 family=unit.family, notes=tuple(n for n in dict.fromkeys(notes) if n)))
        tables += fitted_tables(printable(f"semcom evaluate — {run['checkpoint']}"), keys, values, width)
    return numbered(tables)


def _scale(metric: str) -> float:
    return unit_of(metric).scale


def _label(ax, xlabel: str, metric: str, title: str, legend_size: int, notes: list[str] | tuple = ()) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(unit_of(metric).label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    if notes:  # a value that means little at its sample size says so on the figure itself
        ax.text(0.5, 0.02, "\n".join(notes), transform=ax.transAxes, ha="center", va="bottom", fontsize=8,
                color="darkred", bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "darkred"})


def _notes(points: list[dict], metric: str) -> list[str]:
    return list(dict.fromkeys(note for p in points if metric in p["metrics"]
                              if (note := metric_note(metric, p["metrics"][metric]))))


def plot_results(doc: dict, stem: Path) -> list[Path]:
    """PNG plots beside ``stem``: metric vs SNR per (task, channel, metric), one line per method
    (noiseless as a dashed level); metric vs channel uses where a baseline swept bandwidth."""
    import matplotlib  # heavy: matplotlib, plots only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib, plots only


    points = doc["points"]
    written = []

    def save(fig, name: str) -> None:
        written.append(_save_png(fig, stem.with_name(f"{stem.name}-{name}.png")))

    tasks = list(dict.fromkeys(p["task"] for p in points))
    channels = list(dict.fromkeys(p["channel"] for p in points if p["channel"] != "none"))
    for task in tasks:
        task_points = [p for p in points if p["task"] == task]
        for metric in metric_names(task_points):
            s = _scale(metric)
            for channel in channels:
                curves = [p for p in task_points if p["channel"] == channel and metric in p["metrics"]]
                if not curves:
                    continue
                fig, ax = plt.subplots(figsize=(6, 4))
                for label in dict.fromkeys(point_label(p) for p in curves):
                    line = sorted((p for p in curves if point_label(p) == label), key=lambda p: p["snr_db"])
                    xs = [p["snr_db"] for p in line]
                    ys = [s * p["metrics"][metric]["value"] for p in line]
                    lo = [s * p["metrics"][metric]["ci95"][0] for p in line]
                    hi = [s * p["metrics"][metric]["ci95"][1] for p in line]
                    bound = line[0]["method"] == "capacity"  # the bound, dotted, beside the measured lines
                    drawn, = ax.plot(xs, ys, marker="o", label=label, linestyle=":" if bound else "-",
                                     color="black" if bound else None)
                    ax.fill_between(xs, lo, hi, alpha=0.15, color=drawn.get_color())
                for p in task_points:
                    if p["method"] == "noiseless" and metric in p["metrics"]:
                        ax.axhline(s * p["metrics"][metric]["value"], linestyle="--", color="gray", label="noiseless")
                _label(ax, "SNR (dB), Es/N0 per complex channel use", metric, f"{task} over {channel}", 8,
                       _notes(curves, metric))
                save(fig, f"{task}-{metric}-{channel}-vs-snr")
            _rate_plots(plt, task_points, task, metric, channels, save)
            bandwidth = [p for p in task_points if p["method"] in ("digital", "separation", "capacity")
                         and metric in p["metrics"]]
            if len({p["channel_uses_mean"] for p in bandwidth}) > 1:
                for channel in channels:
                    fig, ax = plt.subplots(figsize=(6, 4))
                    for p in task_points:
                        if p["method"] in ("semantic", "mlp") and p["channel"] == channel and metric in p["metrics"]:
                            ax.scatter([p["channel_uses_mean"]], [s * p["metrics"][metric]["value"]], marker="*",
                                       s=80, label=f"{p['method']} {p['snr_db']:g} dB")
                    for k, method in enumerate(dict.fromkeys(method_name(p) for p in bandwidth)):
                        for colour, snr in enumerate(sorted({p["snr_db"] for p in bandwidth})):
                            line = sorted((p for p in bandwidth if method_name(p) == method and p["channel"] == channel
                                           and p["snr_db"] == snr), key=lambda p: p["channel_uses_mean"])
                            if line:
                                ax.plot([p["channel_uses_mean"] for p in line],
                                        [s * p["metrics"][metric]["value"] for p in line], marker="o",
                                        color=f"C{colour}", linestyle=_LINE_STYLES[k % len(_LINE_STYLES)],
                                        label=f"{method} {snr:g} dB")
                    ax.set_xscale("log", base=2)
                    _label(ax, "complex channel uses per packet", metric, f"{task} over {channel}", 7,
                           _notes(bandwidth, metric))
                    save(fig, f"{task}-{metric}-{channel}-vs-channel-uses")
    return written


def _rate_plots(plt, points: list[dict], task: str, metric: str, channels: list[str], save) -> None:
    """Metric against channel uses for the variable-rate methods: one curve per (method, SNR) over
    the fixed budgets, the auto policy's points marked with a star."""
    rate = [p for p in points if p["method"] in _RATE and metric in p["metrics"]]
    if len({p["channel_uses"] for p in rate if p["channel_uses"] != "auto"}) < 2:
        return
    s = _scale(metric)
    for channel in channels:
        here = [p for p in rate if p["channel"] == channel]
        if not here:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for colour, snr in enumerate(sorted({p["snr_db"] for p in here})):
            for method in _RATE:
                line = sorted((p for p in here if p["method"] == method and p["snr_db"] == snr
                               and p["channel_uses"] != "auto"), key=lambda p: p["channel_uses_mean"])
                if line:
                    ax.plot([p["channel_uses_mean"] for p in line], [s * p["metrics"][metric]["value"] for p in line],
                            marker="o", color=f"C{colour}", linestyle=_RATE_STYLE[method],
                            label=f"{method} {snr:g} dB")
                for p in here:
                    if p["method"] == method and p["snr_db"] == snr and p["channel_uses"] == "auto":
                        ax.scatter([p["channel_uses_mean"]], [s * p["metrics"][metric]["value"]], marker="*",
                                   s=120, color=f"C{colour}", edgecolors="black", zorder=3)
        ax.set_xscale("log", base=2)
        _label(ax, "complex channel uses per packet (★: auto policy)", metric, f"{task} over {channel}", 7,
               _notes(here, metric))
        save(fig, f"{task}-{metric}-{channel}-rate")


def plot_share(doc: dict, stem: Path) -> list[Path]:
    """``evaluate --share`` plots per (channel, SNR): channel-use saving against the number of
    users, one line per scenario; and each scheme's accuracy against the number of users."""
    import matplotlib  # heavy: matplotlib, plots only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib, plots only


    points = doc["points"]
    written = []
    for channel, snr in dict.fromkeys((p["channel"], p["snr_db"]) for p in points):
        here = [p for p in points if p["channel"] == channel and p["snr_db"] == snr]
        scenarios = list(dict.fromkeys(p["scenario"] for p in here))
        for name in ("saving", "accuracy"):
            fig, ax = plt.subplots(figsize=(6, 4))
            for k, scenario in enumerate(scenarios):
                line = sorted((p for p in here if p["scenario"] == scenario), key=lambda p: p["users"])
                xs = [p["users"] for p in line]
                if name == "saving":
                    ax.plot(xs, [100 * p["saving"]["mean"] for p in line], marker="o", label=scenario)
                else:
                    ax.plot(xs, [100 * p["accuracy"]["shared"]["value"] for p in line], marker="o",
                            color=f"C{k}", label=f"{scenario} shared")
                    ax.plot(xs, [100 * p["accuracy"]["separate"]["value"] for p in line], marker="x",
                            color=f"C{k}", linestyle="--", label=f"{scenario} separate")
            ax.set_xlabel("users")
            ax.set_ylabel("fewer channel uses than separate (%)" if name == "saving" else "accuracy (%)")
            ax.set_title(f"{doc['run']['task']} over {channel} at {snr:g} dB")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            written.append(_save_png(fig, stem.with_name(f"{stem.name}-share-{name}-{channel}-{snr:g}dB.png")))
    return written


def _save_png(fig, path: Path) -> Path:
    """The figure as PNG, written atomically; no software tag, so the same data gives the same bytes."""
    import matplotlib.pyplot as plt  # heavy: matplotlib, plots only


    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _matches(point: dict, floor: dict) -> bool:
    uses = floor.get("channel_uses", "matched")
    return (point["method"] == floor["method"] and point["task"] == floor["task"]
            and point["channel"] == floor["channel"] and point["snr_db"] == floor.get("snr_db")
            and (point["channel_uses"] is None if uses == "matched" else point["channel_uses"] == uses))


def check_floors(doc: dict, floors: list[dict]) -> list[str]:
    """One line per floor that is not met (or names a point the run did not measure)."""
    failures = []
    for f in floors:
        where = (f"{f['method']} {f['task']} {f['channel']} "
                 f"{'' if f.get('snr_db') is None else format(f['snr_db'], 'g') + ' dB '}{f['metric']}")
        found = [p for p in doc["points"] if _matches(p, f)]
        if not found:
            failures.append(f"floor {where}: the run has no such point")
            continue
        m = found[0]["metrics"].get(f["metric"])
        if m is None:
            failures.append(f"floor {where}: the point has no metric {f['metric']}")
        elif m["value"] < f["min"]:
            failures.append(f"floor {where}: {m['value']:.4g} is below {f['min']:.4g}")
    return failures
