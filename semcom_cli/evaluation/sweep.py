"""The benchmark sweep: every point of an evaluation plan, resumable, checked against its floors.

``run_sweep(plan, output)`` measures the plan's points in order and, after each one,
writes ``OUTPUT.partial``; ``resume=True`` continues from that file without redoing
finished points (refusing one made with another checkpoint or plan). The finished
document is written as JSON, CSV and PNG plots beside ``output``, and
:func:`~semcom_cli.evaluation.report.check_floors` lists every floor it misses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from semcom_cli.channel.digital import choose_mcs
from semcom_cli.channel.image_codecs import check_codec
from semcom_cli.config.preset import short_repr
from semcom_cli.core.distributed import current_shard
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes, partial_path, read_json_file, write_json
from semcom_cli.core.runtime import versions
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.evaluation.plan import EvalPlan
from semcom_cli.evaluation.points import Point, Settings, evaluate_point, plan_points, sample_items
from semcom_cli.evaluation.report import FORMAT, best_codecs, check_floors, check_point_record, csv_text, plot_results
from semcom_cli.system import SemcomModel
from semcom_cli.tasks import get_task

__all__ = ["SweepResult", "run_sweep", "partial_path", "sweep_settings", "write_report", "load_models",
           "resumed_points"]

# (done, total, label): progress over every question of the sweep
ProgressHook = Callable[[int, int, str], None]


@dataclass
class SweepResult:
    document: dict                                  # format semcom-evaluate/1
    failures: list[str] = field(default_factory=list)  # floors missed, one line each
    resumed: int = 0                                # points taken from the partial run


def sweep_settings(plan: EvalPlan) -> tuple[list[Point], Settings]:
    """The plan's points and shared settings, checked (one line on a bad value)."""

    uses = [None if u == "matched" else u for u in plan.channel_uses]
    codecs = tuple(check_codec(c) for c in plan.image_codec)
    if not codecs:
        raise SemcomError("--image-codec names no codec")
    points = plan_points(plan.methods, plan.tasks, plan.channels, plan.snrs, uses, codecs)
    if "mlp" in plan.methods and not plan.mlp_checkpoint:
        raise SemcomError("method 'mlp' needs the MLP-projector checkpoint (--mlp-checkpoint; "
                          "`make checkpoint-mlp` builds one)")
    choose_mcs(0.0, plan.mcs)
    return points, Settings(limit=plan.limit or None, seed=plan.seed, batch_size=plan.batch_size,
                            image_codecs=codecs, mcs=plan.mcs, target_accuracy=plan.target_accuracy)


def _run_record(plan: EvalPlan, models: dict, world: int) -> dict:
    main, mlp = models["main"], models.get("mlp")
    return {"checkpoint": main.name, "checkpoint_hash": main.hash, "preset": main.preset.name,
            "mlp_checkpoint_hash": mlp.hash if mlp else None,
            "plan": plan.model_dump(exclude={"floors", "checkpoint", "mlp_checkpoint"}),
            "seeds": {"sample": plan.seed, "channel": plan.seed}, "versions": versions(), "processes": world}


def resumed_points(plan: EvalPlan, output: Path, models: dict) -> dict[str, dict]:
    """The finished points of the interrupted run at ``OUTPUT.partial`` (refused if made otherwise)."""
    return _resumed_points(output, _run_record(plan, models, current_shard().world))


def _resumed_points(output: Path, run: dict) -> dict[str, dict]:
    partial = partial_path(output)
    if not partial.is_file():
        raise SemcomError(f"{partial}: no interrupted run to resume")
    saved = read_json_file(partial, "json", "partial results file")
    if not (isinstance(saved, dict) and isinstance(saved.get("run"), dict) and isinstance(saved.get("done"), list)
            and all(isinstance(d, dict) and isinstance(d.get("key"), str) for d in saved["done"])):
        raise SemcomError(f"{partial}: not a partial results file (no run record and finished points)")
    mismatch = [k for k in ("checkpoint_hash", "mlp_checkpoint_hash", "plan") if saved["run"].get(k) != run[k]]
    if mismatch:
        raise SemcomError(f"{partial}: was run with another {mismatch[0].replace('_', ' ')}; "
                          "resume with the same settings, or start afresh without --resume")
    for d in saved["done"]:
        check_point_record(d.get("record"), f"{partial}: point {short_repr(d['key'])}")
    return {d["key"]: d["record"] for d in saved["done"]}


def load_models(plan: EvalPlan, status=None, device: str | None = None) -> dict:
    """The plan's named checkpoints (``main``, and ``mlp`` when the plan measures it), LLMs loaded."""

    models = {"main": SemcomModel.from_pretrained(plan.checkpoint, device=device)}
    if "mlp" in plan.methods:
        models["mlp"] = SemcomModel.from_pretrained(plan.mlp_checkpoint, device=device)
    for model in models.values():
        model.get_llm(status)
    return models


def run_sweep(plan: EvalPlan, output: Path | None = None, resume: bool = False, data=None, models=None,
              on_progress: ProgressHook | None = None, status=None, device: str | None = None,
              done: dict[str, dict] | None = None) -> SweepResult:
    """Measure every point of ``plan`` (see the module's description). ``data`` and ``models`` may be
    given already loaded; otherwise the easy-vqa test split and the plan's checkpoints are loaded.
    ``done``: the finished points of the partial run when the caller read them already
    (:func:`resumed_points`)."""

    if resume and output is None:
        raise SemcomError("--resume continues the run written to --output; give the same --output")
    points, settings = sweep_settings(plan)
    shard = current_shard()
    models = models or load_models(plan, status, device)
    run = _run_record(plan, models, shard.world)
    if done is None:
        done = _resumed_points(output, run) if output is not None and resume else {}
    resumed = len(done)
    data = data or EasyVQA.load("test")
    sizes = {t: len(sample_items(data, t, settings.limit, settings.seed)) for t in plan.tasks}
    total = sum(sizes[p.task] for p in points)
    finished = sum(sizes[p.task] for p in points if p.key in done)
    for point in points:
        if point.key in done:
            continue
        base = finished
        progress = (lambda d, n: on_progress(base + d * shard.world, total, point.key)) if on_progress else None
        done[point.key] = evaluate_point(models, data, point, settings, shard, on_progress=progress)
        finished += sizes[point.task]
        if on_progress:
            on_progress(finished, total, point.key)
        if output is not None and shard.is_main:
            write_json(partial_path(output), {"run": run, "done": [{"key": k, "record": r} for k, r in done.items()]})
    doc = {"format": FORMAT, "run": run, "points": [done[p.key] for p in points]}
    if any(p.method == "digital" and p.codec for p in points):
        doc["best_codec"] = best_codecs(doc["points"], lambda task: get_task(task).metrics[0])
    return SweepResult(doc, check_floors(doc, [f.model_dump() for f in plan.floors]), resumed)


def write_report(doc: dict, output: Path) -> list[Path]:
    """The results JSON, its CSV and its PNG plots beside it; the partial run is removed."""
    write_json(output, doc)
    atomic_write_bytes(output.with_suffix(".csv"), csv_text(doc).encode())
    plots = plot_results(doc, output.with_suffix(""))
    partial_path(output).unlink(missing_ok=True)
    return plots
