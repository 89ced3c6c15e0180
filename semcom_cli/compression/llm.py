"""Compressing the receiver's LLM: a recipe's storage, compute and vocabulary applied to a plain causal LM.

The result is saved and read back by :mod:`semcom_cli.models.compressed` (its file format).
"""

from __future__ import annotations

import torch

from semcom_cli.compression.recipe import Recipe
from semcom_cli.data.texts import task_texts
from semcom_cli.models.compressed import EMBED, HEAD, KEPT, CompressedLLM, linear_names
from semcom_cli.models.int8 import INT8_SUFFIX, INT8_T_SUFFIX, SCALE_SUFFIX, pack_state, quantize_rows
from semcom_cli.models.llm import LLM
from semcom_cli.models.vocab import kept_token_ids

__all__ = ["compress_llm"]


def compress_llm(llm: LLM, recipe: Recipe, float_linears: list[str]) -> CompressedLLM:
    """Apply ``recipe``'s storage, compute and vocabulary to a plain (LoRA-merged) causal LM, already
    without the layers it removes (:func:`.recover.without_layers`). ``float_linears``: linear layers
    kept in float compute."""
    model = llm.model
    config = model.config.to_dict()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tied = bool(config.get("tie_word_embeddings"))
    if tied:
        state.pop(HEAD, None)  # the same tensor as the embedding
    if recipe.vocab is not None:
        kept = kept_token_ids(llm.tokenizer, task_texts(), recipe.vocab)
        index = torch.tensor(kept)
        state[EMBED] = state[EMBED][index].clone()
        if HEAD in state:
            state[HEAD] = state[HEAD][index].clone()
        config["vocab_size"] = len(kept)
        new = {old: i for i, old in enumerate(kept)}
        for key in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
            if isinstance(config.get(key), int):
                config[key] = new.get(config[key])
        state[KEPT] = index
    int8 = []
    if recipe.compute == "int8":
        int8 = sorted(n for n in linear_names(model) if n not in set(float_linears))
    if recipe.weights == "int8":
        state = pack_state(state)
        if tied and HEAD in int8 and EMBED + INT8_SUFFIX not in state:  # a tiny embedding left in float
            state[EMBED + INT8_SUFFIX], state[EMBED + SCALE_SUFFIX] = quantize_rows(state.pop(EMBED))
        for name in int8:  # layers that compute in int8 keep their weights transposed, as they read them
            key = name + ".weight"
            source = EMBED if key == HEAD and tied else key
            state[key + INT8_T_SUFFIX] = state[source + INT8_SUFFIX].t().contiguous()
            state[key + SCALE_SUFFIX] = state[source + SCALE_SUFFIX].clone()
            if source == key:
                del state[key + INT8_SUFFIX]
    config["semcom"] = {"int8_linears": int8, "recipe": recipe.as_dict()}
    return CompressedLLM(config, {k: v.contiguous() for k, v in state.items()})
