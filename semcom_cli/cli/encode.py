"""Encode an image (or a sentence) into channel symbols: encoder + KAN projector + channel encoder.

With several inputs and --share: one public file (what the users share, sent once) and one
private file per user, in the folder given by -o.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import SemcomError
from .common import checkpoint_folder, checkpoint_option, console, device_option, fail_cleanly, spinner

NAME = "encode"


@fail_cleanly
def run(
    inputs: Optional[list[str]] = typer.Argument(
        None, help="Image file (vqa, caption) or UTF-8 text file (text); several with --share."),
    task: str = typer.Option(..., "--task", "-t", help="vqa | caption | text"),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="Output file ('-' for stdout); default INPUT.sem.safetensors."),
    text: Optional[str] = typer.Option(None, "--text", help="The sentence to send (text task), instead of a file."),
    share: bool = typer.Option(False, "--share", help="Several users: write public.sem.safetensors and "
                                                      "user-<u>.sem.safetensors into the -o folder."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="--share: tokens within this relative distance are shared [default: 0.35; "
                                  "text: only equal tokens]."),
    checkpoint: Optional[Path] = checkpoint_option(),
    device: Optional[str] = device_option(),
):
    from ..tasks import get_task, task_names

    t = get_task(task)
    if not t.trainable:  # an evaluation-only task: encode for the task it rewords
        raise SemcomError(f"task '{task}' is for evaluation only (encode for: {', '.join(task_names(True))})")
    inputs = inputs or []
    if share:
        if text is not None:
            raise SemcomError("--share takes one text file per user, not --text")
        return _encode_share(inputs, t, output, threshold, checkpoint, device)
    if threshold is not None:
        raise SemcomError("--threshold applies to --share only")
    if len(inputs) > 1:
        raise SemcomError(f"{len(inputs)} inputs: encode one at a time, or add --share for several users")
    source = inputs[0] if inputs else None
    if output is None:
        if source is None or source == "-":
            raise SemcomError("give --output (or '-o -' for stdout)")
        output = str(Path(source).with_suffix("")) + ".sem.safetensors"
    from ..limits import check_output

    check_output(output, [source, checkpoint_folder(checkpoint)])
    from ..io import write_semantic
    from ..models import SemcomModel
    from ..transmitter import encode_single

    if t.modality == "text":  # a sentence is checked before the model loads, an image against it after
        content, source = _read_single(t, source, text)
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    if t.modality != "text":
        content, source = _read_single(t, source, text)
    with spinner("loading the LLM's token embeddings" if t.modality == "text" else "encoding"):
        sem = encode_single(model, t, content, Path(source).name if source != "-" else "<stdin>")
    write_semantic(output, sem)


def _read_single(t, source: Optional[str], text: Optional[str]):
    """The one input: a sentence (text tasks) or decoded image [3, 64, 64], and its name."""
    from ..data import image_from_bytes, sentence_from_bytes
    from ..io import read_input_bytes
    from ..limits import check_sentence

    if t.modality == "text":
        if text is None:
            if source is None:
                raise SemcomError("the text task needs a sentence: --text '...' or a text file")
            text = sentence_from_bytes(*read_input_bytes(source, "text"))
        text = " ".join(check_sentence(text).split())
        if not text:
            raise SemcomError("cannot send an empty sentence")
        return text, source or "--text"
    if source is None:
        raise SemcomError(f"task '{t.name}' needs an image file")
    return image_from_bytes(*read_input_bytes(source, "image")), source


def _encode_share(inputs: list[str], t, output: Optional[str], threshold: Optional[float],
                  checkpoint: Optional[Path], device: Optional[str]) -> None:
    from ..data import image_from_bytes, sentence_from_bytes
    from ..transmitter import encode_share_set
    from ..io import read_input_bytes
    from ..io.share_set import PUBLIC_NAME, accounting, private_name, write_share_set
    from ..limits import check_output, check_outputs, check_sentence
    from ..models import SemcomModel

    if not inputs:
        raise SemcomError("--share needs the users' input files (one per user)")
    if len(inputs) > 8:
        raise SemcomError(f"--share serves 1 to 8 users (got {len(inputs)} inputs)")
    if output is None or output == "-":
        raise SemcomError("--share writes several files: give a folder with -o")
    folder = Path(output)
    check_output(folder, [checkpoint_folder(checkpoint)], folder=True)
    check_outputs([folder / PUBLIC_NAME] + [folder / private_name(u) for u in range(len(inputs))],
                  [*inputs, checkpoint_folder(checkpoint)])
    kind = "text" if t.modality == "text" else "image"
    raws = [read_input_bytes(path, kind) for path in inputs]  # every input read before anything is written
    if t.modality == "text":
        contents = [check_sentence(sentence_from_bytes(raw, name)) for raw, name in raws]
        for sentence, (_, name) in zip(contents, raws):
            if not sentence:
                raise SemcomError(f"{name}: cannot send an empty sentence")
    else:
        contents = [image_from_bytes(raw, name) for raw, name in raws]
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    with spinner("encoding the users' content"):
        plan, public, private = encode_share_set(model, t, contents, [Path(p).name for p in inputs], threshold)
    write_share_set(folder, public, private)
    m = model.symbols_per_token
    uses = accounting(plan, m, [1] * plan.n_users)
    console.print(f"{len(inputs)} users: {len(plan.public)} public tokens (sent once), "
                  f"{uses['private'] // m} private; {uses['shared']} channel uses against {uses['separate']} "
                  f"sent separately ({100 * uses['saving']:.1f}% fewer) → {folder}/")
