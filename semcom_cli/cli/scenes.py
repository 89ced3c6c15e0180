"""Write seeded scenes of several shapes, their object masks and referring queries (MLLM-SC data).

Scene i of a split is the same everywhere (seeded by split and index). Per scene: scene-<i>.png,
scene-<i>.mask.png (pixel value k+1 where object k shows, 0 for the background) and, for all
scenes, scenes.json (objects, background, queries with their target object).
"""

from __future__ import annotations

from pathlib import Path

import typer

from semcom_cli.cli.common import console, fail_cleanly
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.outputs import FORCE_HELP

NAME = "scenes"


@fail_cleanly
def run(
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write the scenes into."),
    split: str = typer.Option("test", "--split", help="train | val | test"),
    count: int = typer.Option(16, "--count", "-n", help="Number of scenes (1 to 10,000)."),
    start: int = typer.Option(0, "--start", help="Index of the first scene."),
    size: int = typer.Option(64, "--size", help="Image side in pixels: 64 or 128 (task reconstruct sends 128 as "
                                                "2×2 tiles of 64×64)."),
    queries: int = typer.Option(1, "--queries", help="Queries per kind and scene (0 to 4)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    import io
    import json

    import numpy as np
    from PIL import Image

    from semcom_cli.core.files import atomic_write_bytes
    from semcom_cli.core.outputs import check_output
    from semcom_cli.data.scenes import SPLITS, referring_queries, scene_at
    from semcom_cli.data.scenes.files import SCENES_FILE, SCENES_FORMAT, SCENES_OUTPUT, scene_file_names, scenes_from
    from semcom_cli.io.checkpoint import replace_folder, staged_folder

    if split not in SPLITS:
        raise SemcomError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    if not 1 <= count <= 10_000:
        raise SemcomError(f"--count must be 1 to 10,000 (got {count})")
    if not 0 <= start <= 10_000_000:
        raise SemcomError(f"--start must be 0 to 10,000,000 (got {start})")
    if size not in (64, 128):
        raise SemcomError(f"--size must be 64 or 128 (got {size})")
    if not 0 <= queries <= 4:
        raise SemcomError(f"--queries must be 0 to 4 (got {queries})")
    # a new or empty folder, or (with --force) a scenes folder semcom wrote, replaced whole: never mixed
    check_output(output, [], kind=SCENES_OUTPUT, force=force)
    records = []
    files: list[tuple[str, bytes]] = []
    for index in range(start, start + count):
        scene = scene_at(split, index, size)
        labels = (scene.masks * (1 + np.arange(len(scene.objects)))[:, None, None]).sum(0)
        for name, array in zip(scene_file_names(index), (scene.image, labels.astype("uint8"))):
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="PNG")
            files.append((name, buffer.getvalue()))
        records.append({"index": index, "seed": scene.seed, "background": scene.background,
                        "objects": [o.to_json() for o in scene.objects], "areas": scene.areas(),
                        "queries": [q.to_json() for q in referring_queries(scene, split, per_kind=queries)]})
    doc = {"format": SCENES_FORMAT, "split": split, "size": size, "scenes": records}
    scenes_from(doc, SCENES_FILE)  # what is written reads back
    with staged_folder(output) as tmp:  # built beside OUTPUT, put in its place in one step
        for name, data in files:
            atomic_write_bytes(tmp / name, data)
        atomic_write_bytes(tmp / SCENES_FILE, (json.dumps(doc, indent=1) + "\n").encode())
        replace_folder(tmp, output)
    console.print(f"{count} {split} scenes ({size}×{size}) → {output}/")
