"""Symmetric int8 storage of weight matrices, one scale per output row, and the layers built from it.

A row's scale is its largest magnitude / 127, so every weight is stored within half a step of its
value. The same stored rows serve two uses: ``dynamic_linear`` computes with them (PyTorch's
dynamically quantised ``Linear``: int8 weights, activations quantised per call by fbgemm), and
``dequantize_rows`` gives the float matrix back for layers kept in float32 (a smaller file only).
"""

from __future__ import annotations

import warnings

import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

__all__ = ["quantize_rows", "dequantize_rows", "dynamic_linear", "pack_state", "unpack_state", "INT8_SUFFIX",
           "SCALE_SUFFIX"]

INT8_SUFFIX = ".int8"
SCALE_SUFFIX = ".scale"
SMALLEST = 1024  # tensors with fewer elements are kept as they are: their scales would cost more than they save


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [out, ...] → int8 values of its shape and a float32 scale per row [out]."""
    rows = weight.detach().float().reshape(weight.shape[0], -1)
    scale = (rows.abs().amax(1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
    values = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return values.reshape(weight.shape), scale


def dequantize_rows(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (values.float().reshape(values.shape[0], -1) * scale[:, None]).reshape(values.shape)


def dynamic_linear(values: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> DynamicInt8Linear:
    """A dynamically quantised Linear whose int8 weights are exactly ``values`` × ``scale`` (per row)."""
    out_features, in_features = values.shape
    with warnings.catch_warnings():  # torch marks its quantised tensors deprecated (for torchao); they still run
        warnings.simplefilter("ignore", UserWarning)
        weight = torch._make_per_channel_quantized_tensor(values, scale.double(),
                                                          torch.zeros(out_features, dtype=torch.long), 0)
    layer = DynamicInt8Linear(in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
    layer.set_weight_bias(weight, bias)
    return layer


def pack_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with its float matrices stored as int8 rows + scales (``name.int8``, ``name.scale``)."""
    packed = {}
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dim() >= 2 and tensor.numel() >= SMALLEST:
            packed[name + INT8_SUFFIX], packed[name + SCALE_SUFFIX] = quantize_rows(tensor)
        else:
            packed[name] = tensor
    return packed


def unpack_state(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float state dict a ``pack_state`` result stands for (int8 rows dequantised)."""
    state = {}
    for name, tensor in packed.items():
        if name.endswith(INT8_SUFFIX):
            base = name[: -len(INT8_SUFFIX)]
            state[base] = dequantize_rows(tensor, packed[base + SCALE_SUFFIX])
        elif not name.endswith(SCALE_SUFFIX):
            state[name] = tensor
    return state
