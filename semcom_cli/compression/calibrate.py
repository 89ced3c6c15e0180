"""Measurements on calibration inputs that decide what a recipe removes or keeps in float.

The inputs are what the receiver's LLM really sees: training-split questions about images whose
tokens crossed the AWGN channel (at 0 and 10 dB), and received sentences of the text task, spliced
into the instruction template. Two measures, both from one forward pass each:

* ``linear_sensitivity``: per linear layer, the relative error of its output when it runs
  dynamically quantised (int8 weights and activations) instead of in float32. Layers that see
  outlier activations (large values in a few channels) lose most; they stay in float.
* ``layer_redundancy``: per transformer layer, 1 − the mean cosine similarity of its input and
  output hidden states (how much the layer changes its input; ShortGPT's "block influence"). The
  least influential layers are the ones removed.
"""

from __future__ import annotations

import random

import torch

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.models.int8 import Int8Linear, quantize_rows
from semcom_cli.models.prompting import _positions, build_inputs

__all__ = ["calibration_inputs", "linear_sensitivity", "layer_redundancy", "run_hooked"]


@torch.no_grad()
def calibration_inputs(model, count: int = 48, seed: int = 0, batch: int = 16) -> list[tuple]:
    """Batches of (input embeddings, attention mask) as the LLM receives them (see the module)."""

    data = EasyVQA.load("train")
    llm = model.get_llm()
    rng = random.Random(seed)
    picks = rng.sample(range(len(data.questions)), count)
    seed_channel(seed)
    channel = make_channel("awgn")
    batches = []
    for start in range(0, count, batch):
        rows = picks[start:start + batch]
        snr = 0.0 if (start // batch) % 2 == 0 else 10.0
        images = data.batch_images([data.image_ids[i] for i in rows])
        tokens, mask = model.image_tokens(images)
        y, h = channel.send(model.encode(tokens, mask, "image"), snr)
        received = model.receive(y, h, snr, mask, "image")
        questions = [data.questions[i] for i in rows]
        batches.append(build_inputs(llm, ["vqa"] * len(rows), questions, received, mask)[:2])
    sentences = [data.sentences[i] for i in rng.sample(range(len(data.sentences)), min(batch, len(data.sentences)))]
    tokens, mask = model.text_tokens(sentences)
    y, h = channel.send(model.encode(tokens, mask, "text"), 10.0)
    received = model.receive(y, h, 10.0, mask, "text")
    batches.append(build_inputs(llm, ["text"] * len(sentences), [None] * len(sentences), received, mask)[:2])
    return batches


def _forward(network, embeds, mask, **kwargs):
    return network(inputs_embeds=embeds, attention_mask=mask, position_ids=_positions(mask), **kwargs)


@torch.no_grad()
def run_hooked(network, batches, hooks) -> None:
    """Run the calibration batches through ``network`` for what ``hooks`` (registered handles) record;
    the hooks are removed afterwards, whatever happens."""
    try:
        for embeds, mask in batches:
            _forward(network, embeds, mask, logits_to_keep=1)
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def linear_sensitivity(network: torch.nn.Module, batches) -> dict[str, float]:
    """name → relative output error of the linear layer under dynamic int8 (see the module)."""
    errors, hooks = {}, []

    def watch(name, layer):
        quantised = Int8Linear.from_rows(*quantize_rows(layer.weight), layer.bias)

        def hook(_, args, output):
            x = args[0]
            if name == "lm_head":  # the output layer runs on the last position only (logits_to_keep)
                x, output = x[:, -1:], output[:, -1:]
            err, ref = errors.get(name, (0.0, 0.0))
            errors[name] = (err + float((quantised(x) - output).pow(2).sum()), ref + float(output.pow(2).sum()))
        return hook

    for name, layer in network.named_modules():
        if isinstance(layer, torch.nn.Linear):
            hooks.append(layer.register_forward_hook(watch(name, layer)))
    run_hooked(network, batches, hooks)
    return {name: (err / max(ref, 1e-12)) ** 0.5 for name, (err, ref) in errors.items()}


@torch.no_grad()
def layer_redundancy(network: torch.nn.Module, batches) -> list[float]:
    """Per transformer layer: 1 − mean cosine similarity of its input and output states (see the module)."""
    total, count = None, 0
    for embeds, mask in batches:
        states = _forward(network, embeds, mask, output_hidden_states=True, logits_to_keep=1).hidden_states
        valid = mask.bool()
        influence = torch.stack([1 - torch.cosine_similarity(a[valid], b[valid], dim=-1).mean()
                                 for a, b in zip(states[:-1], states[1:])])
        total = influence * valid.sum() if total is None else total + influence * valid.sum()
        count += int(valid.sum())
    return (total / count).tolist()
