"""Activation smoothing before int8 (SmoothQuant, Xiao et al. 2023), folded where it is exact.

A few channels of a linear layer's input carry values far larger than the rest; quantising a row of
activations to int8 with one scale then leaves the others a handful of levels. Dividing input
channel j by s_j and multiplying the layer's column j by s_j computes the same function, and the
division folds into whatever made the input, so no operation is added:

* the MLP's down projection: its input silu(gate(x)) · up(x) is linear in up(x), so into the up
  projection's row j;
* the attention's q, k, v projections and the MLP's gate and up projections: their input is an
  RMSNorm's output, so into the norm's weight j.

s_j = max|X_j|^α / max|W_j|^(1−α) (α = 0.5; W: every layer reading that input) evens out the
activations' and the weights' ranges, so both quantise well. The float32 model computes the same
function after smoothing (up to rounding); only its int8 versions change.
"""

from __future__ import annotations

import torch

from semcom_cli.compression.calibrate import run_hooked

__all__ = ["smooth_for_int8"]


def _input_peaks(network, modules, batches) -> dict:
    """Per module: the largest magnitude of each input channel over the calibration inputs."""
    peaks, hooks = {}, []

    def watch(module):
        def hook(_, args):
            peak = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0)
            peaks[module] = torch.maximum(peaks[module], peak) if module in peaks else peak
        return hook

    for module in modules:
        hooks.append(module.register_forward_pre_hook(watch(module)))
    run_hooked(network, batches, hooks)
    return peaks


def _scales(activation_peak, readers, alpha):
    weight_peak = torch.stack([r.weight.abs().amax(0) for r in readers]).amax(0).clamp_min(1e-5)
    return (activation_peak.clamp_min(1e-5).pow(alpha) / weight_peak.pow(1 - alpha)).clamp_min(1e-5)


@torch.no_grad()
def smooth_for_int8(network: torch.nn.Module, batches, alpha: float = 0.5) -> int:
    """Fold smoothing scales into every decoder layer (see the module), in place; returns how many inputs."""
    layers = [m for m in network.modules() if all(hasattr(m, p) for p in ("self_attn", "mlp", "input_layernorm",
                                                                          "post_attention_layernorm"))]
    sites = []  # (module whose input is measured, readers of that input, how to fold 1/s into its source)
    for layer in layers:
        attn, mlp = layer.self_attn, layer.mlp
        sites.append((attn.q_proj, [attn.q_proj, attn.k_proj, attn.v_proj], layer.input_layernorm.weight, None))
        sites.append((mlp.gate_proj, [mlp.gate_proj, mlp.up_proj], layer.post_attention_layernorm.weight, None))
        sites.append((mlp.down_proj, [mlp.down_proj], mlp.up_proj.weight, mlp.up_proj.bias))
    peaks = _input_peaks(network, [s[0] for s in sites], batches)
    for probe, readers, source, source_bias in sites:
        scale = _scales(peaks[probe], readers, alpha)
        for reader in readers:
            reader.weight.mul_(scale[None, :])
        source.div_(scale if source.dim() == 1 else scale[:, None])
        if source_bias is not None:
            source_bias.div_(scale)
    return len(sites)
