"""The compressed LLM: built from the checkpoint's (merged) LLM by a recipe, saved, and loaded again.

On disk (``<checkpoint>/llm/``)::

    config.json          the Hugging Face config of what remains (layers, vocabulary size), plus
                         ``semcom``: the linear layers that compute in int8
    model.safetensors    its weights (int8 rows + scales where the recipe stores int8) and
                         ``kept_token_ids`` when the vocabulary was cut

Loading builds the network on the meta device and fills it from the file, so the float32 model is
never materialised: a compressed receiver's memory is what it keeps, not what it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from semcom_cli.core.errors import SemcomError
from semcom_cli.models.int8 import INT8_T_SUFFIX, SCALE_SUFFIX, Int8Linear, QuantisedInputs, unpack_state
from semcom_cli.models.llm import LLM, ready
from semcom_cli.models.vocab import PrunedTokenizer

__all__ = ["CompressedLLM", "save_compressed_llm", "load_compressed_llm", "linear_names", "EMBED", "HEAD", "KEPT"]

EMBED = "model.embed_tokens.weight"
HEAD = "lm_head.weight"
KEPT = "kept_token_ids"


@dataclass
class CompressedLLM:
    config: dict                   # Hugging Face config + "semcom" (int8 linears)
    state: dict[str, torch.Tensor]  # what model.safetensors holds


def linear_names(model: torch.nn.Module) -> list[str]:
    """The LLM's linear layers (attention and MLP projections of every layer, and the output layer)."""
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def save_compressed_llm(compressed: CompressedLLM, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(compressed.config, indent=2, sort_keys=True) + "\n")
    save_file(compressed.state, folder / "model.safetensors")


def _weight(weights, names: set, name: str):
    """(int8 weights transposed [in, out], scales) of a linear layer that computes in int8."""
    key = name + ".weight"
    if key + INT8_T_SUFFIX not in names or key + SCALE_SUFFIX not in names:
        raise SemcomError(f"no int8 weights for {name}")
    return weights.get_tensor(key + INT8_T_SUFFIX), weights.get_tensor(key + SCALE_SUFFIX)


def load_compressed_llm(folder: Path, tokenizer, model_id: str, sha256: str, device="cpu") -> LLM:
    """The LLM saved by ``save_compressed_llm`` (its tokenizer: the base model's, seen through the kept
    vocabulary when it was cut). One clear line for a damaged or foreign folder."""
    from transformers import AutoConfig, AutoModelForCausalLM  # heavy: transformers, when it is read

    try:
        config_dict = json.loads((folder / "config.json").read_text())
        semcom = config_dict.pop("semcom")
        config = AutoConfig.for_model(**config_dict)
        weights = safe_open(folder / "model.safetensors", framework="pt")
        names = set(weights.keys())
    except (OSError, ValueError, KeyError, TypeError, SafetensorError, RecursionError) as err:
        raise SemcomError(f"{folder}: not a compressed LLM ({str(err).splitlines()[0][:120]})") from None
    if KEPT in names:
        kept = weights.get_tensor(KEPT)
        if kept.numel() != config.vocab_size or int(kept.max()) >= len(tokenizer):
            raise SemcomError(f"{folder}: its kept vocabulary does not fit the base model's tokenizer")
        tokenizer = PrunedTokenizer(tokenizer, kept.tolist())
    elif config.vocab_size != len(tokenizer):
        raise SemcomError(f"{folder}: a vocabulary of {config.vocab_size}, the base tokenizer has {len(tokenizer)}")
    tied = bool(config.tie_word_embeddings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    int8 = set(semcom.get("int8_linears", []))
    int8_keys = {f"{n}.weight{s}" for n in int8 for s in (INT8_T_SUFFIX, SCALE_SUFFIX)}
    floats = unpack_state({k: weights.get_tensor(k) for k in names if k != KEPT and k not in int8_keys})
    result = model.load_state_dict(floats, strict=False, assign=True)
    del floats
    missing = [k for k in result.missing_keys if not (tied and k == HEAD) and k[: -len(".weight")] not in int8]
    if missing or result.unexpected_keys:
        raise SemcomError(f"{folder}: weights do not match its config (missing {missing[:2]}, "
                          f"unexpected {result.unexpected_keys[:2]})")
    shared = QuantisedInputs()  # consecutive layers reading one input quantise it once
    for name in sorted(int8):  # one layer at a time: the file's int8 rows are read, packed, and let go
        parent, _, child = name.rpartition(".")
        old = model.get_submodule(name)
        values_t, scale = _weight(weights, names, name)
        if tuple(values_t.shape) != (old.in_features, old.out_features):
            raise SemcomError(f"{folder}: {name} has shape {tuple(values_t.shape)}, the config builds "
                              f"{(old.in_features, old.out_features)}")
        bias = weights.get_tensor(name + ".bias") if name + ".bias" in names else None
        setattr(model.get_submodule(parent) if parent else model, child, Int8Linear(values_t, scale, bias, shared))
    if tied and HEAD not in {n + ".weight" for n in int8}:
        model.lm_head.weight = model.model.embed_tokens.weight
    # buffers computed at construction (rotary frequencies) were made on the meta device: make them again
    rotary = model.model.rotary_emb
    model.model.rotary_emb = type(rotary)(config=config)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise SemcomError(f"{folder}: nothing loaded for {left[:2]}")
    return ready(LLM(model, tokenizer, model_id, sha256), device)
