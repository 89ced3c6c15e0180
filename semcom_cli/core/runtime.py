"""What a run records and runs on: library versions and the torch device."""

from __future__ import annotations

import platform
from importlib.metadata import version

from semcom_cli import __version__
from semcom_cli.core.errors import SemcomError

__all__ = ["versions", "resolve_device"]


def versions() -> dict[str, str]:
    """Versions of semcom and the libraries its results depend on (recorded with every result)."""

    import peft  # heavy: peft, when an adapter is used
    import torch  # heavy: core imports without torch
    import transformers  # heavy: transformers, when an LLM loads

    out = {"semcom": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
           "peft": peft.__version__, "python": platform.python_version()}
    for package in ("sionna-no-rt", "pykan", "sacrebleu", "torchmetrics", "pillow", "pillow-heif", "faiss-cpu", "flwr",
                    "diffusers"):
        try:
            out[package] = version(package)
        except Exception:  # a version we cannot read is left out, not guessed
            pass
    return out


def resolve_device(name: str):
    """``cpu``, ``cuda`` or ``cuda:N`` → a torch device that exists here (one line if it does not)."""
    import torch  # heavy: core imports without torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise SemcomError(f"unknown device '{name}' (cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SemcomError(f"device '{name}' asked for, but no CUDA GPU is available here (use --device cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SemcomError(f"device '{name}' asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise SemcomError(f"unknown device '{name}' (cpu, cuda or cuda:N)")
    return device
