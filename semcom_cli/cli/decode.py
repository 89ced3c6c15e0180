"""Decode received symbols: channel decoder + LLM (with LoRA) following the task instruction.

A user of a share set gives its received private file and, with --public, its copy of the
public broadcast (public.user-<u>.sem.safetensors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (checkpoint_folder, checkpoint_option, device_option, fail_cleanly, print_json, print_out,
                     spinner, write_json)

NAME = "decode"


@fail_cleanly
def run(
    input: str = typer.Argument(..., help="Received semantic file from 'semcom transmit' ('-' for stdin)."),
    question: Optional[str] = typer.Option(None, "--question", "-q", help="The question (vqa task)."),
    public: Optional[str] = typer.Option(None, "--public", help="Share set: this user's received public file."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Also write the result as JSON here (reconstruct: the image, "
                                               "as PNG; '-': stdout)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead of plain text."),
    checkpoint: Optional[Path] = checkpoint_option(),
    device: Optional[str] = device_option(),
):
    from ..io import read_semantic
    from ..limits import check_output, check_question
    from ..models import SemcomModel
    from ..receiver import decode_file

    if question is not None:
        check_question(question)
    from ..tasks import get_task

    sem = read_semantic(input, stage="transmit")
    if get_task(sem.header.task).output == "image":
        return _decode_image(sem, input, question, public, output, as_json, checkpoint)
    if output is not None:
        check_output(output, [input, public, checkpoint_folder(checkpoint)])
    public_sem = read_semantic(public, stage="transmit") if public is not None else None
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    with spinner("loading the LLM and decoding") as status:
        result = decode_file(model, sem, question, public_sem, "<stdin>" if input == "-" else input, public, status)
    if output is not None:
        write_json(output, result)
    if as_json:
        print_json(result)
    else:
        print_out(result["answer"])


def _decode_image(sem, input: str, question, public, output, as_json: bool, checkpoint) -> None:
    from ..errors import SemcomError
    from ..imaging.checkpoint import ReconstructModel
    from ..imaging.files import decode_image_file, png_bytes
    from ..io.files import atomic_write_bytes, write_stdout
    from ..limits import check_output
    from .common import console

    if question is not None or public is not None:
        raise SemcomError("a reconstruct packet decodes to an image: --question and --public do not apply")
    if output is None:
        raise SemcomError("a reconstruct packet decodes to an image: give -o OUT.png (or '-o -' for stdout)")
    if str(output) != "-":
        check_output(output, [input, checkpoint])
    model = ReconstructModel.from_pretrained(checkpoint)
    image, result = decode_image_file(model, sem, "<stdin>" if input == "-" else input)
    data = png_bytes(image)
    if str(output) == "-":
        write_stdout(data)
    else:
        atomic_write_bytes(output, data)
        result["output"] = str(output)
    if as_json:
        print_json(result)
    elif str(output) != "-":
        console.print(f"{result['channel_uses']} channel uses at {result['snr_db']:g} dB ({result['channel']}); "
                      f"region received {result['box_received']} → {output}")
