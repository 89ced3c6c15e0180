"""The receiver's caption codebook: an image packet read as a whole, as one of the 24 captions."""

import pytest
import torch
from conftest import tiny_model

from semcom_cli.models.codebook import CAPTIONS, caption_embeddings, read_packets


def _captions(d: int = 6, t: int = 4) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(len(CAPTIONS), t, d)


def test_a_clean_packet_reads_as_its_own_caption_and_padding_stays_zero():
    captions = _captions()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    sent = torch.stack([captions[5], captions[17] * torch.tensor([1, 1, 0, 0.0])[:, None]])
    read = read_packets(sent * 3.0, mask, captions, temperature=0.01)  # the scale is not read
    assert torch.allclose(read[0], captions[5], atol=1e-4)
    assert torch.allclose(read[1, :2], captions[17, :2], atol=1e-4)  # scored on its two slots alone
    assert torch.all(read[1, 2:] == 0)


def test_a_doubtful_packet_reads_as_a_blend_of_the_captions_it_may_be():
    captions = _captions()
    mask = torch.ones(1, 4, dtype=torch.long)
    halfway = ((captions[2] + captions[9]) / 2)[None]
    soft = read_packets(halfway, mask, captions, temperature=1.0)
    hard = read_packets(halfway, mask, captions, temperature=1e-4)
    weights = torch.linalg.lstsq(captions.flatten(1).T, soft.flatten(1).T).solution.flatten()
    assert torch.isclose(weights.sum(), torch.tensor(1.0), atol=1e-3) and weights.min() > -1e-3  # a mix
    assert weights[[2, 9]].sum() > 0.5  # mostly the two it lies between
    # a cold temperature commits to one of the two
    assert min((hard - captions[i]).abs().max() for i in (2, 9)) < 1e-3


def test_the_receiver_reads_image_packets_only_and_the_channel_stage_trains_the_raw_decoder():
    model, llm = tiny_model(seed=0, **{"codec.image_codebook": "captions"})
    n_tokens = model.preset.projector.n_tokens
    captions = caption_embeddings(llm, n_tokens)
    assert captions.shape == (24, n_tokens, llm.embed_dim)
    torch.manual_seed(1)
    symbols, snr = torch.randn(3, n_tokens, model.symbols_per_token, 2), torch.tensor([0.0, 5.0, 20.0])
    mask = torch.ones(3, n_tokens, dtype=torch.long)
    with torch.no_grad():
        raw = model.decode(symbols, snr, mask, "image", codebook=False)
        read = model.decode(symbols, snr, mask, "image")
        text = model.decode(symbols, snr, mask, "text")
        text_raw = model.decode(symbols, snr, mask, "text", codebook=False)
    assert torch.allclose(read, read_packets(raw, mask, captions, model.preset.codec.codebook_temperature))
    assert not torch.allclose(read, raw)
    assert torch.equal(text, text_raw)  # sentences are decoded as before
    off, _ = tiny_model(seed=0, **{"codec.image_codebook": "none"})
    off.llm = llm
    with torch.no_grad():
        assert torch.equal(off.decode(symbols, snr, mask, "image"), raw)  # "none": the tokens as decoded


@pytest.mark.parametrize("field, value", [("codec.image_codebook", "words"), ("codec.codebook_temperature", 0)])
def test_bad_codebook_settings_are_refused(field, value):
    from semcom_cli.config.preset import apply_overrides, load_preset
    from semcom_cli.core.errors import SemcomError

    with pytest.raises(SemcomError, match=field.split(".")[1]):
        apply_overrides(load_preset("tiny"), {field: value})
