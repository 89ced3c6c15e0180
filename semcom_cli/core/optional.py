"""Optional heavy dependencies: each belongs to an extra of the ``semcom`` package, and a missing one is
refused in one line that names the extra to install (``make demo`` installs them all)."""

from __future__ import annotations

import importlib.util

from semcom_cli.core.errors import SemcomError

__all__ = ["EXTRAS", "require"]

# import name → (extra, what needs it)
EXTRAS = {
    "flwr": ("federated", "federated split fine-tuning (Flower)"),
    "ray": ("federated", "Flower's simulation engine (Ray)"),
    "faiss": ("retrieval", "knowledge bases (FAISS)"),
    "diffusers": ("generative", "the generative image decoder (diffusers)"),
    "pillow_heif": ("codecs", "the HEIF image codec (pillow-heif)"),
}


def require(module: str) -> None:
    """Refuse in one line when an optional dependency is not installed."""
    if importlib.util.find_spec(module) is None:
        extra, what = EXTRAS[module]
        raise SemcomError(f"{what} needs the '{extra}' extra: pip install 'semcom[{extra}]'")
