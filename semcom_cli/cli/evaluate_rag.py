"""``semcom evaluate --task text --method semantic,rag``: text messages of three kinds (in the global base,
in the user's local base only, in neither) without and with retrieval; JSON and a table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from semcom_cli.cli.common import console, parse_floats, parse_names, print_json
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.terminal import printable
from semcom_cli.evaluation.report import UNITS, Column, Unit, fitted_tables, numbered, unit_of


def rag_sweep(checkpoint: Optional[Path], task: Optional[str], methods: list[str], channel: Optional[str],
              snr: Optional[str], limit: Optional[int], seed: Optional[int], batch_size: Optional[int], k: int,
              users: int, output: Optional[Path], as_json: bool, device: Optional[str]) -> dict:
    from semcom_cli.channel import check_channel, check_snr
    from semcom_cli.cli.common import progress_bar, spinner
    from semcom_cli.core.limits import check_seed
    from semcom_cli.core.outputs import check_output
    from semcom_cli.core.runtime import versions
    from semcom_cli.evaluation.rag import RagSettings, evaluate_rag
    from semcom_cli.system import SemcomModel

    if task is not None and parse_names(task) == ["vqa"]:
        return _vqa_local(checkpoint, methods, channel, snr, limit, seed, batch_size, output, as_json, device)
    if task is not None and parse_names(task) != ["text"]:
        raise SemcomError("--method rag measures one task: text (knowledge bases of sentences) or vqa (a local "
                          "base of the user's recent scenes)")
    settings = RagSettings(
        snrs=[check_snr(s) for s in parse_floats(snr)] if snr else [-5.0, 0.0, 10.0],
        channels=[check_channel(c) for c in parse_names(channel)] if channel else ["awgn"],
        methods=methods, k=k, limit=None if limit == 0 else (100 if limit is None else limit), users=users,
        seed=check_seed(seed or 0, "--seed"), batch_size=batch_size or 32).check()
    if settings.batch_size < 1:
        raise SemcomError(f"--batch-size must be positive (got {settings.batch_size})")
    if output is not None:
        check_output(output, [checkpoint])
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    with spinner("loading the LLM") as status:
        model.get_llm(status)
    with progress_bar("rag", 1) as update:
        result = evaluate_rag(model, settings, on_progress=lambda done, total: update(done, total))
    result["versions"] = versions()
    _table(result, settings.k)
    return _publish(result, output, as_json)


def _vqa_local(checkpoint, methods, channel, snr, limit, seed, batch_size, output, as_json, device) -> dict:
    """VQA with and without a prior from the user's recent scenes (``evaluation.rag.evaluate_vqa_local``)."""
    from semcom_cli.channel import check_channel, check_snr
    from semcom_cli.cli.common import spinner
    from semcom_cli.core.limits import check_seed
    from semcom_cli.core.outputs import check_output
    from semcom_cli.core.runtime import versions
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.evaluation.rag import evaluate_vqa_local
    from semcom_cli.system import SemcomModel

    if sorted(set(methods)) != ["rag", "semantic"]:
        raise SemcomError("--task vqa --method rag compares semantic,rag (the same packets without and with the "
                          "user's recent scenes)")
    if limit is not None and limit < 1:
        raise SemcomError(f"--limit must be positive (got {limit})")
    if batch_size is not None and batch_size < 1:
        raise SemcomError(f"--batch-size must be positive (got {batch_size})")
    snrs = [check_snr(s) for s in parse_floats(snr)] if snr else [-5.0]
    channels = [check_channel(c) for c in parse_names(channel)] if channel else ["awgn"]
    seed = check_seed(seed or 0, "--seed")
    if output is not None:
        check_output(output, [checkpoint])
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    with spinner("loading the LLM and easy-vqa") as status:
        model.get_llm(status)
        data = EasyVQA.load("test")
    result = evaluate_vqa_local(model, data, snrs, channels, limit=limit or 200, seed=seed,
                                batch_size=batch_size or 64)
    result.update({"checkpoint": model.name, "checkpoint_hash": model.hash, "versions": versions()})
    keys = [Column("kind", [printable(p["kind"]) for p in result["points"]], left=True),
            Column("channel", [printable(p["channel"]) for p in result["points"]], left=True, said=str),
            Column("SNR dB", [f"{p['snr_db']:g}" for p in result["points"]], said=lambda v: f"{v} dB"),
            Column("n", [str(p["n"]) for p in result["points"]], said=lambda v: f"n = {v}")]
    values = [Column(f"acc % {side}", [f"{100 * p[method]['accuracy']['value']:.1f}" for p in result["points"]])
              for method, side in (("semantic", "without"), ("rag", "with"))]
    title = printable(f"VQA with the user's {result['recent']} recent scenes as a prior ({model.name})")
    _print_tables(fitted_tables(title, keys, values, console.width))
    return _publish(result, output, as_json)


def _publish(result: dict, output: Optional[Path], as_json: bool) -> dict:
    """Write the results JSON (atomically) and print it when asked."""
    from semcom_cli.core.files import write_json

    if output is not None:
        write_json(output, result)
        console.print(f"results → {output}")
    if as_json:
        print_json(result)
    return result


def _table(result: dict, k: int) -> None:
    points = result["points"]
    keys = [Column("method", [printable(p["method"]) for p in points], left=True),
            Column("kind", [printable(p["kind"]) for p in points], left=True),
            Column("channel", [printable(p["channel"]) for p in points], left=True, said=str),
            Column("SNR dB", [f"{p['snr_db']:g}" for p in points], said=lambda v: f"{v} dB"),
            Column("n", [str(p["n"]) for p in points], said=lambda v: f"n = {v}")]
    values = []
    for name in ("exact_match", "bleu", "similarity", f"recall@{k}"):
        unit = unit_of(name) if name in UNITS else Unit(f"{name} %", name, 100)
        values.append(Column(unit.header, ["—" if p["metrics"].get(name) is None else
                                           unit.show(p["metrics"][name]["value"]) for p in points]))
    title = printable(f"text with retrieval ({result['checkpoint']}, {result['seconds']} s)")
    _print_tables(fitted_tables(title, keys, values, console.width))


def _print_tables(tables: list) -> None:
    for table in numbered(tables):
        console.print(table)
