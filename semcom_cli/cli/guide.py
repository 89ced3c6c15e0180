"""Mark where an image shows what a query refers to: SmolLM2 reads the query, the guide searches the
image for the referent (colour, shape, where, size) and writes its importance map as a PNG.

The map is what 'semcom encode --task reconstruct' spends the channel by: the box of 8×8 patches
whose importance reaches the checkpoint's threshold is the region of interest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import console, fail_cleanly, print_json, spinner
from semcom_cli.core.outputs import FORCE_HELP

NAME = "guide"


@fail_cleanly
def run(
    image: str = typer.Argument(..., help="Image file ('-' for stdin); read at 64×64."),
    query: str = typer.Option(..., "--query", "-q", help="What the user asks about: 'the red circle', "
                                                         "'what colour is the triangle?', 'the leftmost shape'."),
    output: str = typer.Option(..., "--output", "-o", help="The map as a grey PNG ('-' for stdout)."),
    as_json: bool = typer.Option(False, "--json", help="Print the referent, box and patch map as JSON."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Reconstruct checkpoint folder.",
                                              show_default="the shipped checkpoints/semcom-scenes"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    import torch

    from semcom_cli.core.files import atomic_write_bytes, read_input_bytes, write_stdout
    from semcom_cli.core.outputs import OutputKind, check_output, is_png
    from semcom_cli.data.easyvqa import image_from_bytes
    from semcom_cli.reconstruct.imaging.pipeline import guide_boxes
    from semcom_cli.reconstruct.model import ReconstructModel
    from semcom_cli.reconstruct.packets import check_query, map_png_bytes

    query = check_query(query, "importance")
    check_output(output, [image, checkpoint], kind=OutputKind("guide map (PNG)", is_png), force=force)
    pixels = image_from_bytes(*read_input_bytes(image, "image"))
    model = ReconstructModel.from_pretrained(checkpoint, need_codec=False)
    with spinner("reading the query with the LLM and searching the image"):
        maps, boxes, referents, logits = guide_boxes(model, pixels[None], [query])
    data = map_png_bytes(torch.sigmoid(logits[0]))
    if output == "-":
        write_stdout(data)
    else:
        atomic_write_bytes(output, data)
    box = boxes[0]
    result = {"query": query, "referent": referents[0].to_json(), "box": box.to_json() if box else None,
              "patch_map": [[round(float(v), 3) for v in row] for row in maps[0]], "threshold": model.roi_threshold,
              "checkpoint": model.name, "checkpoint_hash": model.hash}
    if as_json:
        print_json(result)
    elif output != "-":
        where = f"patches x {box.x0}-{box.x1}, y {box.y0}-{box.y1}" if box else "nothing found"
        console.print(f"read as: {referents[0].describe()}; region of interest: {where} → {output}")
