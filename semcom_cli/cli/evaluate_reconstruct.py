"""``semcom evaluate --task reconstruct``: parses the flags, runs :func:`semcom_cli.evaluation.reconstruct_sweep.
reconstruct_sweep` and prints its tables (JSON, CSV, plots and a grid of examples beside the JSON)."""

from __future__ import annotations

from semcom_cli.cli.common import console, parse_floats, parse_names, print_json, progress_bar, spinner
from semcom_cli.core.errors import SemcomError


def run_from_flags(task, snr, channel, channel_uses, method, limit, seed, batch_size, image_codec, mcs, checkpoint,
                   output, as_json, roi_share, background, vqa, decoder=None, steps=None) -> None:
    if parse_names(task) != ["reconstruct"]:
        raise SemcomError("--task reconstruct is evaluated on its own (its items are scenes, not easy-vqa)")
    budgets = []
    for v in parse_names(channel_uses or "512"):
        try:
            budgets.append(int(v))
        except ValueError:
            raise SemcomError(f"--channel-uses: task reconstruct takes whole numbers (got {v[:40]!r})") from None
    from semcom_cli.cli.evaluate import print_results
    from semcom_cli.evaluation.reconstruct_sweep import reconstruct_sweep

    methods = parse_names(method or "importance,uniform,digital")
    doc = reconstruct_sweep(checkpoint, methods, parse_names(channel or "awgn"), parse_floats(snr or "0,6,12"),
                            budgets, parse_floats(roi_share or "0.7"), 100 if limit is None else limit, seed or 0,
                            batch_size or 64, background or "both", vqa, image_codec or "webp", mcs or "auto",
                            output, parse_names(decoder or "codec"), 20 if steps is None else steps,
                            progress=progress_bar, status=spinner)
    print_results(doc)
    if output is not None:
        written = doc.pop("written")
        console.print(f"wrote {written[0]}, {written[1]}, {len(written) - 3} plots and {written[-1]}")
    if as_json:
        print_json(doc)
