"""Encode an image (or a sentence) into channel symbols: encoder + KAN projector + channel encoder.

With several inputs and --share: one public file (what the users share, sent once) and one
private file per user, in the folder given by -o.

With --channel-uses: a variable-rate packet; the budget is shared over the tokens by their
importance to --question (the user's question, known before sending), or to the task's own
instruction, or (no question) to what the packet says; 'auto' picks the budget from --snr-feedback
and the checkpoint's rate table. With --share too: that budget per user, public tokens sent once.

Task reconstruct (MLLM-SC) sends the picture itself: the LLM reads --query, the guide marks the region
it refers to, and the dual-path codec gives that region --roi-share of the --channel-uses budget (the
region's box is sent first and counted); the reconstruct checkpoint (checkpoints/semcom-scenes) codes it.
A picture of another size than 64×64 is sent as tiles of 64×64, --channel-uses each, and decodes to its own
size. The vqa and caption encoders read 64×64 pictures: another size is resized, said on stderr and
recorded in the file's header (resized_from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import (
    checkpoint_folder,
    checkpoint_option,
    console,
    device_option,
    fail_cleanly,
    spinner,
    task_list,
)
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.outputs import FORCE_HELP

NAME = "encode"


@fail_cleanly
def run(
    inputs: Optional[list[str]] = typer.Argument(
        None, help=f"Image file ({task_list(lambda t: t.modality == 'image' and (t.trainable or t.output == 'image'))})"
                   f" or UTF-8 text file ({task_list(lambda t: t.modality == 'text')}); several with --share."),
    task: str = typer.Option(..., "--task", "-t", help=f"A task: {task_list(lambda t: t.trainable or t.output == 'image')}"
                                                       " (`semcom list tasks`)."),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="Output file ('-' for stdout); default INPUT.sem.safetensors."),
    text: Optional[str] = typer.Option(None, "--text", help="The sentence to send (text task), instead of a file."),
    share: bool = typer.Option(False, "--share", help="Several users: write public.sem.safetensors and "
                                                      "user-<u>.sem.safetensors into the -o folder."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="--share: tokens within this relative distance are shared.",
        show_default="0.35; text: only equal tokens"),
    channel_uses: Optional[str] = typer.Option(
        None, "--channel-uses", help="Variable rate: channel uses for this packet (a multiple of the symbols per "
                                     "token), or 'auto' (from --snr-feedback and the checkpoint's rate table); "
                                     "task reconstruct: the budget per 64×64 tile of the picture (a larger "
                                     "picture is sent as tiles of 64×64).",
        show_default="the checkpoint's own rate; task reconstruct: 512"),
    question: Optional[list[str]] = typer.Option(None, "--question", "-q",
                                                 help="The user's question (vqa), known before sending: the "
                                                      "budget goes to the tokens that answer it. With --share: "
                                                      "once per user, in input order, or once for all."),
    snr_feedback: Optional[str] = typer.Option(None, "--snr-feedback",
                                               help="The SNR (dB) the receiver reports: --channel-uses auto picks "
                                                    "the budget by it; task reconstruct: the image codec's encoder "
                                                    "adapts to it.", show_default="none; task reconstruct: 10"),
    target_accuracy: Optional[float] = typer.Option(None, "--target-accuracy",
                                                    help="What --channel-uses auto aims for (0-1).",
                                                    show_default="0.95"),
    query: Optional[str] = typer.Option(None, "--query", help="reconstruct: what the user asks about the image "
                                                              "('the red circle', 'what colour is the triangle?')."),
    roi_share: Optional[float] = typer.Option(None, "--roi-share", help="reconstruct: the share of the budget the "
                                                                        "region of interest gets (0-1).",
                                              show_default="0.7"),
    method: Optional[str] = typer.Option(None, "--method", help="reconstruct: importance (guided by --query) or "
                                                                "uniform (no guidance).", show_default="importance"),
    importance_map: Optional[str] = typer.Option(None, "--map", help="reconstruct: an importance map (a grey "
                                                                     "PNG of the picture's size, as 'semcom guide' "
                                                                     "writes) instead of --query."),
    checkpoint: Optional[Path] = checkpoint_option(per_task=True),
    device: Optional[str] = device_option(),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    from semcom_cli.tasks import get_task, task_names

    t = get_task(task)
    if t.output == "image":
        return _encode_reconstruct(inputs or [], output, query, importance_map, channel_uses, roi_share, method,
                                   snr_feedback,
                                   [("--question", question), ("--share", share or None), ("--text", text),
                                    ("--threshold", threshold), ("--target-accuracy", target_accuracy)], checkpoint,
                                   force)
    for flag, value in (("--query", query), ("--roi-share", roi_share), ("--method", method),
                        ("--map", importance_map)):
        if value is not None:
            raise SemcomError(f"{flag} is for task reconstruct (task '{t.name}' answers --question instead)")
    if not t.trainable:  # an evaluation-only task: encode for the task it rewords
        raise SemcomError(f"task '{task}' is for evaluation only (encode for: {', '.join(task_names(True))})")
    inputs = inputs or []
    questions = question or []
    if share:
        if text is not None:
            raise SemcomError("--share takes one text file per user, not --text")
        if channel_uses == "auto":
            raise SemcomError("--share takes a budget per user (--channel-uses N), not auto: its users report "
                              "different SNRs")
        if len(questions) not in (0, 1, len(inputs)):
            raise SemcomError(f"--share: give one --question per user ({len(inputs)}) or one for all "
                              f"(got {len(questions)})")
        checked = [_rate_flags(t, channel_uses, q, snr_feedback, target_accuracy) for q in (questions or [None])]
        rate = checked[0]
        if rate is not None:
            asked = [c["question"] for c in checked]
            rate = {"channel_uses": rate["channel_uses"],
                    "questions": asked * len(inputs) if len(asked) == 1 else asked}
        return _encode_share(inputs, t, output, threshold, checkpoint, device, rate, force)
    if len(questions) > 1:
        raise SemcomError(f"{len(questions)} questions: one packet takes one --question")
    rate = _rate_flags(t, channel_uses, questions[0] if questions else None, snr_feedback, target_accuracy)
    if threshold is not None:
        raise SemcomError("--threshold applies to --share only")
    if len(inputs) > 1:
        raise SemcomError(f"{len(inputs)} inputs: encode one at a time, or add --share for several users")
    source = inputs[0] if inputs else None
    if output is None:
        if source is None or source == "-":
            raise SemcomError("give --output (or '-o -' for stdout)")
        output = str(Path(source).with_suffix("")) + ".sem.safetensors"
    from semcom_cli.core.outputs import check_output
    from semcom_cli.io.semantic import SEMANTIC_OUTPUT, write_semantic

    check_output(output, [source, checkpoint_folder(checkpoint)], kind=SEMANTIC_OUTPUT, force=force)
    from semcom_cli.link.transmitter import encode_at_rate, encode_single
    from semcom_cli.system import SemcomModel

    if t.modality == "text":  # a sentence is checked before the model loads, an image against it after
        content, source = _read_single(t, source, text)
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    read = None
    if t.modality != "text":
        read, source = _read_single(t, source, text)
        content = read.pixels
    name = Path(source).name if source != "-" else "<stdin>"
    if rate is not None:
        if rate["channel_uses"] == "auto":
            model.rate_table()  # no table: say so before the LLM loads
        with spinner("weighing the tokens with the LLM and encoding"):
            sem = encode_at_rate(model, t, content, name, **rate)
        copies = sem.header.copies
        console.print(f"{sem.header.channel_uses} channel uses: copies per token {copies} "
                      f"({sem.header.rate['method']})")
    else:
        with spinner("loading the LLM's token embeddings" if t.modality == "text" else "encoding"):
            sem = encode_single(model, t, content, name)
    if read is not None:
        sem = _record_resize(sem, read)
    write_semantic(output, sem)


def _rate_flags(t, channel_uses: Optional[str], question: Optional[str], snr_feedback: Optional[str],
                target_accuracy: Optional[float]) -> Optional[dict]:
    """The variable-rate settings, checked before anything loads (None: a fixed-rate packet)."""
    from semcom_cli.channel import check_snr
    from semcom_cli.core.limits import check_question

    if channel_uses is None:
        given = [f for f, v in (("--question", question), ("--snr-feedback", snr_feedback),
                                ("--target-accuracy", target_accuracy)) if v is not None]
        if given:
            raise SemcomError(f"{', '.join(given)} shape a variable-rate packet: give --channel-uses "
                              f"(a number or auto)")
        return None
    if question is not None:
        if t.instruction is not None or t.modality == "text":
            raise SemcomError(f"--question is for the vqa task (task '{t.name}' has its own instruction)")
        if not question.strip():
            raise SemcomError("--question is empty")
        question = " ".join(check_question(question).split())
    if channel_uses == "auto":
        if snr_feedback is None:
            raise SemcomError("--channel-uses auto needs the SNR the receiver reports (--snr-feedback)")
        budget: int | str = "auto"
    else:
        if snr_feedback is not None:
            raise SemcomError("--snr-feedback is read by --channel-uses auto only")
        try:
            budget = int(channel_uses)
        except ValueError:
            raise SemcomError(f"--channel-uses takes a whole number or 'auto' (got {channel_uses[:40]!r})") from None
    if target_accuracy is not None and not 0 < target_accuracy <= 1:
        raise SemcomError(f"--target-accuracy must be in (0, 1] (got {target_accuracy})")
    if target_accuracy is not None and budget != "auto":
        raise SemcomError("--target-accuracy is read by --channel-uses auto only")
    return {"channel_uses": budget, "question": question,
            "snr_feedback": None if snr_feedback is None else check_snr(snr_feedback),
            "target_accuracy": 0.95 if target_accuracy is None else target_accuracy}


def _read_single(t, source: Optional[str], text: Optional[str]):
    """The one input: a sentence (text tasks) or decoded image [3, 64, 64] (a resize said on stderr), and
    its name."""
    from semcom_cli.core.files import read_input_bytes
    from semcom_cli.core.limits import check_sentence
    from semcom_cli.data.easyvqa import sentence_from_bytes

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
    return _read_encoder_image(t, *read_input_bytes(source, "image")), source


def _read_encoder_image(t, data: bytes, name: str):
    """An image for the vqa/caption encoder, which reads 64×64 pictures: another size is resized, said in
    one stderr line (the caller records ``resized_from`` in the file's header)."""
    import sys

    from semcom_cli.data.easyvqa import read_image, resize_note

    read = read_image(data, name)
    note = resize_note(name, read, f"{t.name} encoder")
    if note is not None:
        print(f"semcom: note: {note}", file=sys.stderr)
    return read


def _record_resize(sem, read):
    """The file's header records the size the image was resized from (64×64 inputs: nothing, as before)."""
    if read.resized_from is not None:
        sem.header = sem.header.model_copy(update={"resized_from": read.resized_from})
    return sem


def _encode_share(inputs: list[str], t, output: Optional[str], threshold: Optional[float],
                  checkpoint: Optional[Path], device: Optional[str], rate: Optional[dict] = None,
                  force: bool = False) -> None:
    from semcom_cli.core.files import read_input_bytes
    from semcom_cli.core.limits import check_sentence
    from semcom_cli.core.outputs import check_output, check_outputs
    from semcom_cli.data.easyvqa import sentence_from_bytes
    from semcom_cli.link.share_set import PUBLIC_NAME, SHARE_SET_OUTPUT, accounting, private_name, write_share_set
    from semcom_cli.link.transmitter import encode_share_set
    from semcom_cli.system import SemcomModel

    if not inputs:
        raise SemcomError("--share needs the users' input files (one per user)")
    if len(inputs) > 8:
        raise SemcomError(f"--share serves 1 to 8 users (got {len(inputs)} inputs)")
    if output is None or output == "-":
        raise SemcomError("--share writes several files: give a folder with -o")
    folder = Path(output)
    check_output(folder, [checkpoint_folder(checkpoint)], kind=SHARE_SET_OUTPUT, force=force)
    check_outputs([folder / PUBLIC_NAME] + [folder / private_name(u) for u in range(len(inputs))],
                  [*inputs, checkpoint_folder(checkpoint)])
    kind = "text" if t.modality == "text" else "image"
    raws = [read_input_bytes(path, kind) for path in inputs]  # every input read before anything is written
    if t.modality == "text":
        contents = [check_sentence(sentence_from_bytes(raw, name)) for raw, name in raws]
        for sentence, (_, name) in zip(contents, raws):
            if not sentence:
                raise SemcomError(f"{name}: cannot send an empty sentence")
        reads = []
    else:
        reads = [_read_encoder_image(t, raw, name) for raw, name in raws]
        contents = [read.pixels for read in reads]
    model = SemcomModel.from_pretrained(checkpoint, device=device)
    if rate is not None:
        from semcom_cli.link.rate import check_budget

        check_budget(rate["channel_uses"], model.preset.projector.n_tokens if t.modality != "text" else 1,
                     model.symbols_per_token, model.reads_captions(t.modality))
        with spinner("weighing the users' tokens with the LLM and encoding"):
            plan, public, private = encode_share_set(model, t, contents, [Path(p).name for p in inputs], threshold,
                                                     rate["channel_uses"], rate["questions"])
        for sem, read in zip(private, reads):  # each user's file records its own image's resize
            _record_resize(sem, read)
        write_share_set(folder, public, private)
        spent = public.header.channel_uses + sum(p.header.channel_uses for p in private)
        console.print(f"{len(inputs)} users: {len(plan.public)} public tokens, copies {public.header.copies}; "
                      f"private copies {[p.header.copies for p in private]}; {spent} channel uses of a budget of "
                      f"{rate['channel_uses'] * len(inputs)} ({public.header.rate['method']}) → {folder}/")
        return
    with spinner("encoding the users' content"):
        plan, public, private = encode_share_set(model, t, contents, [Path(p).name for p in inputs], threshold)
    for sem, read in zip(private, reads):  # each user's file records its own image's resize
        _record_resize(sem, read)
    write_share_set(folder, public, private)
    m = model.symbols_per_token
    uses = accounting(plan, m, [1] * plan.n_users)
    console.print(f"{len(inputs)} users: {len(plan.public)} public tokens (sent once), "
                  f"{uses['private'] // m} private; {uses['shared']} channel uses against {uses['separate']} "
                  f"sent separately ({100 * uses['saving']:.1f}% fewer) → {folder}/")


def _encode_reconstruct(inputs: list[str], output: Optional[str], query: Optional[str], map_file: Optional[str],
                        channel_uses: Optional[str], roi_share: Optional[float], method: Optional[str],
                        snr_feedback: Optional[str], others: list, checkpoint: Optional[Path],
                        force: bool = False) -> None:
    from semcom_cli.channel import check_snr
    from semcom_cli.core.files import read_input_bytes
    from semcom_cli.core.outputs import check_output
    from semcom_cli.data.easyvqa import read_image
    from semcom_cli.io.semantic import SEMANTIC_OUTPUT, write_semantic
    from semcom_cli.reconstruct.model import ReconstructModel
    from semcom_cli.reconstruct.packets import check_query, encode_image_file

    given = [flag for flag, value in others if value]
    if given:
        raise SemcomError(f"{', '.join(given)} do not apply to task reconstruct")
    method = method or "importance"
    if map_file is not None and query is not None:
        raise SemcomError("give the user's --query or an importance --map, not both")
    if map_file is not None and method == "uniform":
        raise SemcomError("method uniform sends without guidance: drop --map (or use method importance)")
    query = check_query(query, method) if map_file is None else None
    if query is not None and method == "uniform":
        raise SemcomError("method uniform sends without guidance: drop --query (or use method importance)")
    if len(inputs) != 1:
        raise SemcomError(f"task reconstruct sends one image (got {len(inputs)} inputs)")
    try:
        budget = 512 if channel_uses is None else int(channel_uses)
    except ValueError:
        raise SemcomError(f"--channel-uses takes a whole number for task reconstruct "
                          f"(got {channel_uses[:40]!r})") from None
    snr = check_snr(snr_feedback) if snr_feedback is not None else 10.0
    source = inputs[0]
    if output is None:
        if source == "-":
            raise SemcomError("give --output (or '-o -' for stdout)")
        output = str(Path(source).with_suffix("")) + ".sem.safetensors"
    check_output(output, [source, checkpoint, map_file], kind=SEMANTIC_OUTPUT, force=force)
    from semcom_cli.io.patches import check_budget, check_roi_share
    from semcom_cli.io.tiles import tile_grid
    from semcom_cli.reconstruct.packets import read_map

    raw, name = read_input_bytes(source, "image")
    # read at its own size: the codec sends it as tiles of 64×64 (too many tiles: refused before decoding)
    picture = read_image(raw, name, size=None, check_size=lambda width, height: tile_grid(width, height, name))
    grid = tile_grid(*picture.given, name)
    given_map = (read_map(*read_input_bytes(map_file, "image"), size=picture.given) if map_file is not None
                 else None)

    budget, share = check_budget(budget), check_roi_share(0.7 if roi_share is None else roi_share)
    model = ReconstructModel.from_pretrained(checkpoint)
    with spinner("reading the query and encoding" if query else "encoding"):
        sem, info = encode_image_file(model, picture.pixels, Path(source).name if source != "-" else "<stdin>",
                                      query, budget, share, method, snr, given_map)
    write_semantic(output, sem)
    if "fallback" in info:  # said apart from the summary line: the user asked for guidance and got none
        import sys

        print(f"semcom: note: {info['fallback']['why']}: sent uniform, the whole picture alike", file=sys.stderr)
    tiles = "" if grid.single else (f"{grid.width}×{grid.height} picture as {grid.cols}×{grid.rows} tiles of 64×64, "
                                    f"{budget} channel uses per tile: ")
    if info:
        box = info["box"]
        status = (info.get("guide") or {}).get("status")
        read = ("query " + status if status in ("unknown", "not found") else
                f"query read as {info.get('referent') or 'nothing'}")  # the note above says why
        where = "sent uniform" if "fallback" in info else f"region {box or 'none found'}"
        console.print(f"{tiles}{sem.header.channel_uses} channel uses ({sem.header.image['side_uses']} "
                      f"{'per tile ' if tiles else ''}for the region's box); {read}; {where}"
                      f"{' (8×8 patches of the picture)' if tiles and box else ''}")
    elif tiles:
        console.print(f"{tiles}{sem.header.channel_uses} channel uses")
