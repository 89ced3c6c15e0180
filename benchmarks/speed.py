"""Speed and memory of the shipped checkpoint on this machine, against the targets.

    .venv/bin/python benchmarks/speed.py [--checkpoint checkpoints/semcom-smollm2] [--json out.json]

Prints, side by side with each target and the ratio measured / target:
images encoded per second (vision encoder, KAN projector and channel encoder,
batched), questions decoded per second (channel decoder and the LLM's batched
greedy answers, after the AWGN channel at 10 dB), peak resident memory of the
process doing both, and the LLM's load time cold (building the safetensors cache
from the GGUF wheel) and cached. Each load runs in a fresh process with its own
cache folder, so the user's cache is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {"encode_images_per_s": (500.0, "≥"), "decode_questions_per_s": (10.0, "≥"),
           "peak_rss_gb": (2.0, "≤")}

_LOAD = """
import json, sys, time
t = time.perf_counter()
from semcom_cli.models import SemcomModel, load_backbone  # noqa: F401  (the import time is measured)
imported = time.perf_counter()
model = SemcomModel.from_pretrained(sys.argv[1])
model.get_llm()
done = time.perf_counter()
print(json.dumps({"imports_s": imported - t, "load_s": done - imported}))
"""


def _load_time(checkpoint: str, cache: str) -> dict:
    env = dict(os.environ, SEMCOM_CACHE=cache, TQDM_DISABLE="1")
    r = subprocess.run([sys.executable, "-c", _LOAD, checkpoint], capture_output=True, text=True, env=env, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"speed: the LLM load failed: {r.stderr.strip().splitlines()[-1]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "semcom-smollm2"))
    parser.add_argument("--questions", type=int, default=256, help="questions decoded (batches of 64)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.system import SemcomModel

    with tempfile.TemporaryDirectory() as cache:
        cold = _load_time(args.checkpoint, cache)
        cached = _load_time(args.checkpoint, cache)

    torch.manual_seed(0)
    model = SemcomModel.from_pretrained(Path(args.checkpoint))
    model.get_llm()
    data = EasyVQA.load("test")
    images = data.batch_images(range(len(data.images)))
    with torch.no_grad():
        model.encode(*model.image_tokens(images[:64]), "image")  # warm-up
        t = time.perf_counter()
        tokens, mask = model.image_tokens(images)
        symbols = model.encode(tokens, mask, "image")
        encode_s = time.perf_counter() - t

        seed_channel(0)
        n = args.questions
        ids = [data.image_ids[i] for i in range(n)]
        y, h = make_channel("awgn").send(symbols[ids], 10.0)
        model.answer(["vqa"] * 8, data.questions[:8], tokens[ids[:8]], mask[ids[:8]])  # warm-up
        t = time.perf_counter()
        for start in range(0, n, 64):
            rows = slice(start, start + 64)
            received = model.receive(y[rows], h[rows], 10.0, mask[ids[rows]], "image")
            model.answer(["vqa"] * received.shape[0], data.questions[rows], received, mask[ids[rows]])
        decode_s = time.perf_counter() - t

    figures = {
        "encode_images_per_s": len(images) / encode_s,
        "decode_questions_per_s": n / decode_s,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "llm_load_cold_s": cold["load_s"], "llm_load_cached_s": cached["load_s"],
        "imports_s": cached["imports_s"], "threads": torch.get_num_threads(),
    }
    print(f"{'measure':<26}{'value':>10}  {'target':>8}  {'ratio':>6}")
    for key, value in figures.items():
        target = TARGETS.get(key)
        if target:
            goal, sense = target
            ratio = value / goal
            ok = ratio >= 1 if sense == "≥" else ratio <= 1
            print(f"{key:<26}{value:>10.2f}  {sense}{goal:>7g}  {ratio:>6.2f} {'✓' if ok else '✗'}")
        else:
            print(f"{key:<26}{value:>10.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
