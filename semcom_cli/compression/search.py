"""``compress``: build each candidate recipe, measure it in its own process, keep the fastest that fits.

The source checkpoint's LLM is merged with its LoRA adapter once; calibration decides, once, which
linear layers stay in float and which transformer layers go. Each candidate is then written as a
checkpoint folder and measured by :mod:`.measure` in a fresh process (accuracy, speed, peak memory,
sizes), the source too, under the same settings. The chosen candidate is the one with the most
questions per second among those whose peak memory fits ``budget_mb`` and whose VQA accuracy at 0
and 10 dB and on reworded questions is at least the floor (default: the source's, less one point,
two on reworded questions); its manifest records the
recipe, what calibration chose, and the whole table.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

from pydantic import Field, ValidationError

from semcom_cli.compression.calibrate import calibration_inputs, layer_redundancy, linear_sensitivity
from semcom_cli.compression.llm import compress_llm
from semcom_cli.compression.measure import write_received
from semcom_cli.compression.recipe import Recipe, candidate_recipes
from semcom_cli.compression.recover import name_after_removal, recover, without_layers
from semcom_cli.compression.smooth import smooth_for_int8
from semcom_cli.config.base import Seed, Share, StageSettings, first_error_line
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.processes import process_alive, run_child
from semcom_cli.models.compressed import save_compressed_llm
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import publish_folder, read_manifest, save_checkpoint, staged_folder

__all__ = ["CompressSettings", "compress_settings", "SearchResult", "NoCandidateFits", "compress_checkpoint", "choose",
           "pareto"]

# The default accuracy floor: the source's accuracy less one point on the questions' own wordings (at 0
# and at 10 dB), less two on reworded questions (a sample of 200 measures those to about ±2 points).
FLOOR_MARGINS = {"vqa_0db": 0.01, "vqa_10db": 0.01, "vqa_rephrased_10db": 0.02}


class CompressSettings(StageSettings):
    """What a search is asked for, checked before anything loads."""

    budget_mb: Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)]  # above 10 TB: a typing slip
    min_accuracy: Optional[Share] = None
    limit: Annotated[int, Field(ge=1, le=100_000)] = 200   # questions per measured point
    seed: Seed = 0


_FLAGS = {"budget_mb": "--budget-mb", "min_accuracy": "--min-accuracy", "limit": "--limit", "seed": "--seed"}


def compress_settings(**values) -> CompressSettings:
    """The search's settings, or one line naming the flag that is out of range."""
    try:
        return CompressSettings.model_validate(values)
    except ValidationError as err:
        line = first_error_line(err, "compress")
        for name, flag in _FLAGS.items():
            line = line.replace(f"field '{name}'", flag)
        raise SemcomError(line) from None


class NoCandidateFits(SemcomError):
    """No candidate is within the budget and at the floor; ``result`` holds what was measured."""

    def __init__(self, message: str, result: "SearchResult"):
        super().__init__(message)
        self.result = result


@dataclass
class SearchResult:
    chosen: dict | None                       # the chosen row of the table (None: nothing fits)
    table: list[dict] = field(default_factory=list)  # one row per candidate (the source first)
    floor: dict = field(default_factory=dict)
    seconds: float = 0.0
    hash: str | None = None


def _run_measure(folder: Path, *args: str) -> dict:
    env = dict(os.environ, TQDM_DISABLE="1")
    # its own process group, ended with compress (Ctrl-C, SIGTERM, an error)
    run = run_child([sys.executable, "-m", "semcom_cli.compression.measure", str(folder), *args], env=env)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise SemcomError(f"measuring {folder.name} failed: {last[:200]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _measure(folder: Path, received: Path, limit: int, seed: int) -> dict:
    """Accuracy and sizes in one process, decoding speed and memory in a receiver process of its own."""
    return {**_run_measure(folder, "--limit", str(limit), "--seed", str(seed)),
            **_run_measure(folder, "--decode", str(received))}


def _remove_stale_candidates(output: Path) -> None:
    """Candidates folders a killed ``compress`` (SIGKILL: no cleanup could run) left beside ``output``: only
    names of compress's own pattern, and only those whose process is gone."""
    pattern = re.compile(re.escape(f".{output.name}-candidates-") + r"(\d+)-[A-Za-z0-9_]{8}")
    for folder in output.parent.glob(f".{glob.escape(output.name)}-candidates-*"):
        found = pattern.fullmatch(folder.name)
        if found and folder.is_dir() and not folder.is_symlink() and not process_alive(int(found.group(1))):
            shutil.rmtree(folder, ignore_errors=True)


def choose(table: list[dict], budget_mb: float, floor: dict) -> dict | None:
    """The fastest candidate (not the source) within the budget and at or above the floor."""
    fits = [r for r in table if r["name"] != "source" and r["peak_rss_mb"] <= budget_mb
            and all(r[k] >= v - 1e-9 for k, v in floor.items())]
    return max(fits, key=lambda r: r["questions_per_s"]) if fits else None


def pareto(table: list[dict]) -> list[str]:
    """Names of the rows no other row beats on size, accuracy (worst of 0 and 10 dB) and speed at once."""
    def key(r):
        return (-r["receiver_mb"], min(r["vqa_0db"], r["vqa_10db"]), r["questions_per_s"])

    front = []
    for r in table:
        k = key(r)
        if not any(all(a >= b for a, b in zip(key(o), k)) and key(o) != k for o in table):
            front.append(r["name"])
    return front


def compress_checkpoint(checkpoint: Path, output: Path, budget_mb: float, min_accuracy: float | None = None,
                        recipes: list[Recipe] | None = None, limit: int = 200, seed: int = 0,
                        status=None) -> SearchResult:
    """See the module's description. Writes ``output`` only when a candidate fits; one clear line
    (SemcomError) when none does, with the smallest peak memory measured."""

    compress_settings(budget_mb=budget_mb, min_accuracy=min_accuracy, limit=limit, seed=seed)
    began = time.perf_counter()
    say = status or (lambda _: None)
    model = SemcomModel.from_pretrained(checkpoint)
    if model.compression is not None:
        raise SemcomError(f"{checkpoint}: already compressed; compress the checkpoint it was made from")
    llm = model.get_llm(status)
    if hasattr(llm.model, "merge_and_unload"):
        llm.model = llm.model.merge_and_unload()  # the adapter folded into the weights it adapts
    network = llm.model
    layers = network.config.num_hidden_layers
    recipes = recipes if recipes is not None else candidate_recipes()
    if not recipes:
        raise SemcomError("no candidate recipes to measure")

    batches = calibration_inputs(model, seed=seed)
    # a new folder of compress's own (never one that was there: it is removed at the end)
    output.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_candidates(output)
    work = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}-candidates-{os.getpid()}-"))
    try:
        received = work / "received.safetensors"
        write_received(model, received, seed=seed)
        say(f"measuring the source checkpoint ({limit} questions per point)")
        table = [{"name": "source", "recipe": {"name": "source"}, **_measure(Path(checkpoint), received, limit, seed)}]
        say("calibrating: activation smoothing for int8 (folded into the weights: the float model computes the "
            "same), which linear layers int8 still hurts, which transformer layers change least")
        smooth_for_int8(network, batches)
        sensitivity = linear_sensitivity(network, batches)
        by_error = sorted(sensitivity, key=sensitivity.get, reverse=True)
        redundancy = layer_redundancy(network, batches)
        least_influence = sorted(range(layers), key=lambda i: redundancy[i])
        for recipe in recipes:
            drop = sorted(least_influence[:recipe.layers_dropped(layers)])
            float_linears = by_error[:round(recipe.float_linears * len(by_error))]
            calibration = {"dropped_layers": drop, "float_linears": float_linears}
            source_llm = without_layers(llm, drop) if drop else llm
            if recipe.recovery_steps:
                say(f"{recipe.name}: removed layers {drop}; {recipe.recovery_steps} recovery steps")
                calibration["recovery_loss"] = recover(model, source_llm, recipe.recovery_steps, seed=seed,
                                                       status=say)
            kept_float = [name_after_removal(n, drop) for n in float_linears]
            compressed = compress_llm(source_llm, recipe, [n for n in kept_float if n is not None])
            del source_llm
            compression = {"recipe": recipe.as_dict(), "calibration": calibration,
                           "source": {"name": model.name, "hash": model.hash}}

            def extra(tmp: Path, compressed=compressed, compression=compression) -> dict:
                save_compressed_llm(compressed, tmp / "llm")
                return {"compression": compression}

            folder = work / recipe.name
            save_checkpoint(model, folder, read_manifest(checkpoint).get("training"), weights=recipe.weights,
                            extra=extra)
            say(f"measuring {recipe.name}")
            table.append({"name": recipe.name, "recipe": recipe.as_dict(), **_measure(folder, received, limit, seed)})
        source = table[0]
        floor = ({k: min_accuracy for k in FLOOR_MARGINS} if min_accuracy is not None else
                 {k: source[k] - margin for k, margin in FLOOR_MARGINS.items()})
        front = pareto(table)
        for row in table:
            row["pareto"] = row["name"] in front
        chosen = choose(table, budget_mb, floor)
        result = SearchResult(chosen, table, floor, time.perf_counter() - began)
        if chosen is None:
            small = min(table[1:], key=lambda r: r["peak_rss_mb"], default=None)
            raise NoCandidateFits(
                f"no candidate fits a budget of {budget_mb:g} MB at the accuracy floor (0 dB ≥ {floor['vqa_0db']:.3f}, "
                f"10 dB ≥ {floor['vqa_10db']:.3f}, reworded ≥ {floor['vqa_rephrased_10db']:.3f}); the smallest peak "
                f"memory measured was {small['peak_rss_mb']:.0f} MB ({small['name']}); nothing written", result)
        metrics = {"compression": {"chosen": chosen["name"], "budget_mb": budget_mb, "floor": floor,
                                   "limit": limit, "seed": seed, "split": "train", "table": table,
                                   "search_s": result.seconds}}
        with staged_folder(output) as tmp:
            shutil.rmtree(tmp)
            shutil.copytree(work / chosen["name"], tmp)
            manifest = json.loads((tmp / "manifest.json").read_text())
            manifest["name"] = output.name
            manifest["metrics"] = {**(manifest.get("metrics") or {}), **metrics}  # outside the hash: a record
            result.hash = publish_folder(tmp, output, manifest)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
