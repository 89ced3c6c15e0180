"""The reconstruct sweep (MLLM-SC): method × channel × SNR × channel uses × ROI share × decoder over test
scenes, as one document in the evaluation report format; with an output, its JSON, CSV, plots and a grid
of examples beside it. ``semcom evaluate --task reconstruct`` and the benchmarks call it."""

from __future__ import annotations

import io
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Optional

import torch

from semcom_cli.channel import check_channel, check_snr
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes
from semcom_cli.core.limits import check_seed
from semcom_cli.core.outputs import check_outputs
from semcom_cli.core.runtime import versions
from semcom_cli.evaluation.metrics import mean, proportion
from semcom_cli.evaluation.reconstruct import (
    RECONSTRUCT_METHODS,
    image_scores,
    load_items,
    reconstruct_point,
    vqa_right,
)
from semcom_cli.channel.image_codecs import check_codec, codec_names
from semcom_cli.evaluation.report import FORMAT, best_codecs, metric_note
from semcom_cli.evaluation.sweep import write_report
from semcom_cli.io.patches import check_budget, check_roi_share
from semcom_cli.reconstruct.generative.decoder import check_decoder, check_steps, embed_queries
from semcom_cli.reconstruct.generative.features import kid
from semcom_cli.reconstruct.generative.store import has, load_features
from semcom_cli.reconstruct.guidance.model import iou, iou_by_kind
from semcom_cli.reconstruct.imaging.pipeline import guide_boxes
from semcom_cli.reconstruct.model import ReconstructModel
from semcom_cli.system import SemcomModel

__all__ = ["reconstruct_sweep", "example_grid", "GRID_EXAMPLES"]

GRID_EXAMPLES = 6


@contextmanager
def _no_progress(name: str, total: int):
    yield lambda *args: None


def _guidance_record(items, logits, referents) -> dict:
    values = iou(logits, items.masks).tolist()
    return {"iou": sum(values) / len(values), "n": len(values), "per_kind": iou_by_kind(values, items.kinds),
            "referents": [r.to_json() for r in referents[:GRID_EXAMPLES]]}


def reconstruct_sweep(checkpoint: Optional[Path], methods: list[str], channels: list[str], snrs: list[float],
                      budgets: list[int], roi_shares: list[float], limit: int, seed: int, batch_size: int,
                      background: str, vqa: bool, image_codec: str | list[str], mcs: str, output: Optional[Path],
                      decoders: list[str] = ("codec",), steps: int = 20,
                      progress: Callable[[str, int], AbstractContextManager] = _no_progress,
                      status: Callable[[str], AbstractContextManager] = lambda message: nullcontext()) -> dict:
    """The sweep's document (``run`` + ``points``, the evaluation report format); with ``output`` also its
    JSON, CSV, plots and a grid of examples. ``progress(name, total)`` yields ``update(done, total, label)``
    for the points (a progress bar); ``status(message)`` wraps the one long wait before them (the guide
    reading every query)."""
    for m in methods:
        if m not in RECONSTRUCT_METHODS:
            raise SemcomError(f"--method: task reconstruct takes {', '.join(RECONSTRUCT_METHODS)} (got {m!r})")
    decoders = list(dict.fromkeys(check_decoder(d) for d in decoders))
    if "auto" in decoders:
        raise SemcomError("--decoder auto decodes under a time budget (semcom decode --budget-ms); evaluate "
                          "compares codec, fast and quality")
    steps = check_steps(steps)
    codecs = [check_codec(c) for c in codec_names(image_codec)]
    if not codecs:
        raise SemcomError("--image-codec names no codec")
    for c in channels:
        check_channel(c)
    snrs = [check_snr(s) for s in snrs]
    budgets = [check_budget(b) for b in budgets]
    roi_shares = [check_roi_share(r) for r in roi_shares]
    check_seed(seed, "--seed")
    if not 1 <= limit <= 10000:
        raise SemcomError(f"--limit: 1 to 10,000 scenes for task reconstruct (got {limit})")
    if output is not None:
        check_outputs([output, output.with_suffix(".csv")], [checkpoint])
    items = load_items(limit, seed, background)
    model = ReconstructModel.from_pretrained(checkpoint)
    features = None
    if any(d != "codec" for d in decoders):
        model.generative  # one line if the checkpoint holds no generative decoder
        if "quality" in decoders:
            model.generative.denoiser
        if has(model.folder, model.manifest, "scene-features"):
            features = load_features(model.folder, model.manifest)
        query_embeddings = embed_queries(items.queries)
    vqa_model = None
    if vqa:
        vqa_model = SemcomModel.from_pretrained(None)
    with status("reading the queries with the LLM and marking the scenes"):
        boxes, referents, logits = [], [], []
        for start in range(0, limit, batch_size):
            _, b, r, lg = guide_boxes(model, items.images[start : start + batch_size],
                                      items.queries[start : start + batch_size])
            boxes += b
            referents += r
            logits.append(lg)
        logits = torch.cat(logits)
    guidance = _guidance_record(items, logits, referents)
    grid_points = _grid_points(methods, channels, snrs, budgets, roi_shares, decoders)
    examples: dict[str, object] = {}
    points = []
    plan = [(m, c, s, b, r, d, k) for m in methods for c in channels for s in snrs for b in budgets
            for r in (roi_shares if m == "importance" else [None])
            for d in (decoders if m not in ("digital", "separation") else [None])
            for k in (codecs if m == "digital" else [codecs[0]] if m == "separation" else [None])]
    started = time.time()
    with progress("evaluate", len(plan)) as update:
        for k, (method, channel, snr, budget, share, decoder, codec) in enumerate(plan):
            generative = None
            if decoder not in (None, "codec"):
                queries = query_embeddings if method == "importance" else torch.zeros_like(query_embeddings)
                generative = {"decoder": decoder, "steps": steps, "queries": queries}
            received, uses = reconstruct_point(model, items, boxes, method, channel, snr, budget,
                                               share if share is not None else roi_shares[0], seed, batch_size,
                                               codec or codecs[0], mcs, generative)
            metrics = {name: mean(v) for name, v in image_scores(received, items).items()}
            if features is not None:
                torch.manual_seed(seed)  # KID's subsets
                metrics["kid"] = kid(features, items.images, received)
                if note := metric_note("kid", metrics["kid"]):  # the JSON says it too, not only the table
                    metrics["kid"]["note"] = note
            if vqa_model is not None:
                metrics["vqa_accuracy"] = proportion(vqa_right(vqa_model, received, items, seed, batch_size))
            if method == "importance":
                metrics["iou"] = {"value": guidance["iou"], "n": guidance["n"], "ci95": [guidance["iou"]] * 2}
            point = {"method": method, "task": "reconstruct", "channel": channel, "snr_db": snr, "channel_uses": budget,
                     "channel_uses_mean": sum(uses) / len(uses), "metrics": metrics, "seed": seed}
            if share is not None:
                point["roi_share"] = share
            if codec is not None:
                point["codec"] = codec
            if decoder is not None:
                point["decoder"] = decoder
                if decoder == "quality":
                    point["steps"] = steps
            points.append(point)
            if (method, channel, snr, budget, share, decoder) in grid_points:
                label = method if len(decoders) == 1 else decoder
                examples[f"{label} {snr:g} dB"] = received[:GRID_EXAMPLES]
            update(k + 1, len(plan), f"{method} {decoder or ''} {channel} {snr:g} dB")
    if vqa_model is not None:  # the ceiling: the same questions asked of the originals
        guidance["vqa_accuracy_original"] = proportion(vqa_right(vqa_model, items.images, items, seed, batch_size))
    doc = {"format": FORMAT, "run": {"checkpoint": model.name, "checkpoint_hash": model.hash, "preset": "command-line",
                                     "task": "reconstruct", "seed": seed, "limit": limit, "background": background,
                                     "split": "test", "seconds": round(time.time() - started, 1),
                                     "guidance": guidance, "versions": versions(),
                                     "settings": {"methods": methods, "channels": channels, "snrs": snrs,
                                                  "channel_uses": budgets, "roi_shares": roi_shares,
                                                  "image_codec": codecs, "mcs": mcs, "vqa": vqa,
                                                  "decoders": decoders, "steps": steps}},
           "points": points}
    if "digital" in methods:
        doc["best_codec"] = best_codecs(points, lambda task: "roi_psnr_db")
    if output is not None:
        plots = write_report(doc, output)
        grid = output.with_name(output.stem + "-examples.png")
        atomic_write_bytes(grid, example_grid(items, torch.sigmoid(logits), examples))
        doc["written"] = [str(output), str(output.with_suffix(".csv")), *map(str, plots), str(grid)]
    return doc


def _grid_points(methods, channels, snrs, budgets, shares, decoders) -> set:
    """The points the example grid shows: with one decoder, uniform and importance at the lowest and
    highest SNR; with several, each decoder's importance reconstructions at every SNR (up to 4)."""
    out = set()
    if len(decoders) > 1 and "importance" in methods:
        for snr in sorted(snrs)[:4]:
            for decoder in decoders:
                out.add(("importance", channels[0], snr, budgets[0], shares[0], decoder))
        return out
    low, high = min(snrs), max(snrs)
    for method in ("uniform", "importance"):
        if method in methods:
            for snr in {low, high}:
                out.add((method, channels[0], snr, budgets[0], shares[0] if method == "importance" else None,
                         decoders[0]))
    return out


def example_grid(items, probabilities, examples: dict) -> bytes:
    """A PNG: per example row the input, the guide's map, and each reconstruction in ``examples``."""
    import matplotlib  # heavy: matplotlib, plots only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib, plots only

    columns = [("input", items.images), ("guide map", probabilities[:, None].expand(-1, 3, -1, -1))]
    columns += sorted(examples.items(), key=lambda kv: (float(kv[0].split()[1]), kv[0]))
    rows = min(GRID_EXAMPLES, items.images.shape[0])
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.6 * len(columns), 1.75 * rows), squeeze=False)
    for r in range(rows):
        for c, (title, images) in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(images[r].clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
            if c == 0:
                ax.set_ylabel(items.queries[r][:28], fontsize=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
