"""Reports that read well: evaluate's tables fit 80 columns with units in their headers, plots and tables show
each metric in its own unit (PSNR in dB, never as a percentage), KID under 50 images carries a warning, and
help texts name every registered task, each task's default checkpoint and the defaults they have."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_RECONSTRUCT = {"psnr_db": 22.41, "roi_psnr_db": 25.13, "bg_psnr_db": 21.77, "ssim": 0.812, "roi_ssim": 0.853,
                "bg_ssim": 0.799, "vqa_accuracy": 0.65}


def _metric(value: float, n: int) -> dict:
    return {"value": value, "n": n, "ci95": [value - 0.01, value + 0.01]}


def reconstruct_doc(n: int = 20) -> dict:
    """A reconstruct results document as the sweep writes it: every method × decoder × SNR, each point's values
    distinct (so a test can find each one in the printed table)."""
    points = []
    for method in ("importance", "uniform", "digital"):
        for snr in (0.0, 6.0, 12.0):
            for decoder in (("codec", "fast", "quality") if method != "digital" else (None,)):
                k = len(points)
                metrics = {name: _metric(v + 0.01 * k if "psnr" in name else v - 0.001 * k, n)
                           for name, v in _RECONSTRUCT.items()}
                metrics["kid"] = {**_metric(-320.5 + k, n), "std": 9.0}
                point = {"method": method, "task": "reconstruct", "channel": "awgn", "snr_db": snr,
                         "channel_uses": 512, "channel_uses_mean": 512.0, "metrics": metrics, "seed": 0}
                if method == "importance":
                    metrics["iou"] = _metric(0.8123, n)
                    point["roi_share"] = 0.7
                if decoder is not None:
                    point["decoder"] = decoder
                points.append(point)
    return {"format": "semcom-evaluate/1", "points": points,
            "run": {"checkpoint": "semcom-scenes", "checkpoint_hash": "h", "preset": "command-line",
                    "task": "reconstruct", "guidance": {"iou": 0.8123, "n": n}}}


def text_doc() -> dict:
    """A text/VQA sweep of two checkpoints compared side by side (long method names), every method, two tasks."""
    points = []
    for method in ("semantic@semcom-smollm2", "semantic@semcom-smollm2-federated", "noiseless", "digital",
                   "capacity"):
        for task, names in (("vqa", {"accuracy": 0.935}),
                            ("text", {"exact_match": 0.5, "bleu": 63.21, "similarity": 0.871})):
            for snr in ((0.0, 20.0) if method != "noiseless" else (None,)):
                for uses in ((None, 256) if method in ("digital", "capacity") else (None,)):
                    k = len(points)
                    points.append({"method": method, "task": task, "channel": "awgn" if snr is not None else "none",
                                   "snr_db": snr, "channel_uses": uses,
                                   "channel_uses_mean": 4.0 if uses is None else 256.0, "seed": 0,
                                   "metrics": {m: _metric(v - 0.003 * k, 200) for m, v in names.items()}})
    return {"format": "semcom-evaluate/1", "points": points,
            "run": {"checkpoint": "semcom-smollm2,semcom-smollm2-federated", "checkpoint_hash": "h", "preset": "p"}}


def _render(tables, width: int = 80) -> str:
    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), markup=False)
    for table in tables:
        console.print(table)
    return console.file.getvalue()


@pytest.mark.parametrize("doc", [reconstruct_doc(), text_doc()], ids=["reconstruct", "text-vqa"])
def test_every_table_fits_80_columns_and_shows_every_value_uncut(doc):
    from semcom_cli.evaluation.report import results_tables, unit_of

    shown = _render(results_tables(doc, 80))
    assert max(len(line) for line in shown.splitlines()) <= 80, shown
    assert "…" not in shown, shown
    for p in doc["points"]:
        for name, m in p["metrics"].items():
            if name != "iou":  # the guide's IoU is one figure per run, in the title
                assert unit_of(name).show(m["value"]) in shown, (name, m["value"])
    for header in {unit_of(name).header for p in doc["points"] for name in p["metrics"] if name != "iou"}:
        assert header in shown
    if doc["run"].get("guidance"):
        assert "guide IoU 0.812" in shown


def test_tables_name_their_units_and_never_show_psnr_as_a_percentage():
    from semcom_cli.evaluation.report import results_tables

    shown = _render(results_tables(reconstruct_doc(), 80))
    assert "PSNR dB" in shown and "22.41" in shown and "%" not in shown.replace("VQA %", "")
    assert "2241" not in shown and "81.2" not in shown  # neither PSNR nor SSIM scaled as a percentage
    assert "65.0" in shown  # the VQA accuracy is the one percentage


def test_a_wide_terminal_keeps_one_table_and_a_narrow_one_splits_it():
    from semcom_cli.evaluation.report import results_tables

    doc = text_doc()
    doc["points"] = [p for p in doc["points"] if p["task"] == "text"]
    assert len(results_tables(doc, 200)) == 1
    narrow = results_tables(doc, 60)
    assert len(narrow) > 1 and max(len(line) for line in _render(narrow, 60).splitlines()) <= 60


def test_the_share_and_retrieval_tables_fit_80_columns(monkeypatch, capsys):
    from rich.console import Console

    import semcom_cli.cli.evaluate_rag as rag
    import semcom_cli.cli.evaluate_share as share

    console = Console(width=80, file=io.StringIO(), markup=False)
    monkeypatch.setattr(share, "console", console)
    monkeypatch.setattr(rag, "console", console)
    acc = _metric(0.935, 100)
    share._print_table({"run": {"checkpoint": "semcom-smollm2", "task": "vqa", "groups": 100}, "points": [
        {"scenario": scenario, "users": users, "channel": "rayleigh", "snr_db": -5.0,
         "channel_uses": {"shared": 112.5, "separate": 256.0}, "saving": {"mean": 0.561},
         "accuracy": {"shared": acc, "separate": _metric(0.921, 100), "difference": _metric(-0.014, 100)}}
        for scenario in ("same-objects", "unrelated") for users in (1, 8)]})
    metrics = {"exact_match": _metric(0.5, 100), "bleu": _metric(63.21, 100), "similarity": _metric(0.871, 100),
               "recall@3": _metric(0.95, 100)}
    rag._table({"checkpoint": "semcom-smollm2", "seconds": 123.4, "points": [
        {"method": method, "kind": kind, "channel": "rayleigh", "snr_db": -5.0, "n": 100, "metrics": metrics}
        for method in ("semantic", "rag") for kind in ("global", "local-only", "neither")]}, 3)
    shown = console.file.getvalue()
    assert max(len(line) for line in shown.splitlines()) <= 80, shown
    assert "…" not in shown, shown
    for value in ("112.5", "256.0", "56.1", "93.5", "92.1", "-1.4 [-2.4, -0.4]", "50.0", "63.2", "87.1", "95.0",
                  "same-objects", "local-only", "rayleigh"):
        assert value in shown, value


def test_kid_under_50_images_carries_a_note_and_at_50_none():
    from semcom_cli.evaluation.report import KID_MIN_N, metric_note, result_notes

    assert KID_MIN_N == 50
    assert metric_note("kid", _metric(-320.0, 20)) == "KID at n=20 is not meaningful (n < 50)"
    assert metric_note("kid", _metric(3.0, 50)) is None
    assert metric_note("psnr_db", _metric(22.0, 20)) is None  # only KID needs 50 images
    assert result_notes(reconstruct_doc(20)) == ["KID at n=20 is not meaningful (n < 50)"]
    assert result_notes(reconstruct_doc(64)) == []


@pytest.mark.parametrize("n, warned", [(20, True), (49, True), (50, False), (200, False)])
def test_printed_results_warn_about_kid_only_under_50(n, warned, capsys):
    from semcom_cli.cli.evaluate import print_results

    print_results(reconstruct_doc(n))
    err = capsys.readouterr().err
    warning = f"semcom: warning: KID at n={n} is not meaningful (n < 50)"
    assert (warning in err) == warned
    assert ("* KID at n=" in err) == warned  # the table's caption says why its KID cells are starred


def test_plots_show_each_metric_in_its_unit(tmp_path, monkeypatch):
    from semcom_cli.evaluation import report

    seen = {}
    real = report._save_png

    def keep(fig, path):
        ax = fig.axes[0]
        seen[path.name] = {"ylabel": ax.get_ylabel(), "xlabel": ax.get_xlabel(),
                           "ys": [y for line in ax.get_lines() for y in line.get_ydata()],
                           "text": " ".join(t.get_text() for t in ax.texts)}
        return real(fig, path)

    monkeypatch.setattr(report, "_save_png", keep)
    report.plot_results(reconstruct_doc(20), tmp_path / "r")
    psnr = seen["r-reconstruct-psnr_db-awgn-vs-snr.png"]
    assert psnr["ylabel"] == "PSNR (dB)" and "SNR (dB)" in psnr["xlabel"]
    assert 22 < min(psnr["ys"]) and max(psnr["ys"]) < 23  # dB as measured, not ×100
    ssim = seen["r-reconstruct-ssim-awgn-vs-snr.png"]
    assert ssim["ylabel"] == "SSIM (0-1)" and max(ssim["ys"]) < 1
    vqa = seen["r-reconstruct-vqa_accuracy-awgn-vs-snr.png"]
    assert "(%)" in vqa["ylabel"] and 60 < min(vqa["ys"]) < 66
    kid = seen["r-reconstruct-kid-awgn-vs-snr.png"]
    assert "KID" in kid["ylabel"] and "KID at n=20 is not meaningful" in kid["text"]
    assert psnr["text"] == ""  # the note goes on KID's plot alone


def test_plot_prints_psnr_in_db_at_80_columns_and_warns_about_kid(tmp_path):
    """`semcom evaluate --plot` as run in CI: COLUMNS=80, stdout and stderr piped (no terminal)."""
    results = tmp_path / "r.json"
    results.write_text(json.dumps(reconstruct_doc(20)))
    exe = Path(sys.executable).parent / "semcom"
    r = subprocess.run([str(exe), "evaluate", "--plot", str(results)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, COLUMNS="80"))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert max(len(line) for line in lines) <= 80, r.stderr
    assert "…" not in r.stderr and "2241" not in r.stderr and "PSNR dB" in r.stderr and "22.41" in r.stderr
    assert "semcom: warning: KID at n=20 is not meaningful (n < 50)" in lines


def _help_text(*command: str) -> str:
    exe = Path(sys.executable).parent / "semcom"
    r = subprocess.run([str(exe), *command, "--help"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, COLUMNS="80"))
    assert r.returncode == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    return r.stdout


def _help(*command: str) -> str:
    return " ".join(_help_text(*command).replace("│", " ").split())  # the words, unwrapped


def _option(help_text: str, flag: str) -> str:
    """One option's rows in a help text, unwrapped: from its flag to the next option's."""
    rows, inside = [], False
    for line in help_text.splitlines():
        if 0 <= line.find("--") <= 6:  # an option's first row (the wrapped rows are indented past its flag)
            inside = flag in line.split()[:3]  # "│ --flag …" or "│ * --flag …" (required)
        if inside:
            rows.append(line.strip("│ "))
    return " ".join(" ".join(rows).split())


def test_help_texts_name_every_task_and_each_tasks_default_checkpoint():
    from semcom_cli.tasks import TASKS

    evaluate, encode, decode = _help("evaluate"), _help("encode"), _help("decode")
    for name in TASKS:
        assert f" {name}," in evaluate or f" {name} " in evaluate, name
    assert "reconstruct" in evaluate.split("--snr")[0]  # in --task's own help
    reconstruct_default = "task reconstruct: checkpoints/semcom-scenes"
    for text in (evaluate, encode, decode):
        assert "checkpoints/semcom-smollm2" in text and reconstruct_default in text
    assert "checkpoints/semcom-scenes" in _help("guide")


def test_help_texts_show_the_defaults_they_have():
    evaluate, encode = _help_text("evaluate"), _help_text("encode")
    assert "[default: (0.7)]" in _option(encode, "--roi-share")
    assert "[default: (0.7)]" in _option(evaluate, "--roi-share")
    assert "[default: (0.95)]" in _option(encode, "--target-accuracy")
    assert "image codec" in _option(encode, "--snr-feedback")
    assert "…" not in evaluate  # --scenario's list, once cut at 80 columns


def test_no_help_text_loses_a_default_to_markup():
    """A "[default: x]" written into a help text is read as rich markup and vanishes: defaults go through
    show_default. Every option of the commands a user runs the pipeline with is checked."""
    import click
    import typer.main
    from rich.text import Text

    from semcom_cli.cli.app import app

    group = typer.main.get_command(app)
    for name in ("encode", "transmit", "decode", "evaluate", "guide", "scenes", "finetune"):
        for param in group.commands[name].params:
            text = getattr(param, "help", None) or ""
            assert Text.from_markup(text).plain == text, (name, param.opts, text)
    assert isinstance(group, click.Group)


def test_the_help_texts_default_checkpoints_follow_the_task_registry(monkeypatch):
    from semcom_cli.cli.common import SCENES_CHECKPOINT_NAME, checkpoint_default, default_checkpoints
    from semcom_cli.reconstruct.model import SCENES_CHECKPOINT_NAME as used
    from semcom_cli.tasks import TASKS, Task

    assert SCENES_CHECKPOINT_NAME == used  # the name help shows is the folder the reconstruct model reads
    assert default_checkpoints()["semcom-scenes"] == ["reconstruct"]

    class Inpaint(Task):
        name = "inpaint"
        output = "image"
        trainable = False

    TASKS.register("inpaint", Inpaint())
    try:
        assert checkpoint_default() == ("checkpoints/semcom-smollm2; task reconstruct, inpaint: "
                                        "checkpoints/semcom-scenes")
    finally:
        TASKS.unregister("inpaint")


def test_semcom_lists_help_names_every_registry_it_lists():
    from semcom_cli.cli.registries import REGISTRIES, load_all

    assert tuple(load_all()) == REGISTRIES


def test_evaluates_options_say_which_sweep_reads_them_as_the_sweep_registry_does():
    """An option only one sweep reads (`--roi-share`: --task reconstruct) opens its help with that sweep's
    request, and an option whose help opens with a sweep's request is one that sweep reads."""
    import typer.main

    from semcom_cli.cli.app import app
    from semcom_cli.evaluation.sweeps import SWEEPS

    asked = {kind.asked_by: name for name, kind in SWEEPS.items() if kind.asked_by}
    for param in typer.main.get_command(app).commands["evaluate"].params:
        flag, text = param.opts[0], param.help or ""
        readers = [name for name, kind in SWEEPS.items() if flag in kind.takes]
        opened = [request for request in asked if text.startswith(request)]
        for request in opened:
            assert flag in SWEEPS[asked[request]].takes, (flag, request)
        if len(readers) == 1 and SWEEPS[readers[0]].asked_by and flag != SWEEPS[readers[0]].asked_by.split()[0]:
            assert text.startswith(SWEEPS[readers[0]].asked_by), (flag, readers)
