"""Scenes per second: the batched tensor generator against the reference one scene at a time.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/scene_data.py [--device cpu|cuda|auto]
        [--batch 256] [--seconds 5] [--threads N]

A codec trainer on a GPU needs tens of thousands of scenes a minute; the reference
(``generate_scene``: PIL and numpy, one scene at a time) makes about a thousand a second on one core.
``SceneBatcher.draw`` makes the same scenes in distribution as whole batches of tensors. Both make half
their scenes on a textured background (the reference: even seeds plain, odd seeds textured, as
``splits.scene_at`` does). Each path is warmed up, then timed for about ``--seconds``; the batched
one on the CPU and, where CUDA is there (``--device auto``, the default), on the GPU too (synchronised
before the clock stops). Prints one JSON document: images/s of each path and each batched path's ratio
to the reference.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from semcom_cli.data.scenes import SceneBatcher, generate_scene
from semcom_cli.data.scenes.backgrounds import PHOTOS


def reference_rate(size: int, seconds: float) -> float:
    """Images/s of ``generate_scene``, half of them textured, after a warm-up that loads the photographs."""
    for seed in range(16):
        generate_scene(seed, size, textured=bool(seed % 2), textures=PHOTOS["train"])
    made, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        generate_scene(1000 + made, size, textured=bool(made % 2), textures=PHOTOS["train"])
        made += 1
    return made / (time.perf_counter() - start)


def batched_rate(device: torch.device, size: int, batch: int, seconds: float) -> float:
    """Images/s of ``SceneBatcher.draw`` on ``device``, after two warm-up batches."""
    batcher = SceneBatcher("train", size, device=device, seed=0)
    generator = torch.Generator(device=device).manual_seed(0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):
        batcher.draw(batch, generator)
    sync()
    made, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batcher.draw(batch, generator)
        made += batch
        sync()
    return made / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (the CPU, and CUDA where it is there)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0, help="time each path for about this long")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
               "cuda": ["cuda"]}[args.device]
    reference = reference_rate(args.size, args.seconds)
    result = {"size": args.size, "batch": args.batch, "torch_threads": torch.get_num_threads(),
              "reference_cpu_images_per_s": round(reference, 1)}
    for name in devices:
        device = torch.device(name)
        rate = batched_rate(device, args.size, args.batch, args.seconds)
        result[f"batched_{name}_images_per_s"] = round(rate, 1)
        result[f"batched_{name}_over_reference"] = round(rate / reference, 2)
        if name == "cuda":
            result["cuda_device"] = torch.cuda.get_device_name(device)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
