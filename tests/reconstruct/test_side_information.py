"""The guided packet's side information (issue 37): the box decoded by maximum likelihood among the boxes
that exist, a longer code where the reported SNR is low, packets of every length through files; and the
batched pieces of the link (allocation, packing, boxes of masks) against their one-at-a-time originals."""

import random

import pytest
import torch

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.channel.digital import _ldpc, _qam
from semcom_cli.io.patches import BOX_BITS, SIDE_USES_CHOICES, Box, allocate, allocate_rows, box_of_mask
from semcom_cli.reconstruct.imaging.codec import pack, pack_rows, unpack_rows
from semcom_cli.reconstruct.imaging.side import (
    box_bits,
    box_candidates,
    read_side,
    side_symbols,
    side_uses_for,
    side_uses_rows,
)
from semcom_cli.reconstruct.imaging.train import boxes_of_masks


def _random_boxes(count: int, seed: int = 0) -> list:
    every = box_candidates()[0]
    rng = random.Random(seed)
    return [every[rng.randrange(len(every))] for _ in range(count)]


def test_the_candidates_are_every_box_and_no_box_once():
    boxes, bits = box_candidates()
    assert len(boxes) == 1 + 36 * 36 and boxes[0] is None and len(set(boxes)) == len(boxes)
    assert bits.shape == (len(boxes), BOX_BITS) and len({tuple(b.tolist()) for b in bits}) == len(boxes)


@pytest.mark.parametrize("uses", SIDE_USES_CHOICES)
def test_every_length_reads_back_noiselessly(uses):
    boxes = _random_boxes(64, uses)
    x = side_symbols(boxes, uses)
    assert x.shape == (64, uses) and torch.allclose(x.abs().pow(2).mean(), torch.tensor(1.0))
    assert read_side(x, torch.ones(64, dtype=torch.complex64), 30.0) == boxes


def test_a_24_use_packet_carries_the_symbols_it_carried_before():
    # the code before: LDPC (16, 48) in QPSK, no scrambling; packets written then decode now
    boxes = _random_boxes(16, 1)
    encoder, _ = _ldpc(BOX_BITS, 48, 2)
    mapper, _ = _qam(2)
    before = mapper(encoder(torch.stack([box_bits(b) for b in boxes]))).reshape(16, 24)
    assert torch.equal(side_symbols(boxes, 24), before)


@pytest.mark.parametrize("channel,snr,most", [("awgn", 0.0, 0.02), ("awgn", -6.0, 0.03), ("rayleigh-iid", -2.0, 0.02)])
def test_the_link_reads_the_box_at_low_snr(channel, snr, most):
    # measured (benchmarks/side_information.py, 2,000 boxes): 0.0 %, 0.8 %, 0.0 % misread
    boxes = _random_boxes(400, 2)
    uses = side_uses_for(snr, 512)
    seed_channel(0)
    y, h = make_channel(channel)(side_symbols(boxes, uses), snr)
    read = read_side(y, h if h.dim() == 2 else h.reshape(-1), snr)
    assert sum(a != b for a, b in zip(read, boxes)) / len(boxes) <= most


def test_the_side_length_follows_the_reported_snr_within_the_budget():
    assert [side_uses_for(s) for s in (20.0, 6.0, 5.9, 0.0, -0.1, -30.0)] == [24, 24, 48, 48, 96, 96]
    assert side_uses_for(-10.0, 88) == 24 and side_uses_for(-10.0, 120) == 48 and side_uses_for(-10.0, 160) == 96
    snrs = torch.tensor([20.0, 6.0, 5.9, 0.0, -0.1, -30.0, -10.0, -10.0, -10.0])
    budgets = torch.tensor([512] * 6 + [88, 120, 160])
    assert side_uses_rows(snrs, budgets).tolist() == [side_uses_for(float(s), int(b)) for s, b in zip(snrs, budgets)]


def test_the_batched_allocation_is_the_one_at_a_time_allocation():
    rng = random.Random(0)
    rows = []
    for _ in range(500):
        box = None if rng.random() < 0.1 else box_candidates()[0][rng.randrange(1, 1297)]
        budget = rng.choice([88, 100, 256, 512, 2000, 6144])
        rows.append((budget, box, rng.uniform(0.01, 0.99), rng.random() < 0.7,
                     rng.choice([n for n in SIDE_USES_CHOICES if n + 64 <= budget])))
    uses, roi = allocate_rows(torch.tensor([r[0] for r in rows]),
                              torch.tensor([r[1].to_json() if r[1] else [-1] * 4 for r in rows]),
                              torch.tensor([r[2] for r in rows], dtype=torch.float64),
                              torch.tensor([r[3] for r in rows]), torch.tensor([r[4] for r in rows]))
    for i, (budget, box, share, guided, side) in enumerate(rows):
        one = allocate(budget, box, share, guided, side)
        assert torch.equal(one.uses, uses[i]) and torch.equal(one.roi, roi[i]), rows[i]


def test_batched_packing_is_one_at_a_time_packing_and_unpacks():
    torch.manual_seed(0)
    boxes = [Box(0, 0, 1, 1), None, Box(2, 3, 7, 7), Box(0, 0, 7, 7)]
    allocations = [allocate(700, b, 0.6) for b in boxes]
    hi, light = torch.randn(4, 96, 2, 8, 8), torch.randn(4, 32, 2, 8, 8)
    uses, roi = torch.stack([a.uses for a in allocations]), torch.stack([a.roi for a in allocations])
    streams = pack_rows(hi, light, uses, roi)
    assert all(torch.equal(s, pack(hi[i], light[i], a)) for i, (s, a) in enumerate(zip(streams, allocations)))
    padded = torch.nn.utils.rnn.pad_sequence(streams, batch_first=True)
    hi2, light2 = unpack_rows(padded, uses, roi)
    assert pack_rows(hi2, light2, uses, roi)[2].equal(streams[2])  # what was sent comes back in its place
    short = unpack_rows(padded[:, :10], uses, roi)[0]  # fewer symbols than the allocation asks: zeros after
    assert short.abs().sum() > 0 and short.shape == hi.shape


def test_boxes_of_masks_is_box_of_mask_for_a_batch():
    torch.manual_seed(1)
    masks = torch.zeros(32, 64, 64, dtype=torch.bool)
    for m in masks:
        y, x = torch.randint(0, 60, (2,)).tolist()
        h, w = torch.randint(1, 30, (2,)).tolist()
        m[y:y + h, x:x + w] = True
    expected = [box_of_mask(m).to_json() for m in masks]
    assert boxes_of_masks(masks).tolist() == expected


@pytest.mark.parametrize("snr_feedback,side", [(10.0, 24), (3.0, 48), (-3.0, 96)])
def test_a_packet_of_each_side_length_goes_through_its_file(snr_feedback, side, tmp_path):
    from test_reconstruct import TinyCodec

    from semcom_cli.data.scenes import scene_at
    from semcom_cli.io.semantic import read_semantic, write_semantic
    from semcom_cli.reconstruct.packets import decode_image_file, encode_image_file

    image = torch.from_numpy(scene_at("test", 0).image).permute(2, 0, 1).float() / 255
    given = torch.zeros(64, 64)
    given[8:24, 16:40] = 1.0
    model = TinyCodec()
    sem, info = encode_image_file(model, image, "scene.png", None, 512, 0.7, "importance", snr_feedback, given)
    assert sem.header.image["side_uses"] == side and sem.header.channel_uses == 512
    write_semantic(tmp_path / "p.sem", sem)
    again = read_semantic(str(tmp_path / "p.sem"), stage="encode")
    # as `semcom transmit` would hand it on through a noiseless channel
    again.header = again.header.model_copy(update={"stage": "transmit", "snr_db": 30.0, "channel": "awgn",
                                                   "seed": 0})
    again.tensors["gain"] = torch.tensor([1.0, 0.0])
    _, result = decode_image_file(model, again, "p.sem")
    assert result["box_received"] == info["box"] and result["side_uses"] == side
