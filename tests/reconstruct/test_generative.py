"""The generative decoder (MLLM-SC part 2, issue 17): conditioning shapes, seeded sampling, the mode
switch, the budget logic, the training stages (tiny settings on the shipped part-1 codec) and each bad
input. The shipped decoder's figures are measured by benchmarks/generative.py (README)."""

import shutil

import pytest
import torch
from conftest import assert_clean_failure

from semcom_cli.core.errors import SemcomError
from semcom_cli.data.scenes import scene_at
from semcom_cli.io.patches import HI_SYMBOLS, LIGHT_SYMBOLS, Box, allocate
from semcom_cli.reconstruct.generative.autoencoder import LATENT_SIZE, AutoencoderSettings, FastDecoder
from semcom_cli.reconstruct.generative.data import roi_cells
from semcom_cli.reconstruct.generative.decoder import check_budget_ms, check_decoder, check_steps, plan_auto_steps
from semcom_cli.reconstruct.generative.denoiser import (
    QUERY_DIM,
    DenoiserSettings,
    anchor_for,
    build_scheduler,
    build_unet,
    conditioning,
    refine,
    snr_features,
    strength_for,
)
from semcom_cli.reconstruct.model import default_scenes_checkpoint, write_checkpoint

TINY_AE = AutoencoderSettings(channels=(8, 16, 16), latent_channels=4, receiver_width=8)
TINY_UNET = DenoiserSettings(channels=(16, 32))


def _received(batch: int = 2):
    torch.manual_seed(0)
    allocs = [allocate(512, Box(2, 2, 4, 4), 0.7), allocate(256, None, 0.7, guided=False)][:batch]
    uses = torch.stack([a.uses for a in allocs])
    roi = torch.stack([a.roi for a in allocs])
    hi = torch.randn(batch, HI_SYMBOLS, 2, 8, 8)
    light = torch.randn(batch, LIGHT_SYMBOLS, 2, 8, 8)
    return hi, light, uses, roi, torch.tensor([0.0, 12.0])[:batch]


def test_conditioning_shapes():
    fast = FastDecoder(TINY_AE).eval()
    hi, light, uses, roi, snr = _received()
    mean, logvar = fast(hi, light, uses, roi, snr)
    assert mean.shape == logvar.shape == (2, 4, LATENT_SIZE, LATENT_SIZE)
    assert fast.pixels(mean).shape == (2, 3, 64, 64)
    assert float(fast.pixels(mean).min()) >= 0 and float(fast.pixels(mean).max()) <= 1
    plane = roi_cells(roi, LATENT_SIZE)
    assert plane.shape == (2, 1, 16, 16)
    assert plane[0].sum() == 9 * 4 and plane[1].sum() == 0  # 3×3 patches of 2×2 latent cells; unguided: none
    extra, classes, states = conditioning(mean, logvar, plane, snr, torch.zeros(2, QUERY_DIM))
    assert extra.shape == (2, 9, 16, 16) and classes.shape == (2, 16) and states.shape == (2, 1, QUERY_DIM)
    assert not torch.allclose(snr_features(torch.tensor([0.0])), snr_features(torch.tensor([12.0])))
    unet = build_unet(TINY_UNET).eval()
    noisy = torch.randn(2, 4, 16, 16)
    out = unet(torch.cat([noisy, extra], 1), 10, encoder_hidden_states=states, class_labels=classes).sample
    assert out.shape == (2, 4, 16, 16)


def _refine(seed: int, strength: float = 1.0, deadline=None, steps: int = 6):
    torch.manual_seed(1)
    unet, scheduler = build_unet(TINY_UNET).eval(), build_scheduler(TINY_UNET)
    mean, logvar = torch.randn(1, 4, 16, 16), torch.zeros(1, 4, 16, 16)
    return refine(unet, scheduler, mean, logvar, torch.zeros(1, 1, 16, 16), torch.tensor([0.0]),
                  torch.randn(1, QUERY_DIM), steps, seed, strength, deadline), mean


def test_sampling_is_byte_identical_under_a_seed_and_differs_across_seeds():
    a, _ = _refine(seed=3)
    b, _ = _refine(seed=3)
    c, _ = _refine(seed=4)
    assert a.latent.numpy().tobytes() == b.latent.numpy().tobytes()
    assert not torch.equal(a.latent, c.latent)
    assert a.steps_run == a.steps_planned == 6 and not a.stopped_early


def test_strength_runs_the_tail_of_the_schedule_and_follows_the_snr():
    s = DenoiserSettings()
    assert strength_for(-5.0, s) == strength_for(0.0, s) == 1.0
    assert strength_for(30.0, s) == s.least_strength
    assert 1.0 > strength_for(6.0, s) > strength_for(9.0, s) > s.least_strength == strength_for(s.snr_least_db, s)
    half, _ = _refine(seed=0, strength=0.5, steps=10)
    assert half.steps_run == 5 and half.strength == 0.5


def test_the_roi_keeps_the_fast_estimate_where_the_snr_is_good():
    s = DenoiserSettings()
    assert anchor_for(0.0, s) == 0.0 and anchor_for(20.0, s) == 1.0 and 0 < anchor_for(6.0, s) < 1
    torch.manual_seed(1)
    unet, scheduler = build_unet(TINY_UNET).eval(), build_scheduler(TINY_UNET)
    mean, logvar = torch.randn(1, 4, 16, 16), torch.zeros(1, 4, 16, 16)
    plane = torch.zeros(1, 1, 16, 16)
    plane[..., 4:8, 4:10] = 1
    out = refine(unet, scheduler, mean, logvar, plane, torch.tensor([12.0]), torch.randn(1, QUERY_DIM), 4, 0, 1.0,
                 anchor=1.0, guidance=3.0).latent
    inside = plane.expand_as(mean).bool()
    assert torch.equal(out[inside], mean[inside]) and not torch.allclose(out[~inside], mean[~inside])


def test_a_passed_deadline_runs_no_step_and_keeps_the_fast_estimate():
    import time

    result, mean = _refine(seed=0, deadline=time.perf_counter() - 1)
    assert result.steps_run == 0 and result.stopped_early and torch.equal(result.latent, mean)


def test_the_auto_plan_fits_the_budget():
    s = DenoiserSettings()
    assert plan_auto_steps(20.0, 10.0, 0.01, 20, s) == 0                # a good channel: fast
    assert plan_auto_steps(-5.0, 0.015, 0.01, 20, s) == 0               # room for one step only: fast
    assert plan_auto_steps(-5.0, 10.0, 0.01, 20, s) == 20               # room for all: the schedule asked
    assert plan_auto_steps(-5.0, 0.085, 0.01, 20, s) == 8               # 8 steps fit
    steps = plan_auto_steps(6.0, 0.05, 0.01, 20, s)                     # a partial strength: 5 run of the total
    assert round(steps * strength_for(6.0, s)) <= 5 and steps > 5


@pytest.mark.parametrize("call,fragment", [
    (lambda: check_decoder("magic"), "unknown decoder"),
    (lambda: check_steps(0), "--steps must be"),
    (lambda: check_steps(-3), "--steps must be"),
    (lambda: check_budget_ms(0), "--budget-ms must be"),
    (lambda: check_budget_ms(-1.5), "--budget-ms must be"),
])
def test_impossible_parameters_are_refused(call, fragment):
    with pytest.raises(SemcomError, match=fragment):
        call()


# --- the training stages and the command line, on the shipped part-1 codec --------------------------------

@pytest.fixture(scope="module")
def generative_checkpoint(tmp_path_factory):
    from semcom_cli.reconstruct.generative.train import DiffusionTrain, FeatureTrain, VaeTrain
    from semcom_cli.reconstruct.generative_stages import build_generative

    out = tmp_path_factory.mktemp("generative") / "scenes"
    tiny = dict(steps=3, batch_size=4, pool=12)
    build_generative("image-vae", out, default_scenes_checkpoint(),
                     VaeTrain(**tiny, channels=TINY_AE.channels, receiver_width=TINY_AE.receiver_width))
    build_generative("image-diffusion", out, None, DiffusionTrain(**tiny, channels=TINY_UNET.channels))
    build_generative("scene-features", out, None, FeatureTrain(steps=3, batch_size=4, pool=12, width=8))
    return out


@pytest.fixture(scope="module")
def vae_only_checkpoint(generative_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("vae-only") / "scenes"
    shutil.copytree(generative_checkpoint, out)
    write_checkpoint(out, {}, {}, drop=(("diffusion", "image_diffusion"),))
    return out


def test_the_stages_write_their_files_settings_and_records(generative_checkpoint):
    import json

    manifest = json.loads((generative_checkpoint / "manifest.json").read_text())
    for name in ("vae", "diffusion", "scene_features", "encoder", "decoder", "guide_net", "referent_parser"):
        assert (generative_checkpoint / name / "config.json").is_file()
        assert (generative_checkpoint / name / "model.safetensors").is_file()
    assert json.loads((generative_checkpoint / "vae" / "config.json").read_text()) == {
        "class": "FastDecoder", "channels": list(TINY_AE.channels), "latent_channels": TINY_AE.latent_channels,
        "receiver_width": TINY_AE.receiver_width}
    assert manifest["image_vae"]["channels"] == list(TINY_AE.channels)
    assert manifest["image_diffusion"]["steps"] == 3
    assert set(manifest["training"]) >= {"image-vae", "image-diffusion", "scene-features"}
    assert manifest["versions"]["diffusers"]
    assert not (generative_checkpoint.parent / "scenes.partial").exists()


def test_a_new_vae_drops_the_diffusion_model_it_made_stale(generative_checkpoint, tmp_path):
    from semcom_cli.reconstruct.generative.train import VaeTrain
    from semcom_cli.reconstruct.generative_stages import build_generative

    out = tmp_path / "again"
    build_generative("image-vae", out, generative_checkpoint,
                     VaeTrain(steps=2, batch_size=2, pool=4, channels=TINY_AE.channels,
                              receiver_width=TINY_AE.receiver_width))
    assert (out / "vae").is_dir() and not (out / "diffusion").exists()
    assert (out / "scene_features").is_dir()


def test_vae_training_resumes_exactly(tmp_path):
    from semcom_cli.reconstruct.generative.data import QueryScenePool
    from semcom_cli.reconstruct.generative.train import VaeTrain, train_vae
    from semcom_cli.reconstruct.model import ReconstructModel
    from semcom_cli.training.partial import load_resume, save_resume
    from semcom_cli.training.trainer import Checkpointing

    pool = QueryScenePool(6)
    table = {t: torch.randn(QUERY_DIM, generator=torch.Generator().manual_seed(len(t))) for t in pool.texts()}
    encoder = ReconstructModel.from_pretrained(None).encoder
    cfg = VaeTrain(steps=4, batch_size=2, pool=6, channels=TINY_AE.channels, receiver_width=TINY_AE.receiver_width)
    whole = train_vae(cfg, pool, encoder, table)

    def keep(state):
        save_resume(tmp_path, "image-vae", state, settings={})
        if state.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_vae(cfg, pool, encoder, table, checkpointing=Checkpointing(2, keep))
    state, _ = load_resume(tmp_path, "image-vae")
    resumed = train_vae(cfg, pool, encoder, table, checkpointing=Checkpointing(resume=state))
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def _packet(tmp_path, semcom, checkpoint, snr: float = 0.0):
    from PIL import Image

    tmp_path = tmp_path / f"snr{snr:g}"  # each packet its own files: an existing output is never replaced
    tmp_path.mkdir(exist_ok=True)
    image, heat = tmp_path / "scene.png", tmp_path / "map.png"
    Image.fromarray(scene_at("test", 0).image).save(image)
    grid = torch.zeros(64, 64, dtype=torch.uint8)
    grid[8:24, 16:40] = 255
    Image.fromarray(grid.numpy()).save(heat)
    assert semcom("encode", image, "--task", "reconstruct", "--map", heat, "-c", checkpoint,
                  "-o", tmp_path / "p.sem").exit_code == 0
    assert semcom("transmit", tmp_path / "p.sem", "--snr", snr, "--seed", 3, "-o", tmp_path / "r.sem").exit_code == 0
    return tmp_path / "r.sem"


def _metadata(path):
    import json

    from PIL import Image

    with Image.open(path) as im:
        return json.loads(im.text["semcom"])


def test_decode_modes_through_the_command_line(semcom, tmp_path, generative_checkpoint):
    import json

    from semcom_cli.io.checkpoint import record_metrics

    received = _packet(tmp_path, semcom, generative_checkpoint)
    # auto runs quality at 0 dB only where the checkpoint's measured limit is below it (the default is 3 dB)
    measured = tmp_path / "measured"
    shutil.copytree(generative_checkpoint, measured)
    record_metrics(measured, {"auto_quality_limit": {"snr_db": {"importance": -5.0}}}, merge=True)
    outputs = {}
    for args in (["--decoder", "fast"], ["--decoder", "quality", "--steps", "4"],
                 ["--decoder", "quality", "--steps", "4"], ["--decoder", "quality", "--steps", "4", "--seed", "9"],
                 ["--decoder", "auto", "--budget-ms", "60000", "--steps", "3"]):
        out = tmp_path / f"o{len(outputs)}.png"
        checkpoint = measured if "auto" in args else generative_checkpoint
        r = semcom("decode", received, "-c", checkpoint, *args, "-o", out, "--json")
        assert r.exit_code == 0, r.output
        outputs[len(outputs)] = (out.read_bytes(), json.loads(r.stdout)["decoder"], _metadata(out)["decoder"])
    fast, q1, q2, q9, auto = outputs.values()
    assert fast[1]["used"] == "fast" and fast[1]["steps_run"] == 0 and fast[2]["requested"] == "fast"
    assert q1[1]["used"] == "quality" and q1[1]["steps_run"] == 4 and q1[1]["seed"] == 3  # the channel's seed
    assert q1[0] == q2[0]                       # same seed: the same bytes, metadata included
    assert q9[0] != q1[0] and q9[2]["seed"] == 9
    assert auto[1]["requested"] == "auto" and auto[1]["used"] == "quality" and auto[1]["steps_run"] == 3
    assert "elapsed_ms" not in auto[2] and auto[1]["elapsed_ms"] > 0


def test_auto_keeps_fast_on_a_good_channel_and_codec_on_a_tiny_budget(semcom, tmp_path, generative_checkpoint):
    import json

    good = _packet(tmp_path, semcom, generative_checkpoint, snr=20.0)
    r = semcom("decode", good, "-c", generative_checkpoint, "--decoder", "auto", "--budget-ms", "60000",
               "-o", tmp_path / "a.png", "--json")
    assert json.loads(r.stdout)["decoder"]["used"] == "fast"
    bad = _packet(tmp_path, semcom, generative_checkpoint, snr=-5.0)
    r = semcom("decode", bad, "-c", generative_checkpoint, "--decoder", "auto", "--budget-ms", "0.5",
               "-o", tmp_path / "b.png", "--json")
    assert json.loads(r.stdout)["decoder"]["used"] == "codec"  # not even fast fits: part 1's decoder


@pytest.mark.parametrize("args,fragment", [
    (["--decoder", "quality", "--steps", "0"], "--steps must be"),
    (["--decoder", "quality", "--steps", "-2"], "--steps must be"),
    (["--decoder", "sharp"], "unknown decoder"),
    (["--decoder", "auto"], "needs a compute budget"),
    (["--decoder", "auto", "--budget-ms", "0"], "--budget-ms must be"),
    (["--decoder", "fast", "--steps", "5"], "apply to --decoder quality and auto"),
    (["--decoder", "quality", "--seed", "-1"], "--seed must be"),
])
def test_bad_decoder_flags_fail_cleanly(semcom, tmp_path, generative_checkpoint, args, fragment):
    received = _packet(tmp_path, semcom, generative_checkpoint)
    r = semcom("decode", received, "-c", generative_checkpoint, *args, "-o", tmp_path / "o.png")
    assert_clean_failure(r, fragment)
    assert not (tmp_path / "o.png").exists()


def test_quality_on_a_checkpoint_without_a_diffusion_model_is_one_line(semcom, tmp_path, vae_only_checkpoint):
    received = _packet(tmp_path, semcom, vae_only_checkpoint)
    for args in (["--decoder", "quality"], ["--decoder", "auto", "--budget-ms", "500"]):
        r = semcom("decode", received, "-c", vae_only_checkpoint, *args, "-o", tmp_path / "o.png")
        assert_clean_failure(r, "holds no diffusion model")
        assert not (tmp_path / "o.png").exists()
    assert semcom("decode", received, "-c", vae_only_checkpoint, "--decoder", "fast",
                  "-o", tmp_path / "o.png").exit_code == 0


def test_the_generative_decoder_on_a_checkpoint_without_one_is_one_line(semcom, tmp_path, generative_checkpoint):
    bare = tmp_path / "bare"
    shutil.copytree(generative_checkpoint, bare)
    write_checkpoint(bare, {}, {},
                     drop=(("vae", "image_vae"), ("diffusion", "image_diffusion")))
    received = _packet(tmp_path, semcom, bare)
    for decoder in ("fast", "quality"):
        r = semcom("decode", received, "-c", bare, "--decoder", decoder, "-o", tmp_path / "o.png")
        assert_clean_failure(r, "holds no generative decoder")
    assert semcom("decode", received, "-c", bare, "-o", tmp_path / "o.png").exit_code == 0  # part 1's decoder


def test_decoder_flags_on_a_vqa_packet_are_refused(semcom, tiny_checkpoint, sample_png, tmp_path):
    assert semcom("encode", sample_png, "--task", "vqa", "-c", tiny_checkpoint, "-o", tmp_path / "t.sem").exit_code == 0
    assert semcom("transmit", tmp_path / "t.sem", "--snr", "5", "-o", tmp_path / "r.sem").exit_code == 0
    r = semcom("decode", tmp_path / "r.sem", "-c", tiny_checkpoint, "-q", "what color is the shape?",
               "--decoder", "quality")
    assert_clean_failure(r, "for reconstruct packets")


def test_evaluate_compares_decoders_with_kid(semcom, tmp_path, generative_checkpoint):
    import json

    out = tmp_path / "r.json"
    r = semcom("evaluate", "--task", "reconstruct", "-c", generative_checkpoint, "--method", "uniform",
               "--decoder", "codec,fast,quality", "--steps", "2", "--snr", "0", "--limit", "4", "-o", out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert [p["decoder"] for p in doc["points"]] == ["codec", "fast", "quality"]
    assert all("kid" in p["metrics"] and "psnr_db" in p["metrics"] for p in doc["points"])
    assert doc["points"][2]["steps"] == 2
    assert_clean_failure(semcom("evaluate", "--task", "reconstruct", "-c", generative_checkpoint, "--decoder",
                                "auto"), "--decoder auto")
    assert_clean_failure(semcom("evaluate", "--task", "vqa", "--decoder", "fast"), "--decoder is for")


def test_finetune_adds_a_stage_into_the_checkpoint_it_reads(semcom, tmp_path, generative_checkpoint, monkeypatch):
    import semcom_cli.reconstruct.generative_stages as build
    from semcom_cli.reconstruct.generative.train import FeatureTrain

    folder = tmp_path / "scenes"
    shutil.copytree(generative_checkpoint, folder)
    monkeypatch.setattr(build, "default_settings", lambda stage: FeatureTrain(steps=2, batch_size=2, pool=4, width=8))
    before = (folder / "scene_features" / "model.safetensors").read_bytes()
    r = semcom("finetune", "--stage", "scene-features", "-c", folder, "-o", folder)
    assert r.exit_code == 0, r.output
    assert (folder / "scene_features" / "model.safetensors").read_bytes() != before and (folder / "vae").is_dir()
    assert_clean_failure(semcom("finetune", "--stage", "image-vae", "-o", tmp_path / "new"), "give -c CKPT")
    assert_clean_failure(semcom("finetune", "--stage", "image-diffusion", "-c", folder, "-o", folder,
                                "--save-every", "0"), "--save-every must be positive")
