import torch

from semcom_cli.codec import ChannelDecoder, ChannelEncoder, normalize_power


def test_average_power_is_one_per_complex_symbol_ignoring_padding():
    z = torch.randn(3, 5, 4, 2) * 7
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    out = normalize_power(z, mask)
    for b in range(3):
        real = out[b, mask[b].bool()]
        assert torch.isclose(real.pow(2).sum(-1).mean(), torch.tensor(1.0), atol=1e-5)
        assert torch.all(out[b, ~mask[b].bool()] == 0)


def test_encoder_decoder_shapes():
    torch.manual_seed(0)
    enc, dec = ChannelEncoder(32, 3, 8), ChannelDecoder(32, 3, 8)
    tokens = torch.randn(2, 4, 32)
    symbols = enc(tokens, torch.ones(2, 4))
    assert symbols.shape == (2, 4, 3, 2)
    assert torch.isclose(symbols.pow(2).sum(-1).mean(), torch.tensor(1.0), atol=1e-5)
    assert dec(symbols, torch.tensor([0.0, 10.0])).shape == (2, 4, 32)
