"""KAN layer used by the projector and the channel codec.

The parameters are those of a pykan ``KANLayer`` (the reference for what a KAN
computes: a residual SiLU base function with its scale plus a B-spline of order
k on the layer's grid with its scale, times a mask). The forward pass is
computed differently: the B-spline basis is evaluated once per input and the
rest is one matrix product, instead of pykan's [batch, out, in] intermediates,
and it takes any number of leading dimensions, e.g. [batch, tokens, features].
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KANLinear", "GRID_RANGE", "bspline_basis"]

# Inputs are layer-normalised before every KAN, so most of them fall on this grid.
GRID_RANGE = (-2.0, 2.0)


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """B-spline basis of order k (Cox-de Boor). x: [N, in], grid: [in, G + 2k + 1] → [N, in, G + k].

    Outside the extended grid every basis function is 0, as in pykan.
    """
    x = x[:, :, None]
    g = grid[None]
    basis = ((x >= g[:, :, :-1]) & (x < g[:, :, 1:])).to(x.dtype)
    for j in range(1, k + 1):
        left = (x - g[:, :, : -(j + 1)]) / (g[:, :, j:-1] - g[:, :, : -(j + 1)]) * basis[:, :, :-1]
        right = (g[:, :, j + 1 :] - x) / (g[:, :, j + 1 :] - g[:, :, 1:-j]) * basis[:, :, 1:]
        basis = torch.nan_to_num(left + right)  # a degenerate grid gives 0/0
    return basis


class KANLinear(nn.Module):
    """A KAN layer from ``in_dim`` to ``out_dim`` features. x: [..., in_dim] → [..., out_dim]."""

    def __init__(self, in_dim: int, out_dim: int, grid: int = 5, spline_order: int = 3):
        super().__init__()
        from kan.KANLayer import KANLayer  # pykan imports heavy plotting libraries

        self.in_dim, self.out_dim = in_dim, out_dim
        self.layer = KANLayer(
            in_dim,
            out_dim,
            num=grid,
            k=spline_order,
            grid_range=list(GRID_RANGE),
            save_plot_data=False,
            device="cpu",
        )
        # pykan fits its initial coefficients to random noise with a least-squares solve whose
        # last bits vary from run to run; draw them directly (same scale) so a seed fixes the bytes.
        with torch.no_grad():
            self.layer.coef.copy_((torch.rand_like(self.layer.coef) - 0.5) * 0.5 / grid)
        # pykan keeps the grid and mask as frozen Parameters; as buffers they stay frozen
        # whatever a training stage switches on, and are still saved with the weights.
        for name in ("grid", "mask"):
            value = getattr(self.layer, name).data
            delattr(self.layer, name)
            self.layer.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_dim)
        layer = self.layer
        basis = bspline_basis(x, layer.grid, layer.k)  # [N, in, K]
        # y[n, o] = Σ_i mask·(scale_base·silu(x) + scale_sp·Σ_k B[n, i, k]·coef[i, o, k])
        w_spline = (layer.coef * (layer.scale_sp * layer.mask)[:, :, None]).permute(0, 2, 1)
        y = layer.base_fun(x) @ (layer.scale_base * layer.mask) + basis.flatten(1) @ w_spline.reshape(-1, self.out_dim)
        return y.reshape(*lead, self.out_dim)
