"""semcom's KAN layer against pykan's own KANLayer (the reference) on the same weights."""

import pytest
import torch
from kan.KANLayer import KANLayer

from semcom_cli.models.kan import KANLinear, bspline_basis


@pytest.fixture
def reference():
    """A pykan layer with non-trivial coefficients and scales and one connection masked off."""
    torch.manual_seed(0)
    layer = KANLayer(6, 5, num=5, k=3, grid_range=[-2, 2], save_plot_data=False)
    with torch.no_grad():
        layer.coef.normal_()
        layer.scale_sp.uniform_(0.5, 1.5)
        layer.mask[2, 3] = 0.0
    return layer


@pytest.fixture
def ours(reference):
    return KANLinear.from_pykan(reference)


@pytest.mark.parametrize("spread", [0.5, 4.0])  # inside the grid; far outside it
def test_forward_matches_pykan(reference, ours, spread):
    x = torch.randn(64, 6) * spread
    assert (ours(x) - reference(x)[0]).abs().max() <= 1e-5


def test_masked_connection_contributes_nothing(ours):
    x = torch.zeros(1, 6)
    y0 = ours(x)
    x[0, 2] = 1.3  # input 2 only reaches output 3 through the masked connection
    assert ours(x)[0, 3] == y0[0, 3]
    assert ours(x)[0, 0] != y0[0, 0]


def test_gradients_match_pykan(reference, ours):
    x = torch.randn(32, 6, requires_grad=True)
    names = ("coef", "scale_base", "scale_sp")
    got = torch.autograd.grad(ours(x).pow(2).sum(), [x] + [getattr(ours, n) for n in names])
    want = torch.autograd.grad(reference(x)[0].pow(2).sum(), [x] + [getattr(reference, n) for n in names])
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-4)


def test_leading_dimensions(ours):
    x = torch.randn(2, 3, 6)
    assert torch.allclose(ours(x), ours(x.reshape(6, 6)).reshape(2, 3, 5))


@pytest.mark.parametrize("mode", ["sample", "grid"])
def test_grid_update_matches_pykan(reference, ours, mode):
    samples = torch.randn(200, 6) * 3 + 0.5  # wider than the initial grid and off-centre
    reference.update_grid_from_samples(samples, mode=mode)
    ours.update_grid_from_samples(samples, mode=mode)
    assert torch.allclose(ours.grid, reference.grid, atol=1e-6)
    assert torch.allclose(ours.coef, reference.coef, atol=1e-3)
    x = torch.randn(64, 6) * 3
    assert (ours(x) - reference(x)[0]).abs().max() <= 1e-3


def test_grid_update_keeps_a_cubic_exactly(ours):
    # B-splines of order 3 reproduce a cubic on any grid, so moving the grid must not change it
    dense = torch.linspace(-2, 2, 400)[:, None].expand(400, 6)
    basis = bspline_basis(dense, ours.grid, 3).transpose(0, 1)  # [in, S, K]
    cubic = (dense**3 - dense).T[..., None]  # [in, S, 1]
    with torch.no_grad():
        ours.coef.copy_(torch.linalg.lstsq(basis, cubic).solution.permute(0, 2, 1).expand_as(ours.coef))
    samples = (torch.randn(500, 6) * 0.7).clamp(-1.9, 1.9)
    before = ours(samples)
    ours.update_grid_from_samples(samples)
    assert ours.grid[:, 3].max() > -1.95  # the grid moved in to where the samples are
    assert (ours(samples) - before).abs().max() < 1e-3


def test_round_trip_through_pykan(ours):
    back = KANLinear.from_pykan(ours.to_pykan())
    for name, value in ours.state_dict().items():
        assert torch.equal(value, back.state_dict()[name]), name
    x = torch.randn(16, 6) * 3
    assert (ours.to_pykan()(x)[0] - ours(x)).abs().max() <= 1e-5


def test_only_silu_base_functions_convert(reference):
    reference.base_fun = torch.nn.Tanh()
    with pytest.raises(ValueError, match="SiLU"):
        KANLinear.from_pykan(reference)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = KANLinear(4, 3).state_dict()
    torch.manual_seed(3)
    b = KANLinear(4, 3).state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_grid_and_mask_stay_frozen(ours):
    ours.requires_grad_(True)
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable == {"coef", "scale_base", "scale_sp"}
    assert {"grid", "mask"} <= set(ours.state_dict())


def test_benchmark_runs_and_reports_equivalence(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "bench_kan.py"
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(script), "--shapes", "64x4x8", "--repeats", "2",
                          "--pykan-repeats", "1", "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    row = json.loads(out.read_text())["rows"][0]
    assert row["shape"] == "64x4->8"
    assert max(row["max_abs_diff"].values()) <= 1e-5
    assert row["semcom_params"] == row["pykan_params"] and abs(row["mlp_params"] - row["semcom_params"]) < 20
    assert all(row[f"{v}_s"] > 0 for v in ("pykan", "semcom", "mlp"))
