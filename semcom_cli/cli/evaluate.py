"""Benchmark sweeps: every method × task × channel × SNR × channel uses; JSON, CSV, PNG plots, a table.

A run writes OUTPUT.partial after every point; ``--resume`` continues it without
redoing finished points. An evaluation preset (``--preset ci-bench``) fixes the
sweep and the floors it must reach: any metric below its floor exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import (
    checkpoint_default,
    console,
    device_option,
    fail_cleanly,
    parse_floats,
    parse_names,
    print_json,
    task_list,
)
from semcom_cli.core.outputs import FORCE_HELP

NAME = "evaluate"


def _uses(text: str) -> list:
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.limits import MAX_CHANNEL_USES

    out = []
    for v in parse_names(text):
        if v in ("matched", "auto"):
            out.append(v)
            continue
        try:
            n = int(v)
        except ValueError:
            n = 0
        if not 0 < n <= MAX_CHANNEL_USES:
            raise SemcomError(f"--channel-uses takes positive integers up to {MAX_CHANNEL_USES:,}, 'matched' or "
                              f"'auto' (got {v[:40]!r})")
        out.append(n)
    return out


_DEFAULT_USERS = "1,2,4,8"
_DEFAULT_SCENARIOS = "same-scene,same-objects,same-color,same-shape,unrelated,distinct"
_FLAGS = {"tasks": "--task", "snrs": "--snr", "channels": "--channel", "channel_uses": "--channel-uses",
          "methods": "--method", "limit": "--limit", "seed": "--seed", "batch_size": "--batch-size",
          "image_codec": "--image-codec", "mcs": "--mcs", "target_accuracy": "--target-accuracy"}


@fail_cleanly
def run(
    task: Optional[str] = typer.Option(None, "--task", "-t",
                                       help=f"Comma list of tasks: {task_list()} (reconstruct on its own).",
                                       show_default="vqa"),
    snr: Optional[str] = typer.Option(None, "--snr", help="Comma list of SNRs (dB).",
                                      show_default="-5,0,10,20; --task reconstruct: 0,6,12; --share: 0; "
                                                   "--method rag: -5,0,10 (vqa: -5)"),
    channel: Optional[str] = typer.Option(None, "--channel", help="Comma list of channels (`semcom list channels`).",
                                          show_default="awgn"),
    channel_uses: Optional[str] = typer.Option(
        None, "--channel-uses", help="Comma list of complex channel uses per packet for the baselines and the "
                                     "variable-rate methods; 'matched' = the checkpoint's own; 'auto' = the rate "
                                     "table's choice (`semcom list rate-methods`). --task reconstruct: the "
                                     "budget per image; --share: one budget per user.",
        show_default="matched; --task reconstruct: 512"),
    method: Optional[str] = typer.Option(
        None, "--method", "-m", help="Comma list of methods (`semcom list methods`; --task reconstruct: "
                                     "`semcom list reconstruct-methods`).",
        show_default="semantic; --task reconstruct: importance,uniform,digital"),
    target_accuracy: Optional[float] = typer.Option(None, "--target-accuracy",
                                                    help="What --channel-uses auto aims for (0-1).",
                                                    show_default="0.95"),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Items per point (questions, captions, "
                                                                     "sentences; --task reconstruct: scenes; "
                                                                     "--share: groups of users); 0 = all.",
                                        show_default="200; --task reconstruct, --share, --method rag: 100"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sample and the channel.", show_default="0"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Items decoded per batch.",
                                             show_default="64; --method rag (text): 32"),
    image_codec: Optional[str] = typer.Option(None, "--image-codec", help="Digital baseline: comma list of image codecs, each measured (webp, jpeg, png, avif, "
                                                   "heif, jpeg2000) or all.",
                                              show_default="webp"),
    mcs: Optional[str] = typer.Option(None, "--mcs", help="Digital baseline: auto (link adaptation) or e.g. "
                                                          "16qam-1/2.", show_default="auto"),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Evaluation preset (presets/, kind: evaluate)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c",
                                              help="Checkpoint folder, or a comma list of them to compare side "
                                                   "by side; without it, the shipped one for the task.",
                                              show_default=checkpoint_default()),
    mlp_checkpoint: Optional[Path] = typer.Option(None, "--mlp-checkpoint", help="Checkpoint of the MLP ablation."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Results JSON; the CSV and PNG plots are written beside it."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run at OUTPUT.partial."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Redraw the plots (and CSV) of a saved results JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print the results JSON to stdout."),
    share: bool = typer.Option(False, "--share", help="Multi-user sharing: channel uses and accuracy of "
                                                      "public+private against separate sending."),
    users: str = typer.Option(_DEFAULT_USERS, "--users", help="--share: comma list of users per group (1 to 8)."),
    scenario: str = typer.Option(_DEFAULT_SCENARIOS, "--scenario",
                                 help="--share: comma list of scenarios (how related the users' scenes are).",
                                 show_default="all: " + _DEFAULT_SCENARIOS.replace(",", ", ")),
    threshold: Optional[float] = typer.Option(None, "--threshold",
                                              help="--share: relative distance under which tokens are shared.",
                                              show_default="0.35"),
    roi_share: Optional[str] = typer.Option(None, "--roi-share", help="--task reconstruct: comma list of the "
                                                                      "ROI's share of the budget (0-1).",
                                            show_default="0.7"),
    background: Optional[str] = typer.Option(None, "--background", help="--task reconstruct: plain, textured or "
                                                                        "both scene backgrounds.",
                                             show_default="both"),
    vqa: bool = typer.Option(False, "--vqa", help="--task reconstruct: also ask the shipped VQA checkpoint about "
                                                  "the referred object in the reconstruction (at every point)."),
    decoder: Optional[str] = typer.Option(None, "--decoder", help="--task reconstruct: comma list of decoders: "
                                                                  "codec (part 1's), fast, quality.",
                                          show_default="codec"),
    steps: Optional[int] = typer.Option(None, "--steps", help="--task reconstruct, quality decoder: diffusion "
                                                              "steps.", show_default="20"),
    k: int = typer.Option(3, "--k", help="--method rag: entries retrieved for the LLM."),
    corpus_users: int = typer.Option(8, "--corpus-users", help="--method rag: users the corpus's local "
                                                               "histories are split among."),
    device: Optional[str] = device_option(),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.outputs import RESULTS_OUTPUT, check_companions, check_output
    from semcom_cli.evaluation.sweeps import check_options, pick_sweep

    options = {"--task": task, "--snr": snr, "--channel": channel, "--channel-uses": channel_uses, "--method": method,
               "--target-accuracy": target_accuracy, "--limit": limit, "--seed": seed, "--batch-size": batch_size,
               "--image-codec": image_codec, "--mcs": mcs, "--preset": preset, "--checkpoint": checkpoint,
               "--mlp-checkpoint": mlp_checkpoint, "--output": output, "--resume": resume, "--plot": plot,
               "--json": as_json, "--share": share, "--users": users != _DEFAULT_USERS,
               "--scenario": scenario != _DEFAULT_SCENARIOS, "--threshold": threshold, "--roi-share": roi_share,
               "--background": background, "--vqa": vqa, "--decoder": decoder, "--steps": steps, "--k": k != 3,
               "--corpus-users": corpus_users != 8, "--device": device}
    sweep = pick_sweep(parse_names(task or ""), parse_names(method or ""), share)
    check_options(sweep, [flag for flag, value in options.items() if value is not None and value is not False])
    # every sweep writes a results JSON; a resumed run finishes the output it was started for
    check_output(output, [_preset_file(preset), mlp_checkpoint, *(_checkpoint_list(checkpoint) if sweep != "reconstruct"
                                                                   else [checkpoint])],
                 kind=RESULTS_OUTPUT, force=force or resume)
    check_companions(output, force or resume)
    if sweep == "rag":
        from semcom_cli.cli.evaluate_rag import rag_sweep

        rag_sweep(checkpoint, task, parse_names(method), channel, snr, limit, seed, batch_size, k, corpus_users,
                  output, as_json, device)
        return
    if sweep == "reconstruct":
        from semcom_cli.cli.evaluate_reconstruct import run_from_flags

        run_from_flags(task, snr, channel, channel_uses, method, limit, seed, batch_size, image_codec, mcs, checkpoint,
                       output, as_json, roi_share, background, vqa, decoder, steps)
        return
    if sweep == "share":
        from semcom_cli.cli.evaluate_share import share_sweep

        share_sweep(checkpoint, task or "vqa", scenario, users, channel or "awgn", snr or "0",
                    100 if limit is None else limit, seed or 0, threshold, batch_size or 64, output, as_json,
                    device, channel_uses)
        return
    if plot is not None:
        _redraw(plot, force)
        return
    compared = _checkpoint_list(checkpoint)
    flags = {"tasks": task and parse_names(task), "snrs": snr and parse_floats(snr),
             "channels": channel and parse_names(channel), "channel_uses": channel_uses and _uses(channel_uses),
             "methods": method and parse_names(method), "limit": limit, "seed": seed, "batch_size": batch_size,
             "image_codec": image_codec, "mcs": mcs, "target_accuracy": target_accuracy,
             "checkpoint": checkpoint and str(checkpoint), "mlp_checkpoint": mlp_checkpoint and str(mlp_checkpoint)}
    if len(compared) > 1:
        if resume or mlp_checkpoint or (method and "mlp" in parse_names(method)):
            raise SemcomError("--checkpoint A,B,... compares checkpoints in one run; it takes no --resume, "
                              "--mlp-checkpoint or method mlp")
        failures = _compare([_plan(preset, {**flags, "checkpoint": str(c)}) for c in compared], output, as_json,
                            device, preset)
    else:
        plan = _plan(preset, flags)
        if resume and output is None:
            raise SemcomError("--resume continues the run written to --output; give the same --output")
        failures = _sweep(plan, output, resume, as_json, device, preset)
    for line in failures:
        print(f"semcom: below floor: {line}", file=sys.stderr)
    if failures:
        raise typer.Exit(1)


def _checkpoint_list(checkpoint: Optional[Path]) -> list[Path]:
    """``--checkpoint``: one folder, or a comma list of folders to compare side by side."""
    if checkpoint is None or checkpoint.exists() or "," not in str(checkpoint):
        return [checkpoint] if checkpoint is not None else []
    return [Path(c) for c in parse_names(str(checkpoint))]


def _compare(plans: list, output: Optional[Path], as_json: bool, device: Optional[str],
             preset: Optional[str]) -> list[str]:
    """One sweep per checkpoint, the same plan otherwise, merged into one results document: each point
    named ``method@checkpoint`` (and carrying its checkpoint's name and hash), so the table, the CSV and
    the plots show the checkpoints side by side. Checkpoints are loaded one at a time."""
    from semcom_cli.cli.common import progress_bar, spinner
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.evaluation import load_models, run_sweep, sweep_settings
    from semcom_cli.system.checkpoint import read_manifest

    names = [read_manifest(p.checkpoint).get("name", Path(p.checkpoint).name) for p in plans]
    if len(set(names)) != len(names):
        raise SemcomError(f"--checkpoint names checkpoint {names[0]!r} twice; compare different checkpoints")
    for plan in plans:
        sweep_settings(plan)
    if output is not None:
        from semcom_cli.core.files import partial_path
        from semcom_cli.core.outputs import check_outputs

        check_outputs([output, output.with_suffix(".csv"), partial_path(output)],
                      [p.checkpoint for p in plans] + [_preset_file(preset)])
    documents, failures = [], []
    for plan, name in zip(plans, names):
        with spinner(f"loading {name} and its LLM") as status:
            models = load_models(plan, status, device)
        with progress_bar(f"evaluate {name}", 1) as update:
            result = run_sweep(plan, None, models=models, on_progress=update)
        del models
        failures += [f"{name}: {line}" for line in result.failures]
        for point in result.document["points"]:
            point.update(method=f"{point['method']}@{name}", checkpoint=name,
                         checkpoint_hash=result.document["run"]["checkpoint_hash"])
        documents.append(result.document)
    run = {**documents[0]["run"], "checkpoint": ",".join(names),
           "checkpoint_hash": ",".join(d["run"]["checkpoint_hash"] for d in documents),
           "compared": [d["run"] for d in documents]}
    merged = {"format": documents[0]["format"], "run": run, "points": [p for d in documents for p in d["points"]]}
    _report(merged, output, as_json)
    return failures


def _plan(preset: Optional[str], flags: dict):
    """The evaluation preset (or the defaults) with the flags given applied, validated in one line."""
    from pydantic import ValidationError

    from semcom_cli.config.preset import short_repr
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.evaluation.plan import EvalPlan, load_eval_plan

    plan = load_eval_plan(preset) if preset else EvalPlan(kind="evaluate", name="command-line")
    try:
        plan = plan.model_copy(update={k: v for k, v in flags.items() if v is not None})
        # the flags are raw (e.g. --image-codec all): the dump must not warn, the validation checks them
        return EvalPlan.model_validate(plan.model_dump(warnings=False))
    except ValidationError as err:
        e = err.errors()[0]
        flag = _FLAGS.get(str(e["loc"][0]), str(e["loc"][0]))
        got = short_repr(e.get("input"))
        if e["type"] in ("literal_error", "choice"):
            raise SemcomError(f"{flag}: must be one of {e['ctx']['expected']} (got {got})") from None
        raise SemcomError(f"{flag}: {e['msg'][:120]} (got {got})") from None


def _sweep(plan, output: Optional[Path], resume: bool, as_json: bool, device: Optional[str],
           preset: Optional[str] = None) -> list[str]:
    from semcom_cli.cli.common import progress_bar, spinner
    from semcom_cli.core.distributed import current_shard
    from semcom_cli.evaluation import load_models, run_sweep, sweep_settings
    from semcom_cli.evaluation.sweep import resumed_points

    sweep_settings(plan)  # a bad setting is refused before anything loads
    if output is not None:
        from semcom_cli.core.files import partial_path, refuse_foreign_partial
        from semcom_cli.core.outputs import check_outputs
        from semcom_cli.core.resources import default_checkpoint

        inputs = [plan.checkpoint or default_checkpoint(), plan.mlp_checkpoint, _preset_file(preset)]
        check_outputs([output, output.with_suffix(".csv"), partial_path(output)], inputs)
        refuse_foreign_partial(output, resume)
    shard = current_shard()
    with spinner("loading the checkpoints and their LLMs") as status:
        models = load_models(plan, status, device)
    # a partial run made otherwise is refused before the progress bar starts
    done = resumed_points(plan, output, models) if resume else None
    with progress_bar("evaluate", 1, show=shard.is_main) as update:
        result = run_sweep(plan, output, resume, models=models, on_progress=update, done=done)
    if not shard.is_main:
        return result.failures
    if result.resumed:
        console.print(f"resuming: {result.resumed} of {len(result.document['points'])} points were already measured")
    _report(result.document, output, as_json)
    return result.failures


def _report(doc: dict, output: Optional[Path], as_json: bool) -> None:
    """The table on stderr; the JSON, CSV and plots at ``output``; the JSON on stdout with ``--json``."""
    from semcom_cli.evaluation import write_report

    print_results(doc)
    if output is not None:
        plots = write_report(doc, output)
        console.print(f"wrote {output}, {output.with_suffix('.csv')} and {len(plots)} plots")
    if as_json:
        print_json(doc)


def print_results(doc: dict) -> None:
    """The results as tables that fit the terminal (stderr), then one warning line per value that means
    little at its sample size (KID under 50 images)."""
    from semcom_cli.evaluation.report import result_notes, results_tables

    for table in results_tables(doc, console.width):
        console.print(table)
    for note in result_notes(doc):
        print(f"semcom: warning: {note}", file=sys.stderr)


def _preset_file(preset: Optional[str]) -> Optional[Path]:
    """The evaluation preset's file, when one was named (an input the outputs must not replace)."""
    if not preset:
        return None
    from semcom_cli.core.resources import presets_dir

    return Path(preset) if Path(preset).suffix else presets_dir() / f"{preset}.yaml"


def _redraw(path: Path, force: bool = False) -> None:
    from semcom_cli.core.files import atomic_write_bytes
    from semcom_cli.core.outputs import check_companions, check_output
    from semcom_cli.evaluation.report import csv_text, load_results, plot_results

    doc = load_results(path)
    check_output(path.with_suffix(".csv"), [path])
    check_companions(path, True)  # redrawing replaces its own CSV and plots, and nothing else
    plots = plot_results(doc, path.with_suffix(""))
    atomic_write_bytes(path.with_suffix(".csv"), csv_text(doc).encode())
    print_results(doc)
    console.print(f"redrew {len(plots)} plots and {path.with_suffix('.csv')}")
