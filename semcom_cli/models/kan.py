"""KAN layer used by the projector and the channel codec.

It computes what pykan's ``KANLayer`` computes (pykan is the reference, kept in
the tests): for every input i and output o,

    φ_io(x) = mask_io · (scale_base_io · silu(x) + scale_sp_io · Σ_k coef_iok · B_k(x; grid_i))

and y_o = Σ_i φ_io(x_i), with B the B-splines of order k on input i's grid
(0 outside the extended grid, as in pykan). The parameters and buffers have
pykan's names and shapes, so weights move both ways (``from_pykan``,
``to_pykan``). What differs is the order of work: pykan builds
[batch, out, in] intermediates; here the basis is evaluated once per input
([batch, in, G + k]) and the rest is one matrix product. That is what makes it
fast enough to sit on every training and encoding path.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["KANLinear", "GRID_RANGE", "bspline_basis", "extend_grid"]

# Inputs are layer-normalised before every KAN, so most of them fall on this grid.
GRID_RANGE = (-2.0, 2.0)


def extend_grid(grid: torch.Tensor, k: int) -> torch.Tensor:
    """Add k knots on each side of every row of grid [in, G + 1], at the rows' mean spacing (as pykan)."""
    h = (grid[:, -1:] - grid[:, :1]) / (grid.shape[1] - 1)
    steps = torch.arange(1, k + 1, dtype=grid.dtype, device=grid.device)
    return torch.cat([grid[:, :1] - h * steps.flip(0), grid, grid[:, -1:] + h * steps], dim=1)


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, with 0 where a repeated knot makes den 0 (that basis function is 0 there)."""
    return torch.nan_to_num(num / den, nan=0.0, posinf=0.0, neginf=0.0)


def _local_bases(x: torch.Tensor, grid: torch.Tensor, k: int):
    """The k + 1 B-splines of order k that can be non-zero at each sample, by de Boor's triangle.

    A B-spline of order k is non-zero on k + 1 knot intervals only, so at each x just
    k + 1 of the G + k basis functions need computing, from the 2k knots around x;
    this does about a third of the elementwise work of running Cox-de Boor over the
    whole basis, and the derivative needs only these too.

    x: [N, in], grid: [in, M]. Returns, for every input i and sample n (as [in, ·, N]):
    values [in, k + 1, N] of functions first..first + k; first [in, 1, N] (= interval − k);
    the order-(k − 1) values [in, k, N] of functions first + 1..first + k (None for k = 0),
    and their knot spans t[m + k] − t[m] [in, k, N]. Samples outside the extended grid get 0.
    """
    samples = x.T.contiguous()  # [in, N]: samples along the contiguous axis
    n_knots = grid.shape[1]
    interval = torch.searchsorted(grid.contiguous(), samples, right=True) - 1  # t[interval] ≤ x < t[interval + 1]
    inside = ((interval >= 0) & (interval < n_knots - 1)).to(x.dtype)[:, None]
    interval = interval.clamp(0, n_knots - 2)
    # knots t[interval + 1 − k] … t[interval + k]; the grid is padded so every index exists
    padded = torch.cat([grid[:, :1].expand(-1, k), grid, grid[:, -1:].expand(-1, k)], dim=1)
    offsets = torch.arange(1, 2 * k + 1, device=x.device)[None, :, None]  # in padded coordinates
    knots = _gather_knots(padded, interval, offsets)  # [in, 2k, N]
    to_left = samples[:, None] - knots[:, :k]  # x − t[interval + 1 − k + q], q = 0 … k − 1
    to_right = knots[:, k:] - samples[:, None]  # t[interval + 1 + r] − x, r = 0 … k − 1
    values = torch.ones_like(samples)[:, None]  # order 0: the one interval holding x
    lower = None
    for j in range(1, k + 1):
        lower = values
        right, left = to_right[:, :j], to_left[:, k - j :]
        scaled = _safe_divide(values, right + left)  # B_{m,j−1} / (t[m + j] − t[m])
        values = F.pad(right * scaled, (0, 0, 0, 1)) + F.pad(left * scaled, (0, 0, 1, 0))
    spans = knots[:, k:] - knots[:, :k]  # t[m + k] − t[m] for the order-(k − 1) functions
    return values * inside, interval[:, None] - k, None if lower is None else lower * inside, spans


def _gather_knots(padded: torch.Tensor, interval: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """padded[i, interval[i, n] + offsets[o]] as [in, len(offsets), N]."""
    index = interval[:, None, :] + offsets  # [in, O, N]
    return torch.gather(padded, 1, index.flatten(1)).view(index.shape)


class _BSplineBasis(torch.autograd.Function):
    """The dense basis [in, G + k, N] (zeros placed around the k + 1 local values), with the
    derivative in closed form, dB_{m,k} = k·(B_{m,k−1}/(t[m+k] − t[m]) − B_{m+1,k−1}/(t[m+k+1] − t[m+1])),
    rather than autograd retracing the recursion."""

    @staticmethod
    def forward(ctx, x, grid, k):
        values, first, lower, spans = _local_bases(x, grid, k)
        n_basis = grid.shape[1] - 1 - k
        index = first + torch.arange(k + 1, device=x.device)[None, :, None]  # [in, k + 1, N]
        valid = (index >= 0) & (index < n_basis)  # near the grid's ends some functions do not exist
        index = index.clamp(0, n_basis - 1)
        basis = x.new_zeros(x.shape[1], n_basis, x.shape[0])
        basis.scatter_add_(1, index, values * valid)  # clamped duplicates add 0
        ctx.k = k
        ctx.save_for_backward(index, valid, lower, spans)
        return basis

    @staticmethod
    def backward(ctx, grad_basis):
        index, valid, lower, spans = ctx.saved_tensors
        k = ctx.k
        if not ctx.needs_input_grad[0] or k == 0:
            return None, None, None
        scaled = _safe_divide(k * lower, spans)
        grad_local = torch.gather(grad_basis, 1, index) * valid  # [in, k + 1, N]
        # dB_r = scaled_{r−1} − scaled_r for the k + 1 local functions (scaled_{−1} = scaled_k = 0)
        grad_x = (grad_local[:, 1:] * scaled).sum(1) - (grad_local[:, :-1] * scaled).sum(1)
        return grad_x.T, None, None


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, k: int) -> torch.Tensor:
    """B-spline basis of order k. x: [N, in], grid: [in, G + 2k + 1] → [N, in, G + k].

    Outside the extended grid every basis function is 0, as in pykan. Differentiable in x.
    """
    return _BSplineBasis.apply(x, grid, k).permute(2, 0, 1)


class KANLinear(nn.Module):
    """A KAN layer from ``in_dim`` to ``out_dim`` features. x: [..., in_dim] → [..., out_dim].

    Initialised as pykan initialises a ``KANLayer`` (same scales), except that the
    starting coefficients are drawn directly rather than fitted to noise with a
    least-squares solve, whose last bits vary from run to run: a seed fixes the bytes.
    """

    def __init__(self, in_dim: int, out_dim: int, grid: int = 5, spline_order: int = 3,
                 grid_range: tuple[float, float] = GRID_RANGE, grid_eps: float = 0.02, noise_scale: float = 0.5):
        super().__init__()
        self.in_dim, self.out_dim, self.num, self.k = in_dim, out_dim, grid, spline_order
        self.grid_eps = grid_eps
        knots = torch.linspace(grid_range[0], grid_range[1], grid + 1).expand(in_dim, grid + 1)
        # grid and mask are frozen in pykan too; as buffers they stay frozen whatever a
        # training stage switches on, and are still saved with the weights.
        self.register_buffer("grid", extend_grid(knots, spline_order).contiguous())
        self.register_buffer("mask", torch.ones(in_dim, out_dim))
        self.coef = nn.Parameter((torch.rand(in_dim, out_dim, grid + spline_order) - 0.5) * noise_scale / grid)
        self.scale_base = nn.Parameter((torch.rand(in_dim, out_dim) * 2 - 1) / math.sqrt(in_dim))
        self.scale_sp = nn.Parameter(torch.ones(in_dim, out_dim) / math.sqrt(in_dim))

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, grid={self.num}, spline_order={self.k}"

    def spline_weight(self) -> torch.Tensor:
        """Spline coefficients with their scale and mask folded in, as a [in·(G + k), out] matrix."""
        w = self.coef * (self.scale_sp * self.mask)[:, :, None]  # [in, out, K]
        return w.transpose(1, 2).reshape(-1, self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_dim)
        basis = _BSplineBasis.apply(x, self.grid, self.k)  # [in, K, N]
        y = F.silu(x) @ (self.scale_base * self.mask) + basis.flatten(0, 1).T @ self.spline_weight()
        return y.reshape(*lead, self.out_dim)

    @torch.no_grad()
    def update_grid_from_samples(self, x: torch.Tensor, mode: str = "sample") -> None:
        """Move the grid to where the samples x [..., in_dim] lie, keeping the splines' shape (pykan's rule).

        The new knots mix sample quantiles with a uniform grid over the samples' range
        (weight ``grid_eps`` on the uniform one); the coefficients are then refitted by
        least squares so each spline matches its old values at the samples (mode
        "sample") or on a grid twice as fine (mode "grid"). pykan solves one problem per
        (input, output) pair; the fit is linear in the old curve, so here each input's
        basis change is solved once and applied to all its outputs.
        """
        if mode not in ("sample", "grid"):
            raise ValueError(f"mode must be 'sample' or 'grid', not {mode!r}")
        x_sorted = torch.sort(x.reshape(-1, self.in_dim), dim=0).values

        def knots(n_intervals: int) -> torch.Tensor:
            batch = x_sorted.shape[0]
            picks = [int(batch / n_intervals * i) for i in range(n_intervals)] + [-1]
            adaptive = x_sorted[picks].T  # [in, n + 1] sample quantiles
            step = (adaptive[:, -1:] - adaptive[:, :1]) / n_intervals
            uniform = adaptive[:, :1] + step * torch.arange(n_intervals + 1, dtype=x.dtype, device=x.device)
            return self.grid_eps * uniform + (1 - self.grid_eps) * adaptive

        samples = knots(2 * self.num).T if mode == "grid" else x_sorted
        old_basis = bspline_basis(samples, self.grid, self.k).transpose(0, 1)  # [in, S, K]
        new_grid = extend_grid(knots(self.num), self.k)
        new_basis = bspline_basis(samples, new_grid, self.k).transpose(0, 1)
        change = torch.linalg.lstsq(new_basis, old_basis).solution  # [in, K_new, K_old]
        self.coef.copy_(torch.einsum("ink,iok->ion", change, self.coef))
        self.grid.copy_(new_grid)

    @classmethod
    def from_pykan(cls, layer) -> "KANLinear":
        """A KANLinear holding a copy of a pykan ``KANLayer``'s weights (SiLU base function assumed)."""
        if not isinstance(layer.base_fun, nn.SiLU):
            raise ValueError(f"only a SiLU base function converts, not {layer.base_fun!r}")
        kan = cls(layer.in_dim, layer.out_dim, layer.num, layer.k, grid_eps=layer.grid_eps)
        with torch.no_grad():
            for name in ("grid", "mask", "coef", "scale_base", "scale_sp"):
                getattr(kan, name).copy_(getattr(layer, name))
        return kan

    def to_pykan(self):
        """A pykan ``KANLayer`` holding a copy of these weights."""
        from kan.KANLayer import KANLayer  # heavy: pykan imports plotting libraries; only when asked

        layer = KANLayer(self.in_dim, self.out_dim, num=self.num, k=self.k, grid_eps=self.grid_eps,
                         save_plot_data=False, device="cpu")
        with torch.no_grad():
            for name in ("grid", "mask", "coef", "scale_base", "scale_sp"):
                getattr(layer, name).data = getattr(self, name).detach().clone()
        return layer
