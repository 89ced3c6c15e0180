"""Mark where an image shows what a query refers to: SmolLM2 reads the query, the guide searches the
image for the referent (colour, shape, where, size) and writes its importance map as a PNG.

The map is what 'semcom encode --task reconstruct' spends the channel by: the box of 8×8 patches
whose importance reaches the checkpoint's threshold is the region of interest. A picture of any size:
the guide reads it whole at 64×64 and the map is written at the picture's own size; a picture larger
than 64×64 is sent as tiles of 64×64, each with its own box.

The guide can say it does not know: a query with words it has no field for ("the purple star",
"the striped circle", another language, nonsense) is *unknown*, and one whose referent the picture
does not show is *not found*; either way the map is blank and 'semcom encode' sends uniform.
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
    image: str = typer.Argument(..., help="Image file ('-' for stdin), any size; the map has its size."),
    query: str = typer.Option(..., "--query", "-q", help="What the user asks about: 'the red circle', "
                                                         "'what colour is the triangle?', 'the leftmost shape'."),
    output: str = typer.Option(..., "--output", "-o", help="The map as a grey PNG ('-' for stdout)."),
    as_json: bool = typer.Option(False, "--json", help="Print the referent, its confidence, unused words, the "
                                                       "outcome (found, unknown, not found), box and patch map "
                                                       "as JSON."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Reconstruct checkpoint folder.",
                                              show_default="the shipped checkpoints/semcom-scenes"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.core.files import atomic_write_bytes, read_input_bytes, write_stdout
    from semcom_cli.core.outputs import OutputKind, check_output, is_png
    from semcom_cli.data.easyvqa import read_image
    from semcom_cli.io.tiles import picture_box, tile_grid
    from semcom_cli.reconstruct.imaging.pipeline import guide_picture
    from semcom_cli.reconstruct.model import ReconstructModel
    from semcom_cli.reconstruct.packets import check_query, map_png_bytes

    query = check_query(query, "importance")
    check_output(output, [image, checkpoint], kind=OutputKind("guide map (PNG)", is_png), force=force)
    raw, name = read_input_bytes(image, "image")
    picture = read_image(raw, name, size=None, check_size=lambda width, height: tile_grid(width, height, name))
    grid = tile_grid(*picture.given, name)
    model = ReconstructModel.from_pretrained(checkpoint, need_codec=False)
    with spinner("reading the query with the LLM and searching the image"):
        guided = guide_picture(model, picture.pixels, query, grid)
    data = map_png_bytes(guided.probabilities)
    if output == "-":
        write_stdout(data)
    else:
        atomic_write_bytes(output, data)
    box = picture_box(guided.boxes, grid)  # over the picture's 8×8 patches
    finding = guided.finding
    result = {"query": query, "referent": guided.referent.to_json(), "status": finding.status,
              "guide": finding.to_json(), "box": box,
              "patch_map": [[round(float(v), 3) for v in row] for row in guided.patches],
              "threshold": model.roi_threshold, "checkpoint": model.name, "checkpoint_hash": model.hash}
    if not grid.single:
        result.update({"size": [grid.width, grid.height], "tiles": [grid.cols, grid.rows],
                       "tile_boxes": [b.to_json() if b else None for b in guided.boxes]})
    if as_json:
        print_json(result)
    elif output != "-":
        console.print(_summary(finding, box, output))
    if not finding.found:  # the transmitter would send uniform for this query: said even with --json
        import sys

        print(f"semcom: note: {finding.why()}; 'semcom encode' would send it uniform", file=sys.stderr)


def _summary(finding, box, output: str) -> str:
    """What the guide read, how sure, what it left out, and where: one line."""
    reading = finding.reading
    sure = ", ".join(f"{field} {reading.confidence[field]:.2f}" for field in reading.referent.to_json())
    parts = [f"read as: {reading.referent.describe()}" + (f" (confidence {sure})" if sure else "")]
    if reading.outside:
        parts.append(f"no word for its {', '.join(reading.outside)}")
    if reading.unused_words:
        parts.append(f"words not used: {', '.join(reading.unused_words)}")
    if finding.found:
        where = f"patches x {box[0]}-{box[2]}, y {box[1]}-{box[3]}" if box else "no patch over the threshold"
        parts.append(f"found{_presence(finding)}; region of interest: {where}")
    else:
        parts.append(finding.status + _presence(finding))
    return "; ".join(parts) + f" → {output}"


def _presence(finding) -> str:
    return f" (presence {finding.presence:.2f})" if finding.presence is not None else ""

