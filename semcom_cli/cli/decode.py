"""Decode received symbols: channel decoder + LLM (with LoRA) following the task instruction."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer

from ..errors import SemcomError
from ..formats import read_semantic
from ..tasks import get_task
from .common import checkpoint_option, fail_cleanly, print_json, spinner, write_json

NAME = "decode"


@fail_cleanly
def run(
    input: str = typer.Argument(..., help="Received semantic file from 'semcom transmit' ('-' for stdin)."),
    question: Optional[str] = typer.Option(None, "--question", "-q", help="The question (vqa task)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the result as JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of plain text."),
    checkpoint: Path = checkpoint_option(),
):
    sem = read_semantic(input, stage="transmit")
    meta = sem.meta
    task = get_task(meta.get("task", "?"))
    if task.instruction is None and not (question and question.strip()):
        raise SemcomError(f"task '{task.name}' needs a question (--question)")
    if "gain" not in sem.tensors:
        raise SemcomError(f"{input}: received file has no 'gain' tensor")

    from ..checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    if meta.get("checkpoint_hash") != model.hash:
        raise SemcomError(
            f"{input} was encoded with checkpoint {meta.get('checkpoint')} "
            f"({str(meta.get('checkpoint_hash'))[:12]}…), not {model.name} ({model.hash[:12]}…)"
        )
    symbols = sem.tensors["symbols"]
    if symbols.dim() != 3 or symbols.shape[1] != model.symbols_per_token:
        raise SemcomError(f"{input}: symbols of shape {list(symbols.shape)} do not fit this checkpoint")
    h = torch.view_as_complex(sem.tensors["gain"].contiguous()).reshape(1)
    mask = torch.ones(1, symbols.shape[0], dtype=torch.long)
    with torch.no_grad(), spinner("loading the LLM and decoding") as status:
        model.get_llm(status)
        tokens = model.receive(symbols[None], h, float(meta["snr_db"]), mask)
        answer = model.answer([task.name], [question], tokens, mask)[0]
    result = {"answer": answer, "task": task.name, "question": question, "channel": meta.get("channel"),
              "snr_db": meta.get("snr_db"), "seed": meta.get("seed"), "channel_uses": meta.get("channel_uses"),
              "source": meta.get("source"), "checkpoint": model.name, "checkpoint_hash": model.hash}
    if output is not None:
        write_json(output, result)
    if as_json:
        print_json(result)
    else:
        print(answer)
