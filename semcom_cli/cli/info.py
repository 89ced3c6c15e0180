"""Show what a semantic-tensor file or a checkpoint folder holds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from semcom_cli.cli.common import fail_cleanly, print_json

NAME = "info"


@fail_cleanly
def run(
    path: str = typer.Argument(..., help="A semantic .safetensors file ('-' for stdin) or a checkpoint folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
):
    if path != "-" and Path(path).is_dir() and _is_reconstruct(Path(path)):
        from semcom_cli.reconstruct.model import ReconstructModel

        m = ReconstructModel.from_pretrained(Path(path), need_codec=False).manifest
        data = {k: m.get(k) for k in ("name", "hash", "format_version", "kind", "llm_preset", "query_layer", "guidance",
                                      "codec", "versions", "training", "metrics")}
        data["kind"] = "reconstruct checkpoint"
    elif path != "-" and Path(path).is_dir():
        from semcom_cli.system.checkpoint import read_manifest

        m = read_manifest(path)
        data = {k: m.get(k) for k in ("name", "hash", "format_version", "base_model", "versions", "training")}
        data["preset"] = m["preset"].get("name") if isinstance(m.get("preset"), dict) else None
        data["kind"] = "checkpoint"
        if m.get("compression") is not None:  # what was done to it, and what the search measured
            data["kind"] = "compressed checkpoint"
            data["compression"] = m["compression"]
            chosen = (m.get("metrics") or {}).get("compression", {})
            data["measured"] = next((r for r in chosen.get("table", []) if r.get("name") == chosen.get("chosen")), None)
    else:
        from semcom_cli.io.semantic import FORMAT, FORMAT_VERSION, read_semantic

        sem = read_semantic(path)
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, **sem.header.to_json()}
        data["kind"] = "semantic"
        data["tensors"] = {k: list(v.shape) for k, v in sem.tensors.items()}
    if as_json:
        print_json(data)
        return
    from semcom_cli.core.terminal import printable

    # header fields and manifests are anyone's text: shown, never obeyed by the terminal
    table = Table(title=printable(f"{data['kind']}: {path}"), show_header=False)
    for key in sorted(data):
        table.add_row(printable(key), printable(str(data[key])))
    import sys

    from semcom_cli.core.files import stdout_error

    if sys.stdout is None:
        raise stdout_error()
    Console(markup=False).print(table)  # the table is this command's output: stdout


def _is_reconstruct(folder: Path) -> bool:
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.files import read_json_file

    try:  # bounded, a regular file only (a FIFO would never answer), nesting refused: one line later
        manifest = read_json_file(folder / "manifest.json", "manifest", "checkpoint manifest")
    except SemcomError:
        return False
    return isinstance(manifest, dict) and (manifest.get("kind") == "reconstruct"
                                           or manifest.get("format") == "semcom-reconstruct-checkpoint")
