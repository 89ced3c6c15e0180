import math

import pytest
import torch

from semcom_cli.channel import apply_channel, check_snr, effective_snr_db, mmse_equalize, noise_variance, seed_channel
from semcom_cli.errors import SemcomError


def _unit_symbols(b=4000, n=16):
    g = torch.Generator().manual_seed(0)
    phase = torch.rand(b, n, generator=g) * 2 * math.pi
    return torch.polar(torch.ones(b, n), phase).to(torch.complex64)  # |x|² = 1 exactly


class TestAWGN:
    @pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0])
    def test_noise_variance_matches_snr(self, snr_db):
        seed_channel(1)
        x = _unit_symbols()
        y, h = apply_channel(x, snr_db, "awgn")
        noise = y - x
        expected = 10 ** (-snr_db / 10)
        assert torch.all(h == 1)
        assert abs(noise.abs().pow(2).mean().item() / expected - 1) < 0.03
        # N0/2 per real dimension
        assert abs(noise.real.var().item() / (expected / 2) - 1) < 0.05

    def test_seeded_noise_repeats(self):
        x = _unit_symbols(8, 4)
        seed_channel(7)
        a, _ = apply_channel(x, 0.0, "awgn")
        seed_channel(7)
        b, _ = apply_channel(x, 0.0, "awgn")
        seed_channel(8)
        c, _ = apply_channel(x, 0.0, "awgn")
        assert torch.equal(a, b) and not torch.equal(a, c)


class TestFading:
    def test_rayleigh_unit_average_gain_one_per_packet(self):
        seed_channel(2)
        x = _unit_symbols(20000, 4)
        y, h = apply_channel(x, 60.0, "rayleigh")
        assert abs(h.abs().pow(2).mean().item() - 1) < 0.03
        assert abs(h.mean().abs().item()) < 0.03  # no line-of-sight part
        # block fading: the same h over the whole packet (noise is negligible at 60 dB)
        assert torch.allclose(y, h[:, None] * x, atol=5e-3)

    def test_rician_has_line_of_sight(self):
        seed_channel(3)
        k = 3.0
        _, h = apply_channel(_unit_symbols(20000, 1), 10.0, "rician", rician_k=k)
        assert abs(h.abs().pow(2).mean().item() - 1) < 0.03
        assert abs(h.mean().real.item() - math.sqrt(k / (k + 1))) < 0.02

    def test_none_is_identity(self):
        x = _unit_symbols(3, 5)
        y, h = apply_channel(x, -10.0, "none")
        assert torch.equal(y, x) and torch.all(h == 1)


def test_mmse_equalizer_inverts_gain_at_high_snr():
    x = _unit_symbols(5, 6)
    h = torch.tensor([0.3 + 0.4j, -1j, 2.0, 0.5, 1 + 1j], dtype=torch.complex64)
    x_hat = mmse_equalize(h[:, None] * x, h, 80.0)
    assert torch.allclose(x_hat, x, atol=1e-4)
    assert torch.allclose(effective_snr_db(h, 10.0), 10.0 + 20 * torch.log10(h.abs()), atol=1e-4)


def test_noise_variance_convention():
    assert torch.isclose(noise_variance(10.0), torch.tensor(0.1))


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "abc", None])
def test_snr_must_be_finite(bad):
    with pytest.raises(SemcomError, match="finite number of dB"):
        check_snr(bad)


def test_unknown_channel():
    with pytest.raises(SemcomError, match="unknown channel 'rayliegh'"):
        apply_channel(_unit_symbols(1, 1), 0.0, "rayliegh")
