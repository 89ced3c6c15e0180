"""The separation baseline: a digital system that knows the task (semcom_cli.link.separation)."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_clean_failure

from semcom_cli.link.separation import (
    CAPTION_BITS,
    OBJECT_BITS,
    ObjectMessage,
    object_message,
    object_uses,
    paint_object,
    send_captions,
    send_objects,
    send_sentences,
)


def test_a_caption_is_five_bits_and_arrives_as_sent_without_noise():
    indices = [0, 5, 23, 17]
    sent = send_captions(indices, [16] * 4, None, None)
    assert CAPTION_BITS == 5 and sent.sent_bits == [5] * 4
    assert sent.arrived == indices and all(sent.intact)
    assert sent.links[0]["bits"] == 5 and sent.links[0]["modulation"] == "qpsk"


def test_captions_through_the_channel_are_always_captions():
    from semcom_cli.channel import make_channel, seed_channel

    seed_channel(0)
    indices = [i % 24 for i in range(300)]
    low = send_captions(indices, [16] * 300, -10.0, make_channel("awgn"))
    assert all(a is not None and 0 <= a < 24 for a in low.arrived)  # maximum likelihood over the 24
    assert 0.1 < sum(low.intact) / 300 < 0.9
    high = send_captions(indices, [16] * 300, 10.0, make_channel("awgn"))
    assert high.arrived == indices


def test_sentences_send_what_the_snr_scheme_carries():
    from semcom_cli.channel import make_channel, seed_channel

    ids = [[5, 17, 900, 49000, 3], [1, 2]]
    clean = send_sentences(ids, 49152, [20, 8], None, None)
    assert clean.arrived == ids and clean.sent_bits == [80, 32]
    seed_channel(0)
    # 10 dB: 16-QAM 2/3 (by hand: 2^(8/3) − 1 is 7.3 dB, plus the 2.5 dB gap); 20 uses carry 53 bits,
    # three 16-bit tokens; 8 uses 21 bits, one token
    noisy = send_sentences(ids, 49152, [20, 8], 10.0, make_channel("awgn"))
    assert noisy.sent_bits == [48, 16] and noisy.arrived == [[5, 17, 900], [1]]
    assert {link["tokens"] for link in noisy.links} == {3, 1}


def test_object_messages_round_trip_and_damaged_ones_are_dropped():
    message = ObjectMessage((3, 10, 40, 63), color=2, shape=1)
    bits = torch.tensor(message.bits(), dtype=torch.float32)
    assert OBJECT_BITS == 30 and bits.numel() == 30
    assert ObjectMessage.from_bits(bits) == message
    assert ObjectMessage.from_bits(torch.zeros(30)).box is None
    flipped = torch.tensor(ObjectMessage((40, 10, 3, 63), 2, 1).bits(), dtype=torch.float32)
    assert ObjectMessage.from_bits(flipped).box is None  # x1 < x0: no object reads like this


def test_the_object_message_follows_the_mask_and_the_caption():
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[20:31, 5:17] = True
    assert object_message(mask, "a blue circle") == ObjectMessage((5, 20, 16, 30), color=2, shape=0)
    assert object_message(mask, "no object").box is None
    assert object_message(torch.zeros(64, 64, dtype=torch.bool), "a blue circle").box is None


def test_objects_arrive_at_high_snr_and_the_rest_of_the_budget_is_the_picture():
    from semcom_cli.channel import make_channel, seed_channel

    assert object_uses(512, 0.0) == 90 and object_uses(512, 20.0) < 20  # QPSK 1/3 at 0 dB: 2·30·3/2 uses
    assert object_uses(16, 0.0) == 16
    seed_channel(0)
    messages = [ObjectMessage((i, i, i + 10, i + 12), i % 8, i % 3) for i in range(20)]
    assert send_objects(messages, object_uses(512, 12.0), 12.0, make_channel("awgn")) == messages


def test_painting_puts_the_object_back():
    from semcom_cli.data.scenes import COLOR_RGB

    message = ObjectMessage((10, 10, 29, 29), color=0, shape=1)  # a red rectangle
    red = torch.tensor(COLOR_RGB["red"], dtype=torch.float32) / 255
    on_grey = paint_object(None, message)
    assert torch.allclose(on_grey[:, 10:30, 10:30], red[:, None, None].expand(3, 20, 20))
    assert torch.allclose(on_grey[:, 40:, 40:], torch.full((3, 24, 24), 0.5))
    # over a decoded picture: a near-red pixel in the box snaps, one outside the box does not
    picture = torch.full((3, 64, 64), 0.2)
    picture[:, 5, 5] = red * 0.9
    painted = paint_object(picture, ObjectMessage((0, 0, 8, 8), color=0, shape=0))
    assert torch.allclose(painted[:, 5, 5], red)
    assert torch.allclose(paint_object(picture, ObjectMessage(None)), picture)


def test_separation_runs_through_evaluate_with_its_link_record(semcom, tiny_checkpoint, tmp_path):
    import json

    out = tmp_path / "r.json"
    result = semcom("evaluate", "-c", tiny_checkpoint, "--method", "separation,digital,capacity", "--task",
                    "vqa,text", "--snr=-5,20", "--limit", "8", "--image-codec", "webp,jpeg2000",
                    "--channel-uses", "matched,1024", "-o", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    separation = [p for p in doc["points"] if p["method"] == "separation"]
    assert len(separation) == 8 and all("links" in p["link"] and "intact" in p["link"] for p in separation)
    vqa = [p for p in separation if p["task"] == "vqa"]
    assert all(link["bits"] == 5 and link["decoder"] == "ml-24" for p in vqa for link in p["link"]["links"])
    digital = [p for p in doc["points"] if p["method"] == "digital"]
    # images: one point per codec; text has no image codec
    assert {p["codec"] for p in digital if p["task"] == "vqa"} == {"webp", "jpeg2000"}
    assert all(p["codec"] is None for p in digital if p["task"] == "text")
    best = doc["best_codec"]
    assert len(best) == 4 and all(b["codec"] in ("webp", "jpeg2000") and b["codec"] in b["tied"] for b in best)
    assert "digital/jpeg2000" in out.with_suffix(".csv").read_text()
    # the same seed gives the same points (channel draws, codecs, the separation links)
    again = tmp_path / "again.json"
    assert semcom("evaluate", "-c", tiny_checkpoint, "--method", "separation,digital", "--task", "vqa",
                  "--snr=-5", "--limit", "8", "--image-codec", "webp,jpeg2000", "--channel-uses", "matched,1024",
                  "-o", again).exit_code == 0
    repeated = [p for p in json.loads(again.read_text())["points"]]
    assert repeated == [p for p in doc["points"] if p["task"] == "vqa" and p["snr_db"] == -5.0
                        and p["method"] in ("separation", "digital")]


def test_bad_codecs_fail_cleanly(semcom, tiny_checkpoint):
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--method", "digital", "--image-codec", "bpg"),
                         "--image-codec: must be one of", "'avif'", "'bpg'")
    assert_clean_failure(semcom("evaluate", "--task", "reconstruct", "--method", "digital", "--image-codec", "bpg"),
                         "unknown image codec 'bpg'")


@pytest.mark.real
def test_separation_decoded_without_noise_answers_as_the_noiseless_semantic_link(test_data):
    """On the shipped checkpoint: the caption the transmitter reads, sent without noise, gives the LLM the
    answers the noiseless semantic link gives (the same questions, the same receiver)."""
    from semcom_cli.evaluation import Point, Settings, evaluate_point
    from semcom_cli.evaluation.points import sample_items
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(None)
    settings = Settings(limit=48, seed=3)
    got = {}
    for method in ("noiseless", "separation"):
        record = evaluate_point({"main": model}, test_data, Point(method, "vqa", "none", None, None), settings)
        got[method] = record
    assert got["separation"]["link"]["intact"]["value"] == 1.0
    same = got["separation"]["metrics"]["accuracy"]["value"] == got["noiseless"]["metrics"]["accuracy"]["value"]
    assert same and got["noiseless"]["metrics"]["accuracy"]["value"] >= 0.95
    # the bits are the caption the codebook's rule reads in each picture
    from semcom_cli.link.separation import classify_captions
    from semcom_cli.models.codebook import CAPTIONS

    keys = sorted({k for k, _, _ in sample_items(test_data, "caption", 24, 0)})
    chosen = classify_captions(model, test_data.batch_images(keys))
    truth = [test_data.captions[k] for k in keys]
    assert sum(CAPTIONS[c] == tuple(t) for c, t in zip(chosen, truth)) >= 23
