"""Decode received symbols: channel decoder + LLM (with LoRA) following the task instruction.

A user of a share set gives its received private file and, with --public, its copy of the
public broadcast (public.user-<u>.sem.safetensors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import (
    checkpoint_folder,
    checkpoint_option,
    device_option,
    fail_cleanly,
    print_json,
    print_out,
    spinner,
    write_json,
)
from semcom_cli.core.outputs import FORCE_HELP

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
    kb: Optional[Path] = typer.Option(None, "--kb", help="Text: a global knowledge base (semcom kb build) to "
                                                         "retrieve from."),
    kb_local: Optional[Path] = typer.Option(None, "--kb-local", help="This user's local knowledge base (text: "
                                                                     "sentences; images: recent scenes' "
                                                                     "captions); what is decoded is added to it."),
    k: int = typer.Option(3, "--k", help="Entries shown to the LLM (with --kb / --kb-local)."),
    route: str = typer.Option("symbols", "--retrieval", help="How the packet is looked up: symbols (its "
                                                             "received symbols against each entry's code) or "
                                                             "reading (the LLM's first reading, MiniLM)."),
    gate: float = typer.Option(0.75, "--gate", help="symbols: drop entries scoring under this share of the "
                                                   "cosine a sent entry reaches at the packet's SNR."),
    no_update: bool = typer.Option(False, "--no-update", help="Leave the local base as it is."),
    decoder: Optional[str] = typer.Option(None, "--decoder", help="reconstruct: codec (part 1's decoder), or the "
                                                                  "generative decoder's fast (VAE), quality (VAE + "
                                                                  "diffusion) or auto (picks under --budget-ms).",
                                          show_default="codec"),
    steps: Optional[int] = typer.Option(None, "--steps", help="reconstruct, quality/auto: diffusion steps of "
                                                              "the schedule.", show_default="20"),
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help="reconstruct, auto: the decode's time "
                                                                        "budget in milliseconds."),
    seed: Optional[int] = typer.Option(None, "--seed", help="reconstruct, quality/auto: the sampling seed.",
                                       show_default="the channel's seed"),
    checkpoint: Optional[Path] = checkpoint_option(per_task=True),
    device: Optional[str] = device_option(),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.core.limits import check_question
    from semcom_cli.core.outputs import DECODED_OUTPUT, check_output
    from semcom_cli.io.semantic import read_semantic
    from semcom_cli.link.receiver import decode_file
    from semcom_cli.system import SemcomModel

    if question is not None:
        check_question(question)
    from semcom_cli.tasks import get_task

    sem = read_semantic(input, stage="transmit")
    if get_task(sem.header.task).output == "image":
        if kb is not None or kb_local is not None:
            from semcom_cli.core.errors import SemcomError

            raise SemcomError("a reconstruct packet decodes to an image: --kb and --kb-local do not apply")
        return _decode_image(sem, input, question, public, output, as_json, checkpoint, decoder, steps, budget_ms,
                             seed, force)
    generative_flags = {"--decoder": decoder, "--steps": steps, "--budget-ms": budget_ms, "--seed": seed}
    given = [flag for flag, value in generative_flags.items() if value is not None]
    if given:
        from semcom_cli.core.errors import SemcomError

        raise SemcomError(f"{', '.join(given)}: for reconstruct packets (images) only")
    if output is not None:
        check_output(output, [input, public, checkpoint_folder(checkpoint), kb, kb_local], kind=DECODED_OUTPUT,
                     force=force)
    retriever = _retriever(kb, kb_local, k, route, gate) if kb is not None or kb_local is not None else None
    public_sem = read_semantic(public, stage="transmit") if public is not None else None
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    with spinner("loading the LLM and decoding") as status:
        result = decode_file(model, sem, question, public_sem, "<stdin>" if input == "-" else input, public, status,
                             retriever)
    learned = result.get("caption", result["answer"])  # an image packet: its scene's caption
    if retriever is not None and retriever.local_kb is not None and not no_update and learned.strip():
        from semcom_cli.core.errors import SemcomError
        from semcom_cli.retrieval.kb import add_to_base, check_entry

        try:  # the local base learns what this user received (oldest entries evicted past its cap)
            entry = check_entry(learned)
        except SemcomError as err:
            result["local_update"] = f"skipped: {err}"
        else:  # re-read and written under the base's lock: another receiver may have added to it meanwhile
            updated, _ = add_to_base(kb_local, [entry])
            result["local_update"] = {"base": str(kb_local), "entries": len(updated)}
    if output is not None:
        write_json(output, result)
    if as_json:
        print_json(result)
    else:
        print_out(result["answer"])


def _retriever(kb: Optional[Path], kb_local: Optional[Path], k: int, route: str, gate: float):
    from semcom_cli.retrieval import KnowledgeBase, Retriever

    Retriever.check(k, route, gate)  # before any base is read
    return Retriever(KnowledgeBase.load(kb) if kb is not None else None,
                     KnowledgeBase.load(kb_local) if kb_local is not None else None, k, route, gate)


def _decode_image(sem, input: str, question, public, output, as_json: bool, checkpoint, decoder, steps, budget_ms,
                  seed, force: bool = False) -> None:
    from semcom_cli.cli.common import console
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.files import atomic_write_bytes, write_stdout
    from semcom_cli.core.limits import check_seed
    from semcom_cli.core.outputs import PNG_OUTPUT, check_output
    from semcom_cli.reconstruct.generative.decoder import check_budget_ms, check_decoder, check_steps
    from semcom_cli.reconstruct.model import ReconstructModel
    from semcom_cli.reconstruct.packets import decode_image_file, png_bytes

    if question is not None or public is not None:
        raise SemcomError("a reconstruct packet decodes to an image: --question and --public do not apply")
    if output is None:
        raise SemcomError("a reconstruct packet decodes to an image: give -o OUT.png (or '-o -' for stdout)")
    decoder = check_decoder(decoder or "codec")
    if decoder in ("codec", "fast") and (steps is not None or budget_ms is not None or seed is not None):
        raise SemcomError(f"--steps, --budget-ms and --seed apply to --decoder quality and auto, not {decoder}")
    steps = check_steps(20 if steps is None else steps)
    check_budget_ms(budget_ms)
    if seed is not None:
        check_seed(seed, "--seed")
    if decoder == "auto" and budget_ms is None:
        raise SemcomError("--decoder auto needs a compute budget: --budget-ms T")
    if str(output) != "-":
        check_output(output, [input, checkpoint], kind=PNG_OUTPUT, force=force)
    import time

    import torch

    # load: the checkpoint, then one run on empty symbols of everything this decode will use (first-call
    # costs: Sionna's import, kernel choice, MiniLM, the diffusion model, PIL's PNG writer), so that the
    # decode after it runs as fast as in a warm process and --budget-ms is kept from a cold start
    loading = time.perf_counter()
    model = ReconstructModel.from_pretrained(checkpoint)
    h = sem.header
    model.warm_up(decoder, h.image, h.channel_uses, bool(h.query))
    png_bytes(torch.zeros(3, 8, 8), {})
    began = time.perf_counter()  # the budget's clock: everything after the load
    image, result = decode_image_file(model, sem, "<stdin>" if input == "-" else input, decoder, steps, seed,
                                      budget_ms, began=began)
    chosen = result["decoder"]
    data = png_bytes(image, {"task": "reconstruct", "checkpoint_hash": model.hash, "snr_db": result["snr_db"],
                             "decoder": {k: v for k, v in chosen.items() if k not in ("elapsed_ms", "stopped_early")}})
    result["load_ms"] = round(1000 * (began - loading), 1)
    result["decode_ms"] = round(1000 * (time.perf_counter() - began), 1)  # side information … PNG bytes
    from semcom_cli.reconstruct.generative.decoder import budget_warning

    overrun = budget_warning({**chosen, "elapsed_ms": result["decode_ms"]})
    if overrun is not None:  # the image is still written: a late picture beats none
        import sys

        print(f"semcom: warning: {overrun}", file=sys.stderr)
    if str(output) == "-":
        write_stdout(data)
    else:
        atomic_write_bytes(output, data)
        result["output"] = str(output)
    if as_json:
        print_json(result)
    elif str(output) != "-":
        console.print(f"{result['channel_uses']} channel uses at {result['snr_db']:g} dB ({result['channel']}); "
                      f"region received {result['box_received']}; {_decoder_line(result['decoder'])} → {output}")
        console.print(f"load {result['load_ms']:.0f} ms, decode {result['decode_ms']:.0f} ms"
                      + (f" (budget {budget_ms:g} ms)" if budget_ms is not None else ""))


def _decoder_line(used: dict) -> str:
    """What the decoder did, in words: which one, its steps, its confidence, why auto chose it."""
    how = f"decoder {used['used']}"
    if used.get("steps_run"):
        how += f", {used['steps_run']} of {used['steps']} steps"
    if used.get("confidence") is not None:
        how += f", confidence {used['confidence']:.2f} ({used['doubt_measure'].replace('_', ' ')} {used['doubt']:.3f})"
    if used["requested"] != used["used"] or used["requested"] == "auto":
        how += f" (asked: {used['requested']}: {used.get('reason', '')})"
    return how
