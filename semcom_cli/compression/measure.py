"""Measure one checkpoint, each measure in a process of its own:

    python -m semcom_cli.compression.measure CHECKPOINT [--split train] [--limit 200] [--seed 0]
    python -m semcom_cli.compression.measure CHECKPOINT --decode RECEIVED.safetensors

The first prints one JSON line with VQA accuracy at 0 and 10 dB (AWGN) and on reworded questions at
10 dB, the text task's BLEU and exact match at 10 dB, and the sizes of the receiver's and the
transmitter's files. The second is a receiver process and nothing else (no dataset, no
transmitter): it decodes the received packets of ``write_received`` in batches of 64, as
``benchmarks/speed.py`` does, and prints the load time, questions per second and its peak resident
memory, so that the memory is the receiver's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.evaluation.plan import EvalPlan
from semcom_cli.evaluation.sweep import run_sweep
from semcom_cli.models.llm import backbone_identity
from semcom_cli.system import SemcomModel

__all__ = ["measure_checkpoint", "part_sizes", "write_received", "decode_speed"]

RECEIVER_PARTS = ("channel_decoder", "adapter", "llm")
TRANSMITTER_PARTS = ("vision", "projector", "channel_encoder")


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def part_sizes(model) -> dict[str, float]:
    """MB on disk of what the receiver needs (its LLM: the compressed one, or the base model's cached
    weights; a tiny random base model is made, not read: its float32 weights are counted) and of what
    the transmitter needs."""

    folder = model.folder
    receiver = sum(_folder_bytes(folder / p) for p in RECEIVER_PARTS)
    if model.compression is None:
        base = backbone_identity(model.preset.backbone, model.preset.seed)[3]
        if base is not None:
            receiver += sum(f.stat().st_size for f in base.glob("*.safetensors"))
        else:
            network = model.get_llm().model
            receiver += sum(p.numel() * p.element_size() for n, p in network.named_parameters() if "lora_" not in n)
    transmitter = sum(_folder_bytes(folder / p) for p in TRANSMITTER_PARTS)
    return {"receiver_mb": receiver / 1e6, "transmitter_mb": transmitter / 1e6}


def _accuracy(doc: dict) -> list[float]:
    return [p["metrics"]["accuracy"]["value"] for p in doc["points"]]


@torch.no_grad()
def measure_checkpoint(folder: Path, split: str = "train", limit: int = 200, seed: int = 0,
                       questions: int = 256) -> dict:
    torch.manual_seed(seed)
    model = SemcomModel.from_pretrained(folder)
    model.get_llm()
    data = EasyVQA.load(split)
    figures = part_sizes(model)

    def sweep(task, snrs):
        plan = EvalPlan(kind="evaluate", checkpoint=str(folder), tasks=[task], snrs=snrs, limit=limit, seed=seed)
        return run_sweep(plan, models={"main": model}, data=data).document

    figures["vqa_0db"], figures["vqa_10db"] = _accuracy(sweep("vqa", [0.0, 10.0]))
    figures["vqa_rephrased_10db"] = _accuracy(sweep("vqa-rephrased", [10.0]))[0]
    text = sweep("text", [10.0])["points"][0]["metrics"]
    figures["text_bleu_10db"] = text["bleu"]["value"]
    figures["text_exact_10db"] = text["exact_match"]["value"]

    return figures


def write_received(model, path: Path, questions: int = 256, seed: int = 0) -> None:
    """What a receiver gets, for ``decode_speed``: ``questions`` test-split image packets through AWGN at
    10 dB (the speed benchmark's setting), with the questions asked of them."""

    data = EasyVQA.load("test")
    rows = list(range(questions))
    tokens, mask = model.image_tokens(data.batch_images([data.image_ids[i] for i in rows]))
    seed_channel(seed)
    y, h = make_channel("awgn").send(model.encode(tokens, mask, "image"), 10.0)
    save_file({"y": y.contiguous(), "h": torch.view_as_real(h).contiguous(), "mask": mask.contiguous()}, path,
              metadata={"questions": json.dumps([data.questions[i] for i in rows])})


@torch.no_grad()
def decode_speed(folder: Path, received: Path, batch: int = 64) -> dict:
    """A receiver process alone: load the checkpoint, decode ``received`` in batches (after one warm-up
    batch), and report questions per second and the process's peak resident memory."""

    with safe_open(received, framework="pt") as f:
        y, h, mask = f.get_tensor("y"), torch.view_as_complex(f.get_tensor("h")), f.get_tensor("mask")
        questions = json.loads(f.metadata()["questions"])
    start = time.perf_counter()
    model = SemcomModel.from_pretrained(folder)
    model.get_llm()
    load_s = time.perf_counter() - start

    def answer(rows):
        tokens = model.receive(y[rows], h[rows], 10.0, mask[rows], "image")
        return model.answer(["vqa"] * tokens.shape[0], questions[rows], tokens, mask[rows])

    answer(slice(0, 8))  # warm-up
    t = time.perf_counter()
    for first in range(0, len(questions), batch):
        answer(slice(first, first + batch))
    return {"load_s": load_s, "questions_per_s": len(questions) / (time.perf_counter() - t),
            "peak_rss_mb": peak_resident_mb(), "threads": torch.get_num_threads()}


def peak_resident_mb() -> float:
    """This process's peak resident memory (MB). Linux's VmHWM belongs to the program now running; the
    rusage figure would also carry a launching parent's peak across fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decode", type=Path, metavar="RECEIVED", help="measure decoding this file only")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")

    try:
        if args.decode is not None:
            print(json.dumps(decode_speed(args.checkpoint, args.decode)))
        else:
            print(json.dumps(measure_checkpoint(args.checkpoint, args.split, args.limit, args.seed)))
    except SemcomError as err:
        sys.exit(f"semcom: error: {err}")


if __name__ == "__main__":
    main()
