"""``semcom list``: what every registry holds — the names presets, flags and files accept.

Help texts point here instead of repeating the names: they answer without importing torch, and a name
registered later (a new channel, task or stage) shows up here with nothing else to edit.
"""

from __future__ import annotations

from typing import Optional

import typer

from semcom_cli.cli.common import console, fail_cleanly, print_json

NAME = "list"
# the names load_all returns, in its order, for the help text without importing them (torch); a test
# keeps the two equal
REGISTRIES = ("channels", "tasks", "methods", "metrics", "stages", "projectors", "rate-methods", "decoders",
              "reconstruct-methods", "retrieval-methods", "compression-recipes", "sweeps")


def load_all() -> dict:
    """Every registry by the name ``semcom list`` shows it under, after importing the parts that fill them."""
    from semcom_cli.channel import CHANNELS
    from semcom_cli.compression.recipe import RECIPES
    from semcom_cli.evaluation.methods import METHODS
    from semcom_cli.evaluation.metrics import METRICS
    from semcom_cli.evaluation.rag import RAG_METHODS
    from semcom_cli.evaluation.reconstruct import RECONSTRUCT_METHODS
    from semcom_cli.evaluation.sweeps import SWEEPS
    from semcom_cli.federated import run as _federated  # noqa: F401  (registers its stage)
    from semcom_cli.link.rate.policy import RATE_METHODS
    from semcom_cli.models.projector import PROJECTORS
    from semcom_cli.reconstruct import codec_stages as _codec  # noqa: F401  (registers its stages)
    from semcom_cli.reconstruct import generative_stages as _generative  # noqa: F401  (registers its stages)
    from semcom_cli.reconstruct.generative.decoder import DECODERS
    from semcom_cli.tasks import TASKS
    from semcom_cli.training.stages import STAGES

    return {"channels": CHANNELS, "tasks": TASKS, "methods": METHODS, "metrics": METRICS, "stages": STAGES,
            "projectors": PROJECTORS, "rate-methods": RATE_METHODS, "decoders": DECODERS,
            "reconstruct-methods": RECONSTRUCT_METHODS, "retrieval-methods": RAG_METHODS,
            "compression-recipes": RECIPES, "sweeps": SWEEPS}


def _describe(entry) -> str:
    if isinstance(entry, str):
        return entry
    text = getattr(entry, "summary", None) or getattr(entry, "notes", None) or \
        (entry.__doc__ or "").strip().splitlines()[0:1]
    return text if isinstance(text, str) else (text[0] if text else "")


@fail_cleanly
def run(
    kind: Optional[str] = typer.Argument(None, help=f"One registry: {', '.join(REGISTRIES)}; all of them "
                                                    "without it."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of tables."),
):
    """List the registered names: channels, tasks, methods, metrics, stages, decoders, sweeps and the rest."""
    from rich.table import Table

    from semcom_cli.core.errors import SemcomError

    registries = load_all()
    if kind is not None and kind not in registries:
        raise SemcomError(f"unknown registry '{kind}' (choose from: {', '.join(registries)})")
    chosen = {kind: registries[kind]} if kind else registries
    if as_json:
        print_json({k: {name: _describe(entry) for name, entry in r.items()} for k, r in chosen.items()})
        return
    for title, registry in chosen.items():
        table = Table(title=title, show_header=False)
        for name, entry in registry.items():
            table.add_row(name, _describe(entry))
        console.print(table)
