import torch

from semcom_cli.models.codec import ChannelDecoder, ChannelEncoder, normalize_power


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


def test_context_decoder_reads_across_the_packet_but_never_the_padding():
    torch.manual_seed(0)
    dec = ChannelDecoder(32, 3, 8, context_heads=2)
    symbols, snr = torch.randn(1, 4, 3, 2), torch.tensor([5.0])
    mask = torch.tensor([[1, 1, 1, 0]])
    out = dec(symbols, snr, mask)
    other_padding = symbols.clone()
    other_padding[0, 3] = torch.randn(3, 2) * 5
    assert torch.allclose(dec(other_padding, snr, mask)[0, :3], out[0, :3], atol=1e-6)
    other_neighbour = symbols.clone()
    other_neighbour[0, 2] = torch.randn(3, 2) * 5
    assert not torch.allclose(dec(other_neighbour, snr, mask)[0, :2], out[0, :2], atol=1e-3)
    # per-token SNRs (a share set's public and private tokens) are accepted as [B, T]
    assert dec(symbols, torch.tensor([[0.0, 5.0, 10.0, 10.0]]), mask).shape == (1, 4, 32)


def test_decoder_without_context_decodes_each_token_alone():
    torch.manual_seed(0)
    dec = ChannelDecoder(32, 3, 8)
    assert "context_heads" not in dec.config  # checkpoints saved before the option still load
    symbols, snr = torch.randn(1, 4, 3, 2), torch.tensor([5.0])
    changed = symbols.clone()
    changed[0, 2] = torch.randn(3, 2)
    assert torch.allclose(dec(changed, snr)[0, :2], dec(symbols, snr)[0, :2])


def _packet_encoder(**kw):
    torch.manual_seed(0)
    return ChannelEncoder(32, 3, 8, encoder_heads=2, power="token", modality_embedding=True, **kw)


def test_packet_encoder_gives_every_token_power_one_and_zero_padding():
    enc = _packet_encoder()
    tokens = torch.randn(3, 5, 32) * torch.tensor([0.1, 1.0, 10.0, 3.0, 0.5])[None, :, None]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    symbols = enc(tokens, mask, "image")
    power = symbols.pow(2).sum(-1).mean(-1)  # [B, T] per token
    assert torch.allclose(power[mask.bool()], torch.ones(int(mask.sum())), atol=1e-5)
    assert torch.all(symbols[~mask.bool()] == 0)


def test_packet_encoder_codes_jointly_within_a_packet_and_never_reads_padding_or_other_packets():
    enc = _packet_encoder()
    tokens, mask = torch.randn(1, 4, 32), torch.tensor([[1, 1, 1, 0]])
    out = enc(tokens, mask, "image")
    changed = tokens.clone()
    changed[0, 3] = torch.randn(32) * 5  # padding
    assert torch.allclose(enc(changed, mask, "image")[0, :3], out[0, :3], atol=1e-6)
    changed = tokens.clone()
    changed[0, 2] = torch.randn(32) * 5  # a neighbour: joint coding changes the others' symbols
    assert not torch.allclose(enc(changed, mask, "image")[0, :2], out[0, :2], atol=1e-3)
    # two packets in one row (a user's public and private parts) are coded apart
    segments = torch.tensor([[0, 0, 1, 1]])
    split = enc(tokens, None, "image", segments)
    assert torch.allclose(enc(tokens[:, :2], None, "image")[0], split[0, :2], atol=1e-5)
    assert torch.allclose(enc(tokens[:, 2:], None, "image")[0], split[0, 2:], atol=1e-5)


def test_modality_changes_the_code_and_must_be_given():
    enc = _packet_encoder()
    with torch.no_grad():
        enc.modality.vectors.normal_()
    tokens = torch.randn(1, 3, 32)
    assert not torch.allclose(enc(tokens, None, "image"), enc(tokens, None, "text"))
    try:
        enc(tokens, None, None)
    except ValueError as err:
        assert "modality" in str(err)
    else:
        raise AssertionError("a modality-aware codec ran without a modality")
