import math

import pytest
import torch

from semcom_cli.channel import (
    check_snr,
    effective_snr_db,
    gain_from_real,
    gain_to_real,
    make_channel,
    mmse_equalize,
    noise_variance,
    seed_channel,
)
from semcom_cli.core.errors import SemcomError


def apply_channel(x, snr_db, name, rician_k=3.0):
    return make_channel(name, {"rician_k": rician_k})(x, snr_db)


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

    def test_rayleigh_iid_fades_every_symbol_on_its_own(self):
        seed_channel(4)
        x = torch.ones(2000, 2, 4, 2) / 2 ** 0.5  # [B, T, m, 2]
        channel = make_channel("rayleigh-iid")
        assert channel.per_symbol and not make_channel("rayleigh").per_symbol
        y, h = channel.send(x, 60.0)
        assert h.shape == (2000, 2, 4) and abs(h.abs().pow(2).mean().item() - 1) < 0.03
        assert abs(torch.corrcoef(torch.stack([h[:, 0, 0].abs(), h[:, 0, 1].abs()]))[0, 1].item()) < 0.08
        assert torch.allclose(torch.view_as_complex(y.contiguous()), h * torch.view_as_complex(x), atol=5e-3)
        # the equaliser undoes each symbol's gain; the decoder is told each token's mean |h|²·SNR
        from semcom_cli.channel import equalize_symbols

        x_hat, snr = equalize_symbols(y, h, 60.0)
        strong = h.abs().pow(2) > 0.01  # a symbol in a deep fade is shrunk toward 0 by MMSE, as it should
        assert torch.allclose(x_hat[strong], x[strong], atol=0.02) and snr.shape == (2000, 2)
        expected = 60.0 + 10 * torch.log10(h.abs().pow(2).mean(-1))
        assert torch.allclose(snr, expected, atol=1e-3)

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


def test_rician_k_must_be_finite_and_not_negative():
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(SemcomError, match="K-factor"):
            make_channel("rician", {"rician_k": bad})


def test_a_gain_round_trips_through_its_file_form():
    h = torch.tensor(0.3 - 0.4j, dtype=torch.complex64)
    stored = gain_to_real(h)
    assert stored.shape == (2,) and torch.equal(gain_from_real(stored), h.reshape(1))
    per_symbol = torch.randn(3, 4, dtype=torch.complex64)  # [T, m]
    stored = gain_to_real(per_symbol)
    assert stored.shape == (3, 4, 2) and torch.equal(gain_from_real(stored), per_symbol[None])


def test_paired_draws_reproduce_the_channel_formula():
    """``through`` with given draws is y = h·x + √(N0/r)·n: the path two schemes share for paired noise."""
    channel = make_channel("rayleigh")
    seed_channel(5)
    h, noise = channel.gains(1)[0], channel.unit_noise(6).reshape(3, 2)
    x = torch.randn(3, 2, 2)
    y = channel.through(x, h, noise, 0.0, 4)
    expected = h * torch.view_as_complex(x) + (0.25 ** 0.5) * noise
    assert torch.allclose(torch.view_as_complex(y.contiguous()), expected, atol=1e-6)
    assert torch.equal(make_channel("none").through(x, h, noise, 0.0), x)
