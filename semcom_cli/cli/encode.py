"""Encode an image (or a sentence) into channel symbols: encoder + KAN projector + channel encoder.

With several inputs and --share: one public file (what the users share, sent once) and one
private file per user, in the folder given by -o.
"""

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
    power_neutral: bool = typer.Option(False, "--power-neutral", help="--share: share only what needs no more "
                                                                      "power than separate sending."),
    checkpoint: Path = checkpoint_option(),
):
    t = get_task(task)
    inputs = inputs or []
    if share:
        if text is not None:
            raise SemcomError("--share takes one text file per user, not --text")
        return _encode_share(inputs, t, output, threshold, power_neutral, checkpoint)
    if threshold is not None or power_neutral:
        raise SemcomError("--threshold and --power-neutral apply to --share only")
    if len(inputs) > 1:
        raise SemcomError(f"{len(inputs)} inputs: encode one at a time, or add --share for several users")
    input = inputs[0] if inputs else None
    if t.modality == "text":
        if text is None:
            if input is None:
                raise SemcomError("the text task needs a sentence: --text '...' or a text file")
            from ..formats import read_input_bytes

            text = _sentence(*read_input_bytes(input))
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


def _encode_share(inputs: list[str], t, output: Optional[str], threshold: Optional[float], neutral: bool,
                  checkpoint: Path) -> None:
    import torch

    from ..formats import read_input_bytes
    from ..multiuser import accounting, build_share_files, write_share_set
    from ..sharing import DEFAULT_THRESHOLD, encode_parts, plan_sharing, power_neutral

    if not inputs:
        raise SemcomError("--share needs the users' input files (one per user)")
    if len(inputs) > 8:
        raise SemcomError(f"--share serves 1 to 8 users (got {len(inputs)} inputs)")
    if output is None or output == "-":
        raise SemcomError("--share writes several files: give a folder with -o")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise SemcomError(f"{output}: exists and is not a folder")
    raws = [read_input_bytes(path) for path in inputs]  # every input read before anything is written
    if t.modality == "text":
        threshold = 0.0 if threshold is None else threshold
        sentences = [_sentence(raw, name) for raw, name in raws]
        for sentence, (_, name) in zip(sentences, raws):
            if not sentence:
                raise SemcomError(f"{name}: cannot send an empty sentence")
    else:
        from ..data import image_from_bytes

        images = torch.stack([image_from_bytes(raw, name) for raw, name in raws])
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    from ..checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    with torch.no_grad():
        if t.modality == "text":
            with spinner("loading the LLM's token embeddings"):
                tokens, mask = model.text_tokens(sentences)
        else:
            tokens, mask = model.image_tokens(images)
        whole = model.encode(tokens, mask)
        plan = plan_sharing(tokens, mask, threshold)
        if neutral:
            plan = power_neutral(whole, plan)
        packets = encode_parts(whole, plan)
    base = {"task": t.name, "modality": t.modality, "checkpoint": model.name, "checkpoint_hash": model.hash}
    public, private = build_share_files(packets, plan, base, [Path(p).name for p in inputs],
                                        float(model.preset.train.channel.snr_min))
    write_share_set(folder, public, private)
    from .common import console

    m = model.symbols_per_token
    uses = accounting(plan, m, [1] * plan.n_users)
    console.print(f"{len(inputs)} users: {len(plan.public)} public tokens (sent once), "
                  f"{uses['private'] // m} private; {uses['shared']} channel uses against {uses['separate']} "
                  f"sent separately ({100 * uses['saving']:.1f}% fewer) → {folder}/")


def _sentence(raw: bytes, name: str) -> str:
    """A text file's sentence, whitespace collapsed."""
    try:
        return " ".join(raw.decode("utf-8").split())
    except UnicodeDecodeError:
        raise SemcomError(f"{name}: not a UTF-8 text file") from None
