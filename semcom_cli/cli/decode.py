"""Decode received symbols: channel decoder + LLM (with LoRA) following the task instruction.

A user of a share set gives its received private file and, with --public, its copy of the
public broadcast (public.user-<u>.sem.safetensors).
"""

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
    public: Optional[str] = typer.Option(None, "--public", help="Share set: this user's received public file."),
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
    shared = "share_id" in meta
    if meta.get("role") == "public":
        raise SemcomError(f"{input}: a public file; decode the user's own file and give this one with --public")
    if public is not None and not shared:
        raise SemcomError(f"{input}: not part of a share set, so it takes no --public file")
    public_sem = read_semantic(public, stage="transmit") if public is not None else None

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
    with torch.no_grad(), spinner("loading the LLM and decoding") as status:
        if shared:
            from ..multiuser import receive_share_user

            tokens = receive_share_user(model, sem, public_sem, input, public)[None]
        else:
            h = torch.view_as_complex(sem.tensors["gain"].contiguous()).reshape(1)
            mask = torch.ones(1, symbols.shape[0], dtype=torch.long)
            tokens = model.receive(symbols[None], h, float(meta["snr_db"]), mask)
        mask = torch.ones(tokens.shape[:2], dtype=torch.long)
        model.get_llm(status)
        answer = model.answer([task.name], [question], tokens, mask)[0]
    result = {"answer": answer, "task": task.name, "question": question, "channel": meta.get("channel"),
              "snr_db": meta.get("snr_db"), "seed": meta.get("seed"), "channel_uses": meta.get("channel_uses"),
              "source": meta.get("source"), "checkpoint": model.name, "checkpoint_hash": model.hash}
    if shared:
        result.update({"user": meta.get("user"), "share_id": meta.get("share_id"),
                       "public_channel_uses": public_sem.meta.get("channel_uses") if public_sem else 0})
    if output is not None:
        write_json(output, result)
    if as_json:
        print_json(result)
    else:
        print(answer)
