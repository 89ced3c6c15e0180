"""Symmetric int8 storage of weight matrices, one scale per output row, and the layers built from it.

A row's scale is its largest magnitude / 127, so every weight is stored within half a step of its
value. The same stored rows serve two uses: ``Int8Linear`` computes with them (int8 weights, and
activations quantised per token), and ``dequantize_rows`` gives the float matrix back for layers
kept in float32 (a smaller file only).
"""

from __future__ import annotations

import torch

__all__ = ["quantize_rows", "dequantize_rows", "pack_state", "unpack_state", "INT8_SUFFIX",
           "SCALE_SUFFIX", "INT8_T_SUFFIX", "Int8Linear", "QuantisedInputs"]

INT8_SUFFIX = ".int8"
INT8_T_SUFFIX = ".int8_t"  # int8 weights of a layer that computes in int8, stored transposed
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


class Int8Linear(torch.nn.Module):
    """A linear layer computing in int8: int8 weights (a scale per output row) times activations
    quantised per call with a scale per token (row), accumulated in int32 by ``torch._int_mm``.

    Per-token scales keep a token with large activations from costing every other token its
    precision, which one scale per call (PyTorch's dynamically quantised ``Linear``) does; and the
    int8 weights are held once, where fbgemm's packed layer also keeps the original. ``torch._int_mm``
    is the int8 matrix product torchao's dynamic int8 layers use; torchao itself stores its layers as
    tensor subclasses that only pickle saves, which semcom's files do not use."""

    def __init__(self, values_t: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                 inputs: "QuantisedInputs | None" = None):
        """``values_t``: the int8 weights transposed, [in, out] and row-major (the layout the product
        reads fastest, and the one compressed files store, so a loaded layer holds the file's bytes)."""
        super().__init__()
        self.in_features, self.out_features = values_t.shape
        self.inputs = inputs or QuantisedInputs()
        self.register_buffer("weight_t", values_t)
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", None if bias is None else bias.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quantised, step = self.inputs.quantise(x)
        y = torch._int_mm(quantised, self.weight_t).float().mul_(step).mul_(self.scale)
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    @classmethod
    def from_rows(cls, values: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                  inputs: "QuantisedInputs | None" = None) -> "Int8Linear":
        """From int8 rows [out, in] (``quantize_rows``)."""
        return cls(values.t().contiguous(), scale, bias, inputs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights and activations"


class QuantisedInputs:
    """The last input quantised, shared by layers that read the same tensor (an attention's q, k and v
    projections, an MLP's gate and up): the second and third reuse the first's int8 rows. The tensor's
    identity and version (bumped by any in-place change) decide a reuse."""

    def __init__(self):
        self._key = None
        self._value = None

    def quantise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (x, x._version)
        if self._key is not None and self._key[0] is x and self._key[1] == x._version:
            return self._value
        rows = x.reshape(-1, x.shape[-1]).float()
        # the largest magnitude per row as max(max, −min): two plain reductions, far faster here than abs().amax()
        step = torch.maximum(rows.amax(1, keepdim=True), rows.amin(1, keepdim=True).neg_()).clamp_min_(1e-8)
        step.div_(127)
        self._key, self._value = key, ((rows * step.reciprocal()).round_().to(torch.int8), step)
        return self._value


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
