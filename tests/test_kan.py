"""semcom's KAN forward against pykan's own KANLayer on the same parameters."""

import pytest
import torch

from semcom_cli.kan import KANLinear


@pytest.fixture
def layer():
    torch.manual_seed(0)
    kan = KANLinear(6, 5, grid=5, spline_order=3)
    with torch.no_grad():  # non-trivial coefficients and scales, one connection masked off
        kan.layer.coef.normal_()
        kan.layer.scale_sp.uniform_(0.5, 1.5)
        kan.layer.mask[2, 3] = 0.0
    return kan


@pytest.mark.parametrize("spread", [0.5, 4.0])  # inside the grid; far outside it
def test_forward_matches_pykan(layer, spread):
    x = torch.randn(64, 6) * spread
    assert torch.allclose(layer(x), layer.layer(x)[0], atol=1e-5)


def test_gradients_match_pykan(layer):
    x = torch.randn(32, 6, requires_grad=True)
    ours = torch.autograd.grad(layer(x).pow(2).sum(), [x, layer.layer.coef, layer.layer.scale_base])
    ref = torch.autograd.grad(layer.layer(x)[0].pow(2).sum(), [x, layer.layer.coef, layer.layer.scale_base])
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=1e-4)


def test_leading_dimensions(layer):
    x = torch.randn(2, 3, 6)
    assert torch.allclose(layer(x), layer(x.reshape(6, 6)).reshape(2, 3, 5))


def test_grid_and_mask_stay_frozen(layer):
    layer.requires_grad_(True)
    names = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert not any(n.endswith(("grid", "mask")) for n in names)
    assert {"layer.grid", "layer.mask"} <= set(layer.state_dict())
