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
from pathlib import Path

from semcom_cli.config.preset import short_repr
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes, read_json_file

__all__ = ["FORMAT", "load_results", "csv_text", "plot_results", "check_floors", "point_label", "metric_names",
           "plot_share"]

FORMAT = "semcom-evaluate/1"
_PERCENT = {"accuracy", "exact_match", "delivered", "similarity"}


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
_BUDGETED = ("digital", "capacity", *_RATE)  # methods measured at each budget
_RATE_STYLE = {"uniform": ":", "content": "--", "importance": "-"}


def method_name(p: dict) -> str:
    """The method, with the reconstruct task's generative decoder when one decoded (``importance/quality``)."""
    return p["method"] + (f"/{p['decoder']}" if p.get("decoder") not in (None, "codec") else "")


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


def _scale(metric: str) -> float:
    return 100.0 if metric in _PERCENT else 1.0


def _ylabel(metric: str) -> str:
    return {"accuracy": "accuracy (%)", "exact_match": "exact match (%)", "bleu": "BLEU",
            "similarity": "MiniLM similarity (×100)"}.get(metric, metric)


def _label(ax, xlabel: str, metric: str, title: str, legend_size: int) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_ylabel(metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


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
                    ax.plot(xs, ys, marker="o", label=label)
                    ax.fill_between(xs, lo, hi, alpha=0.15)
                for p in task_points:
                    if p["method"] == "noiseless" and metric in p["metrics"]:
                        ax.axhline(s * p["metrics"][metric]["value"], linestyle="--", color="gray", label="noiseless")
                _label(ax, "SNR (dB), Es/N0 per complex channel use", metric, f"{task} over {channel}", 8)
                save(fig, f"{task}-{metric}-{channel}-vs-snr")
            _rate_plots(plt, task_points, task, metric, channels, save)
            bandwidth = [p for p in task_points if p["method"] in ("digital", "capacity") and metric in p["metrics"]]
            if len({p["channel_uses_mean"] for p in bandwidth}) > 1:
                for channel in channels:
                    fig, ax = plt.subplots(figsize=(6, 4))
                    for p in task_points:
                        if p["method"] in ("semantic", "mlp") and p["channel"] == channel and metric in p["metrics"]:
                            ax.scatter([p["channel_uses_mean"]], [s * p["metrics"][metric]["value"]], marker="*",
                                       s=80, label=f"{p['method']} {p['snr_db']:g} dB")
                    for method in ("digital", "capacity"):
                        for colour, snr in enumerate(sorted({p["snr_db"] for p in bandwidth})):
                            line = sorted((p for p in bandwidth if p["method"] == method and p["channel"] == channel
                                           and p["snr_db"] == snr), key=lambda p: p["channel_uses_mean"])
                            if line:
                                ax.plot([p["channel_uses_mean"] for p in line],
                                        [s * p["metrics"][metric]["value"] for p in line], marker="o",
                                        color=f"C{colour}", linestyle="-" if method == "digital" else ":",
                                        label=f"{method} {snr:g} dB")
                    ax.set_xscale("log", base=2)
                    _label(ax, "complex channel uses per packet", metric, f"{task} over {channel}", 7)
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
        _label(ax, "complex channel uses per packet (★: auto policy)", metric, f"{task} over {channel}", 7)
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
