"""The digital baseline's image codecs and the separation baseline's short-message link."""

from __future__ import annotations

import pytest
import torch

from semcom_cli.channel.image_codecs import CODECS, compress_image, decompress_image


@pytest.mark.parametrize("codec", CODECS)
def test_each_codec_round_trips_a_picture_within_its_budget(codec, test_data):
    image = test_data.images[0]
    budget = 2000
    data = compress_image(image, budget, codec)
    assert data is not None and len(data) <= budget
    back = decompress_image(data, codec, (64, 64))
    assert back.shape == (3, 64, 64)
    error = (back - image.float() / 255).abs().mean()
    assert error < (1e-6 if codec == "png" else 0.05), error
    # the same picture and budget give the same bytes (a seeded run is byte-identical)
    assert compress_image(image, budget, codec) == data


@pytest.mark.parametrize("codec", CODECS)
def test_each_codec_refuses_a_budget_nothing_fits(codec, test_data):
    assert compress_image(test_data.images[0], 8, codec) is None


@pytest.mark.parametrize("codec", [c for c in CODECS if c != "png"])
def test_a_smaller_budget_gives_a_smaller_worse_picture(codec, test_data):
    image = test_data.images[3]
    fits = [compress_image(image, b, codec) for b in (120, 200, 400, 1200)]
    sizes = [len(f) for f in fits if f is not None]
    assert sizes == sorted(sizes) and len(sizes) >= 2
    errors = [float((decompress_image(f, codec, (64, 64)) - image.float() / 255).pow(2).mean())
              for f in fits if f is not None]
    assert errors[-1] < errors[0]


def test_the_shared_dictionary_saves_the_container(test_data):
    """At 64×64 a HEIF or JPEG file is mostly container; what is sent is far smaller than the file."""
    import io

    from PIL import Image

    image = test_data.images[0]
    pixels = image.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=50)
    sent = compress_image(image, 10_000, "jpeg")
    assert len(buf.getvalue()) > 600 and len(sent) < len(buf.getvalue()) // 2


def test_garbage_and_wrong_sizes_are_lost_packets(test_data):
    for codec in CODECS:
        assert decompress_image(b"not an image", codec, (64, 64)) is None
    data = compress_image(test_data.images[0], 2000, "webp")
    assert decompress_image(data, "webp", (32, 32)) is None
    assert decompress_image(data, "jpeg", (64, 64)) is None


def test_an_unknown_codec_is_one_line():
    from semcom_cli.core.errors import SemcomError

    with pytest.raises(SemcomError, match="unknown image codec 'bpg'.*avif, heif, jpeg2000"):
        compress_image(torch.zeros(3, 64, 64, dtype=torch.uint8), 100, "bpg")


# --- the short-message link ---------------------------------------------------------------

def test_message_link_accounting_by_hand():
    from semcom_cli.channel.message_link import fits_bits, message_link

    # 5 bits in 16 uses: padded to LDPC's 12-bit block, QPSK's 32 coded bits, rate 5/32 of what is sent
    link = message_link(5, 16)
    assert (link.k, link.n, link.modulation) == (12, 32, "qpsk")
    assert link.record()["code_rate"] == pytest.approx(5 / 32, abs=1e-4)
    # 29 bits overflow QPSK's highest rate (2/3 of 32) in 16 uses: 16-QAM, 64 coded bits
    assert message_link(29, 16).modulation == "16qam" and message_link(29, 16).n == 64
    # many uses: one rate-1/5 codeword (60 bits, 30 symbols), repeated to fill 1,024 symbols
    long = message_link(5, 1024)
    assert (long.n, long.modulation) == (60, "qpsk") and long.record()["repeats"] == pytest.approx(2048 / 60, abs=1e-3)
    # the most 16 uses carry: 256-QAM at rate 5/6
    assert fits_bits(16) == int(16 * 8 * 5 / 6)
    assert message_link(fits_bits(16), 16) is not None and message_link(fits_bits(16) + 1, 16) is None


def test_bits_round_trip():
    from semcom_cli.channel.message_link import from_bits, to_bits

    values = [0, 1, 23, 49151]
    assert from_bits(to_bits(values, 16), 16) == values
    assert to_bits([5], 5).tolist() == [0, 0, 1, 0, 1]


def test_messages_arrive_at_high_snr_and_repeats_help_at_low():
    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.channel.message_link import message_link, send_messages

    seed_channel(0)
    messages = (torch.rand(200, 29, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    awgn = make_channel("awgn")
    assert bool((send_messages(messages, message_link(29, 64), 10.0, awgn) == messages).all())
    short = (send_messages(messages, message_link(29, 64), -3.0, awgn) == messages).all(1).float().mean()
    long = (send_messages(messages, message_link(29, 512), -3.0, awgn) == messages).all(1).float().mean()
    assert long > 0.95 and short < long


def test_maximum_likelihood_over_a_codebook_beats_belief_propagation():
    """The receiver that knows the 24 captions decodes among their codewords; at −5 dB in 16 uses that
    is far more often right than belief propagation over all 4,096 12-bit words."""
    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.channel.message_link import message_link, send_messages, to_bits

    candidates = torch.stack([to_bits([c], 5) for c in range(24)])
    sent = candidates[torch.randint(0, 24, (400,), generator=torch.Generator().manual_seed(1))]
    link = message_link(5, 16)
    right = {}
    for name, known in (("bp", None), ("ml", candidates)):
        seed_channel(0)
        got = send_messages(sent, link, -5.0, make_channel("awgn"), known)
        right[name] = float((got == sent).all(1).float().mean())
        if known is not None:  # it only ever decodes a caption
            assert all(int(g[0]) * 16 + int("".join(str(int(b)) for b in g[1:]), 2) < 24 for g in got)
    assert right["ml"] > right["bp"] + 0.2, right
