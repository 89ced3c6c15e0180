"""The generative decoder says how sure it is, auto keeps fast where quality invents, and --budget-ms is
kept from a cold start (issue 35). On the shipped checkpoint (checkpoints/semcom-scenes); the figures
behind the limit and the confidence are measured by benchmarks/generative_limit.py."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from semcom_cli.data.scenes import scene_at
from semcom_cli.io.checkpoint import record_metrics
from semcom_cli.io.patches import box_of_mask
from semcom_cli.reconstruct.generative.decoder import QUALITY_LIMIT_KEY, GenerativeDecoder, embed_queries
from semcom_cli.reconstruct.imaging.pipeline import encode_images, receive_streams
from semcom_cli.reconstruct.model import ReconstructModel, default_scenes_checkpoint

QUERY = "the red circle"


@pytest.fixture(scope="module")
def model():
    return ReconstructModel.from_pretrained()


def _received(model, index: int, snr_db: float, method: str = "importance"):
    """Test scene ``index`` (its first object's own box) through AWGN at ``snr_db``, noise seeded."""
    scene = scene_at("test", index)
    image = torch.from_numpy(scene.image).permute(2, 0, 1).float()[None] / 255.0
    box = box_of_mask(torch.from_numpy(scene.masks[0]))
    packet = encode_images(model, image, [box], 512, 0.7, snr_db, method)[0]
    std = (10 ** (-snr_db / 10) / 2) ** 0.5
    noisy = packet.stream + std * torch.randn(packet.stream.shape, generator=torch.Generator().manual_seed(index))
    return receive_streams([noisy], [torch.ones(1, dtype=torch.complex64)], snr_db, 512, 0.7, method)


@pytest.mark.parametrize("index", [0, 1])
def test_the_decoders_are_surer_on_a_good_channel_than_on_a_bad_one(model, index):
    queries = embed_queries([QUERY])
    confidence = {}
    for snr in (20.0, -5.0):
        r = _received(model, index, snr)
        for decoder, samples in (("fast", 1), ("quality", 4)):
            _, choice = model.generative.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, queries, decoder, 10,
                                                seed=3, samples=samples)
            assert 0.0 <= choice.confidence <= 1.0 and choice.doubt >= 0.0
            assert choice.doubt_measure == ("sample_spread" if decoder == "quality" else "posterior_std")
            confidence[decoder, snr] = choice.confidence
    assert confidence["quality", 20.0] > confidence["quality", -5.0]   # same picture, same seed
    assert confidence["fast", 20.0] > confidence["fast", -5.0]


def test_the_reported_sample_is_the_seeds_own_whatever_the_count(model):
    """Drawing more samples for the doubt does not change which picture is reported (up to float rounding
    of a larger batch), and the same seed gives the same doubt."""
    r = _received(model, 0, 0.0)
    queries = embed_queries([QUERY])
    one, _ = model.generative.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, queries, "quality", 4, seed=5)
    many, a = model.generative.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, queries, "quality", 4, seed=5,
                                      samples=4)
    _, b = model.generative.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, queries, "quality", 4, seed=5, samples=4)
    assert (one - many).abs().max() < 1e-3
    assert a.doubt == b.doubt and a.samples == 4


def test_auto_keeps_fast_below_the_limit_the_checkpoint_records(model):
    r = _received(model, 0, 6.0, method="uniform")
    queries = embed_queries([QUERY])

    def auto(limit):
        manifest = json.loads(json.dumps(model.manifest))
        metrics = manifest.setdefault("metrics", {})
        metrics.pop(QUALITY_LIMIT_KEY, None)
        if limit is not None:
            metrics[QUALITY_LIMIT_KEY] = {"snr_db": {"uniform": limit}, "n": 10}
        decoder = GenerativeDecoder(model.folder, manifest)
        return decoder, decoder.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, queries, "auto", 4, seed=0,
                                       budget_ms=60_000, method="uniform")[1]

    _, above = auto(9.0)
    assert above.used == "fast" and above.steps_run == 0 and "below 9 dB" in above.reason
    assert "quality would invent" in above.reason
    _, below = auto(0.0)
    assert below.used == "quality" and below.steps_run > 0 and "between 0 and" in below.reason
    bare, choice = auto(None)  # no measurement: the diffusion model's anchor_from_db (3 dB), a safe default
    assert bare.quality_limit("uniform") == (3.0, "default: no measurement in the checkpoint")
    assert choice.used == "quality"


def _packet(semcom, tmp_path: Path, snr: float) -> Path:
    """Test scene 0 as an importance packet, its first object's mask as the map (no guide, no LLM)."""
    image, heat, packet = tmp_path / "scene.png", tmp_path / "map.png", tmp_path / "p.sem"
    received = tmp_path / f"r{snr:g}.sem"
    if not packet.exists():
        scene = scene_at("test", 0)
        Image.fromarray(scene.image).save(image)
        Image.fromarray(scene.masks[0].astype("uint8") * 255).save(heat)
        assert semcom("encode", image, "--task", "reconstruct", "--map", heat, "-o", packet).exit_code == 0
    assert semcom("transmit", packet, "--snr", snr, "--seed", 3, "-o", received).exit_code == 0
    return received


def _metadata(path: Path) -> dict:
    with Image.open(path) as im:
        return json.loads(im.text["semcom"])


def test_confidence_reason_and_times_in_decode_json_and_the_png(semcom, tmp_path):
    received = _packet(semcom, tmp_path, 0.0)
    runs = []
    for name in ("a.png", "b.png"):
        r = semcom("decode", received, "--decoder", "quality", "--steps", "4", "-o", tmp_path / name, "--json")
        assert r.exit_code == 0, r.output
        runs.append(json.loads(r.stdout))
    chosen = runs[0]["decoder"]
    assert chosen["used"] == "quality" and chosen["reason"] == "asked for"
    assert 0.0 <= chosen["confidence"] <= 1.0 and chosen["doubt"] > 0 and chosen["doubt_measure"] == "sample_spread"
    assert chosen["samples"] == 4
    assert runs[0]["load_ms"] > 0 and runs[0]["decode_ms"] > 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()  # the same seed, the same bytes
    stored = _metadata(tmp_path / "a.png")["decoder"]
    assert stored["confidence"] == chosen["confidence"] and stored["doubt"] == chosen["doubt"]
    r = semcom("decode", received, "--decoder", "quality", "--steps", "4", "-o", tmp_path / "c.png")
    said = " ".join(r.output.split())  # the plain-text line (on stderr, beside the image)
    assert "confidence" in said and "sample spread" in said and "load" in said


def test_auto_below_the_recorded_limit_says_why_and_a_tiny_budget_takes_part_1s_decoder(semcom, tmp_path):
    copy = tmp_path / "scenes"
    shutil.copytree(default_scenes_checkpoint(), copy)
    record_metrics(copy, {QUALITY_LIMIT_KEY: {"snr_db": {"uniform": 10.0, "importance": 10.0}, "n": 10}},
                   merge=True)  # the content hash is unchanged: packets of the shipped checkpoint still decode
    received = _packet(semcom, tmp_path, 6.0)
    r = semcom("decode", received, "-c", copy, "--decoder", "auto", "--budget-ms", "60000", "-o",
               tmp_path / "a.png", "--json")
    assert r.exit_code == 0, r.output
    chosen = json.loads(r.stdout)["decoder"]
    assert chosen["used"] == "fast" and "below 10 dB" in chosen["reason"] and chosen["confidence"] is not None
    r = semcom("decode", received, "-c", copy, "--decoder", "auto", "--budget-ms", "1", "-o", tmp_path / "b.png",
               "--json")
    assert r.exit_code == 0, r.output
    chosen = json.loads(r.stdout)["decoder"]
    assert chosen["used"] == "codec" and "part 1's decoder instead" in chosen["reason"]
    assert (tmp_path / "b.png").is_file()


def test_the_budget_is_kept_in_a_fresh_process(semcom, tmp_path):
    """As a user runs it: one ``semcom decode`` process. Its reported decode time (the clock starts once the
    model is loaded and warmed up) must stay within the budget; the tolerance (1.6×) is for a busy 2-core
    CI machine, where a step can run slower than the warm-up timed it (auto's deadline then overruns by
    at most about one step and the pixel decode, ~100–200 ms). Before the warm-up the same call took
    0.8–1.6 s for 300 ms (Sionna's import, MiniLM's load and first-call costs inside the decode), so 500 ms
    with 1.6× still tells the two apart."""
    budget = 500
    received = _packet(semcom, tmp_path, 6.0)
    semcom_bin = Path(sys.executable).parent / "semcom"
    began = time.perf_counter()
    done = subprocess.run([str(semcom_bin), "decode", str(received), "--decoder", "auto", "--budget-ms",
                           str(budget), "--json", "-o", str(tmp_path / "a.png")], capture_output=True, text=True,
                          check=False, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, timeout=300)
    wall = time.perf_counter() - began
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["decoder"]["budget_ms"] == budget
    assert 0 < result["decode_ms"] <= 1.6 * budget, result
    assert result["load_ms"] > 0
    assert wall * 1000 >= result["load_ms"] + result["decode_ms"]
