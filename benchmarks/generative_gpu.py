"""Train the generative decoder's three stages on a GPU, each for a time budget, in one process.

The same loops as ``semcom finetune --stage image-vae | image-diffusion | scene-features`` (the CPU
recipe), with a larger pool and batch: each stage first times a few steps, then sets its step count
so that it ends within its seconds. Needs only torch, diffusers, pydantic (the stages' settings), numpy,
Pillow, scikit-image (for the photographs) and safetensors, so it runs on a machine without the rest of
semcom's dependencies;
the query embeddings come from a table made beforehand (``--make-table`` here, with MiniLM).
``python benchmarks/generative_gpu.py --out DIR`` writes ``fast.safetensors``, ``unet.safetensors``,
``features.safetensors`` and ``settings.json``;
``semcom_cli.reconstruct.generative_stages.install_trained(CHECKPOINT, DIR)`` makes them the generative
parts of a reconstruct checkpoint.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcom_cli.reconstruct.generative.data import QueryScenePool  # noqa: E402
from semcom_cli.reconstruct.generative.train import (
    DiffusionTrain,
    FeatureTrain,
    VaeTrain,
    train_diffusion,
    train_features,
    train_vae,
)
from semcom_cli.reconstruct.imaging.codec import DualPathEncoder  # noqa: E402


def make_table(path: Path, scenes: int = 2000) -> None:
    from safetensors.torch import save_file

    from semcom_cli.models.embedding import embed_sentences
    from semcom_cli.reconstruct.guidance.train import query_pairs

    texts = sorted(set(query_pairs("train", scenes, seeds=3, vary=False)[0]))
    save_file({"embeddings": embed_sentences(texts).contiguous()}, str(path), metadata={"texts": json.dumps(texts)})
    print(f"{len(texts)} training wordings embedded → {path}")


def load_table(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        texts = json.loads(f.metadata()["texts"])
        vectors = f.get_tensor("embeddings")
    return dict(zip(texts, vectors))


def part1_encoder(folder: Path, device: str) -> DualPathEncoder:
    from safetensors.torch import load_file

    manifest = json.loads((folder / "manifest.json").read_text())
    encoder = DualPathEncoder(manifest["codec"]["width"])
    encoder.load_state_dict(load_file(str(folder / "encoder" / "model.safetensors")))  # the checkpoint's part
    return encoder.to(device).eval()


def timed_steps(train, cfg, seconds: float, probe: int = 8) -> tuple[int, float]:
    """Steps that fit ``seconds``: time ``probe`` steps after as many warm-up ones."""
    train(cfg.model_copy(update={"steps": probe, "log_every": 10**9}))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    began = time.time()
    train(cfg.model_copy(update={"steps": probe, "log_every": 10**9}))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    per_step = (time.time() - began) / probe
    return max(probe, int(seconds / per_step)), per_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table", type=Path, default=ROOT / ".gpu" / "queries.safetensors")
    ap.add_argument("--make-table", action="store_true", help="embed the training wordings (needs MiniLM) and stop")
    ap.add_argument("--photos", type=Path, default=None, help="an .npz of the training photographs by name")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "semcom-scenes")
    ap.add_argument("--pool", type=int, default=24000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--seconds", type=float, nargs=3, default=(200.0, 170.0, 25.0),
                    metavar=("VAE", "DIFFUSION", "FEATURES"))
    ap.add_argument("--init", type=Path, default=None, help="go on from an earlier run's fast/unet weights")
    ap.add_argument("--skip-features", action="store_true", help="keep the --init run's features.safetensors")
    ap.add_argument("--lr-scale", type=float, default=2.0, help="learning rates × this (larger batches)")
    args = ap.parse_args()
    if args.make_table:
        make_table(args.table)
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = (args.out / "log.txt").open("w")

    def log(*parts):
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    began = time.time()
    if args.photos is not None:  # the training photographs as this machine reads them (skimage may fetch some)
        import numpy as np

        from semcom_cli.data.scenes import backgrounds

        photos = dict(np.load(args.photos))
        backgrounds.load_photo = photos.__getitem__
    pool = QueryScenePool(args.pool, workers=args.workers)
    table = load_table(args.table)
    missing = [t for t in pool.texts() if t not in table]
    if missing:
        raise SystemExit(f"{len(missing)} pool wordings are not in the table, e.g. {missing[:3]}")
    encoder = part1_encoder(args.checkpoint, device)
    log(f"pool {len(pool)} scenes in {time.time() - began:.0f} s; device {device}",
        torch.cuda.get_device_name() if device == "cuda" else platform.processor())

    def on_log(stage):
        return lambda step, loss, seconds: log(stage, step, f"{loss:.4f}", f"{seconds:.0f}s")

    records = {}
    start = {}
    if args.init is not None:
        from safetensors.torch import load_file

        start = {name: load_file(str(args.init / f"{name}.safetensors")) for name in ("fast", "unet")}
        records["init"] = json.loads((args.init / "settings.json").read_text())
    vae = VaeTrain(batch_size=args.batch_size, pool=args.pool, lr=1e-3 * args.lr_scale, log_every=200)
    steps, per_step = timed_steps(lambda c: train_vae(c, pool, encoder, table, device), vae, args.seconds[0])
    vae = vae.model_copy(update={"steps": steps})
    t = time.time()
    fast = train_vae(vae, pool, encoder, table, device, on_log("vae"), start_from=start.get("fast"))
    records["image-vae"] = {"settings": vae.model_dump(mode="json"), "seconds": round(time.time() - t, 1),
                            "probe_seconds_per_step": per_step, "scale": float(fast.scale)}
    diffusion = DiffusionTrain(batch_size=args.batch_size, pool=args.pool, lr=5e-4 * args.lr_scale, log_every=200)
    steps, per_step = timed_steps(lambda c: train_diffusion(c, pool, encoder, fast, table, device), diffusion,
                                  args.seconds[1])
    diffusion = diffusion.model_copy(update={"steps": steps})
    t = time.time()
    unet, _ = train_diffusion(diffusion, pool, encoder, fast, table, device, on_log("diffusion"),
                              start_from=start.get("unet"))
    records["image-diffusion"] = {"settings": diffusion.model_dump(mode="json"), "seconds": round(time.time() - t, 1),
                                  "probe_seconds_per_step": per_step}
    if args.skip_features:
        records["scene-features"] = records["init"]["scene-features"]
        net = None
    else:
        features = FeatureTrain(batch_size=args.batch_size, pool=args.pool, lr=2e-3, log_every=200)
        steps, per_step = timed_steps(lambda c: train_features(c, pool, device), features, args.seconds[2])
        features = features.model_copy(update={"steps": steps})
        t = time.time()
        net = train_features(features, pool, device, on_log("features"))
        records["scene-features"] = {"settings": features.model_dump(mode="json"), "seconds": round(time.time() - t, 1),
                                     "probe_seconds_per_step": per_step}

    from semcom_cli.reconstruct.generative.store import save_weights

    def save(module, name):  # float16 weights, as the checkpoint keeps them
        save_weights(module, args.out / name)

    save(fast, "fast.safetensors")
    save(unet, "unet.safetensors")
    if net is not None:
        save(net, "features.safetensors")
    else:
        import shutil

        shutil.copyfile(args.init / "features.safetensors", args.out / "features.safetensors")
    records["device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    records["torch"] = torch.__version__
    records["total_seconds"] = round(time.time() - began, 1)
    (args.out / "settings.json").write_text(json.dumps(records, indent=1))
    log("done in", records["total_seconds"], "s")


if __name__ == "__main__":
    main()
