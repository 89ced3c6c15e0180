"""Encode an image (or a sentence) into channel symbols: encoder + KAN projector + channel encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import SemcomError
from ..formats import SemanticFile, write_semantic
from ..tasks import get_task
from .common import checkpoint_option, fail_cleanly, spinner

NAME = "encode"


@fail_cleanly
def run(
    input: Optional[str] = typer.Argument(None, help="Image file (vqa, caption) or UTF-8 text file (text)."),
    task: str = typer.Option(..., "--task", "-t", help="vqa | caption | text"),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="Output file ('-' for stdout); default INPUT.sem.safetensors."),
    text: Optional[str] = typer.Option(None, "--text", help="The sentence to send (text task), instead of a file."),
    checkpoint: Path = checkpoint_option(),
):
    t = get_task(task)
    if t.modality == "text":
        if text is None:
            if input is None:
                raise SemcomError("the text task needs a sentence: --text '...' or a text file")
            from ..formats import read_input_bytes

            raw, name = read_input_bytes(input)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SemcomError(f"{name}: not a UTF-8 text file") from None
        text = " ".join(text.split())
        if not text:
            raise SemcomError("cannot send an empty sentence")
        source = input or "--text"
    else:
        if input is None:
            raise SemcomError(f"task '{task}' needs an image file")
        source = input
    if output is None:
        if input is None or input == "-":
            raise SemcomError("give --output (or '-o -' for stdout)")
        output = str(Path(input).with_suffix("")) + ".sem.safetensors"

    from ..checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    if t.modality == "text":
        with spinner("loading the LLM's token embeddings"):
            tokens, mask = model.text_tokens([text])
    else:
        from ..data import image_from_bytes
        from ..formats import read_input_bytes

        raw, name = read_input_bytes(input)
        tokens, mask = model.image_tokens(image_from_bytes(raw, name)[None])
    import torch

    with torch.no_grad():
        symbols = model.encode(tokens, mask)[0]
    meta = {
        "stage": "encode", "task": task, "modality": t.modality,
        "checkpoint": model.name, "checkpoint_hash": model.hash,
        "source": Path(source).name if source != "-" else "<stdin>",
        "n_tokens": int(symbols.shape[0]), "symbols_per_token": int(symbols.shape[1]),
        "channel_uses": int(symbols.shape[0] * symbols.shape[1]),
        "user": 0, "role": "private",
    }
    write_semantic(output, SemanticFile({"symbols": symbols}, meta))
