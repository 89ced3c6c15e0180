"""Issue 34, the image line: partial runs kept and refused, failed stages that leave nothing, training
settings checked (finite, bounded, the batch's memory estimated) before anything trains, diverged runs
stopped, non-finite weights refused on load, maps read by their own range and refused in colour, the
decode budget's overrun said, the image header's budget checked, the replace rule on the image commands.
Tiny settings on the shipped checkpoint's parts."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_clean_failure
from PIL import Image

import semcom_cli.reconstruct.imaging.train as imaging_train
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.scenes import scene_at
from semcom_cli.io.checkpoint import save_part
from semcom_cli.config.base import settings_from
from semcom_cli.reconstruct.imaging.train import CodecTrain
from semcom_cli.reconstruct.model import ReconstructModel, codec_config, default_scenes_checkpoint, write_checkpoint
from semcom_cli.training.memory import MemoryNeed, check_memory

SHIPPED = default_scenes_checkpoint()


class TinyCodecTrain(CodecTrain):
    """The codec stage's recipe cut to seconds: what `finetune --stage image-codec` trains in these tests."""

    steps: int = 2
    batch_size: int = 2
    crops: int = 4
    width: int = 16


@pytest.fixture
def tiny_codec_recipe(monkeypatch):
    monkeypatch.setattr(imaging_train, "CodecTrain", TinyCodecTrain)


def assert_stopped_in_one_line(result, *fragments: str) -> None:
    """Exit 2 with one error line (after the progress bar's), no traceback: a run stopped while training."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("semcom: error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


# --- partial runs and failed stages ---------------------------------------------------------------------

def test_a_fresh_stage_refuses_a_partial_run_it_did_not_make_and_keeps_it(semcom, tmp_path, tiny_codec_recipe):
    partial = tmp_path / "out.partial"
    partial.mkdir()
    (partial / "notes.txt").write_text("mine")
    r = semcom("finetune", "--stage", "image-codec", "-c", SHIPPED, "-o", tmp_path / "out")
    assert_clean_failure(r, "interrupted run", "--resume")
    assert (partial / "notes.txt").read_text() == "mine" and not (tmp_path / "out").exists()


def test_a_diverging_stage_stops_in_one_line_and_leaves_no_output(semcom, tmp_path, tiny_codec_recipe, monkeypatch):
    # the channel returns NaN: the loss is NaN at the first step
    monkeypatch.setattr(imaging_train, "awgn", lambda x, snr, sent, gen: x * float("nan"))
    r = semcom("finetune", "--stage", "image-codec", "-c", SHIPPED, "-o", tmp_path / "out", "--save-every", "1")
    assert_stopped_in_one_line(r, "training diverged at step 1", "the loss is nan")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no copy of the input, no staging


def test_a_stage_that_fails_after_training_leaves_the_output_as_it_was(tmp_path, monkeypatch):
    from semcom_cli.reconstruct import codec_stages

    out = tmp_path / "out"

    def broken(*args, **kwargs):
        raise SemcomError("the disk is full")

    monkeypatch.setattr(codec_stages, "write_checkpoint", broken)
    with pytest.raises(SemcomError, match="disk is full"):
        codec_stages.build_codec(out, SHIPPED, TinyCodecTrain())
    assert list(tmp_path.iterdir()) == []


def test_the_trainer_refuses_weights_a_step_left_non_finite():
    from types import SimpleNamespace

    from semcom_cli.training.trainer import Trainer

    weight = torch.nn.Parameter(torch.ones(3))
    trainer = Trainer([weight], SimpleNamespace(steps=5, lr=1e-3), None, None)
    with pytest.raises(SemcomError, match="at step 1 of 5: the weights are no longer finite"):
        trainer.step(torch.sqrt(weight - 1).sum())  # a finite loss (0) whose gradient is infinite
    with pytest.raises(SemcomError, match="the loss is"):
        trainer.step(weight.sum() * float("inf"))
    assert trainer.losses == []


# --- settings checked before anything trains ------------------------------------------------------------

@pytest.mark.parametrize("flags,fragment", [
    (["--lr", "nan"], "finite"), (["--lr", "inf"], "finite"), (["--lr", "1e30"], "less than or equal to 1"),
    (["--lr", "-1"], "lr"), (["--batch-size", "100000000"], "batch_size"),
    (["--steps", "1000000000"], "steps"),
])
@pytest.mark.parametrize("stage", ["image-codec", "image-vae", "guidance", "guide-checks"])
def test_bad_training_flags_are_refused_before_training(semcom, tmp_path, stage, flags, fragment):
    source = [] if stage == "guidance" else ["-c", SHIPPED]
    r = semcom("finetune", "--stage", stage, *source, "-o", tmp_path / "out", *flags)
    assert_clean_failure(r, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags,fragment", [(["--lr", "nan"], "finite"), (["--lr", "1e30"], "less than or equal"),
                                            (["--batch-size", "100000000"], "batch_size")])
def test_bad_flags_of_a_model_stage_are_refused(semcom, tmp_path, flags, fragment):
    assert_clean_failure(semcom("finetune", "--stage", "channel", "-o", tmp_path / "out", *flags), fragment)


def test_a_batch_beyond_the_memory_is_refused_before_training(semcom, tmp_path, monkeypatch):
    import semcom_cli.training.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * 10**9)
    r = semcom("finetune", "--stage", "image-vae", "-c", SHIPPED, "-o", tmp_path / "out", "--batch-size", "4096")
    assert_clean_failure(r, "a batch of 4,096 needs about", "lower --batch-size")
    assert not (tmp_path / "out").exists()


def test_the_memory_estimate_grows_with_the_batch_and_the_model():
    small, big = CodecTrain(batch_size=16).memory(), CodecTrain(batch_size=4096, width=64).memory()
    assert 10**7 < small.total < 2 * 10**9 < big.total
    with pytest.raises(SemcomError, match="needs about"):
        check_memory("stage x", big, available=10**9)
    assert check_memory("stage x", small, available=10**10) == small.total
    assert MemoryNeed(10, 0, 1).total == 160


# --- non-finite weights refused on load -----------------------------------------------------------------

def test_a_checkpoint_with_nan_weights_is_refused_on_load(tmp_path):
    model = ReconstructModel.from_pretrained(SHIPPED)
    decoder = model.decoder
    with torch.no_grad():
        next(decoder.parameters()).fill_(float("nan"))
    staged = tmp_path / "staged"
    cfg = settings_from(CodecTrain, model.manifest["codec"], "the shipped codec", known_only=True)
    save_part(staged, "decoder", decoder, codec_config(cfg))
    out = tmp_path / "nan"
    write_checkpoint(out, {"decoder": staged / "decoder"}, {}, base=SHIPPED)  # hashed: only the values are wrong
    with pytest.raises(SemcomError, match="non-finite values") as err:
        ReconstructModel.from_pretrained(out)
    assert "\n" not in str(err.value)


# --- maps, the decode budget, the image header ----------------------------------------------------------

def test_a_16_bit_map_is_scaled_by_its_range_not_clipped():
    from semcom_cli.reconstruct.packets import read_map

    values = np.zeros((64, 64), dtype=np.uint16)
    values[:, 32:] = 65535
    values[:, 16:32] = 32768
    got = read_map(_png(values), "m.png")
    assert float(got[0, 0]) == 0.0 and float(got[0, 40]) == 1.0 and abs(float(got[0, 20]) - 0.5) < 1e-3
    eight = read_map(_png((values // 257).astype(np.uint8)), "m8.png")
    assert torch.allclose(got, eight, atol=1 / 255)
    grey_as_rgb = read_map(_png(np.repeat((values // 257).astype(np.uint8)[..., None], 3, axis=2)), "rgb.png")
    assert torch.equal(grey_as_rgb, eight)


def test_a_colour_scene_given_as_a_map_is_refused(semcom, tmp_path):
    from semcom_cli.reconstruct.packets import read_map

    scene = tmp_path / "scene.png"
    scene.write_bytes(_png(scene_at("test", 0).image))
    with pytest.raises(SemcomError, match="a colour picture, not an importance map"):
        read_map(scene.read_bytes(), "scene.png")
    r = semcom("encode", scene, "--task", "reconstruct", "--map", scene, "-o", tmp_path / "p.sem")
    assert_clean_failure(r, "colour picture")
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[..., 3] = 100
    with pytest.raises(SemcomError, match="transparency"):
        read_map(_png(rgba), "a.png")


def test_the_guide_writes_a_map_of_one_grey_channel():
    from semcom_cli.reconstruct.packets import map_png_bytes, read_map

    probabilities = torch.linspace(0, 1, 64 * 64).view(64, 64)
    data = map_png_bytes(probabilities)
    assert Image.open(io.BytesIO(data)).mode == "L"
    assert torch.allclose(read_map(data, "m"), probabilities, atol=0.5 / 255 + 1e-6)


def _received_packet(tmp_path, semcom):
    image, heat = tmp_path / "scene.png", tmp_path / "map.png"
    image.write_bytes(_png(scene_at("test", 0).image))
    grid = np.zeros((64, 64), dtype=np.uint8)
    grid[8:24, 16:40] = 255
    heat.write_bytes(_png(grid))
    assert semcom("encode", image, "--task", "reconstruct", "--map", heat, "-o", tmp_path / "p.sem").exit_code == 0
    assert semcom("transmit", tmp_path / "p.sem", "--snr", 0, "--seed", 3, "-o", tmp_path / "r.sem").exit_code == 0
    return tmp_path / "r.sem"


def test_a_decode_over_its_budget_says_so_on_stderr(semcom, tmp_path):
    received = _received_packet(tmp_path, semcom)
    r = semcom("decode", received, "--decoder", "auto", "--budget-ms", "0.001", "-o", tmp_path / "a.png", "--json")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "over its --budget-ms of 0.001 ms" in warnings[0]
    assert json.loads(r.stdout)["decoder"]["used"] == "codec" and (tmp_path / "a.png").is_file()  # the cheapest
    r = semcom("decode", received, "--decoder", "auto", "--budget-ms", "600000", "-o", tmp_path / "b.png")
    assert r.exit_code == 0 and "warning" not in r.stderr


def _packet(**image):
    from test_reconstruct import TinyCodec

    from semcom_cli.reconstruct.packets import encode_image_file

    picture = torch.from_numpy(scene_at("test", 0).image).permute(2, 0, 1).float() / 255
    given = torch.zeros(64, 64)
    given[8:24, 16:40] = 1.0
    sem, _ = encode_image_file(TinyCodec(), picture, "scene.png", None, 512, 0.7, "importance", 10.0, given)
    header = sem.header.model_copy(update={"image": {**sem.header.image, **image}})
    return type(sem)(sem.tensors, header)


@pytest.mark.parametrize("change", [{"budget": 1024}, {"budget": 600}, {"roi_share": 0.2, "budget": 6000}])
def test_an_image_header_whose_budget_disagrees_with_its_channel_uses_is_refused(change):
    from semcom_cli.io.semantic import SemanticFile

    SemanticFile.from_bytes(_packet().to_bytes(), "ok.sem")  # as encoded: read back
    with pytest.raises(SemcomError, match="disagrees with its 512 channel uses") as err:
        SemanticFile.from_bytes(_packet(**change).to_bytes(), "bad.sem")
    assert "\n" not in str(err.value)


# --- evaluate --plot of a results file naming a path ----------------------------------------------------

@pytest.mark.parametrize("field,value", [("task", "../../escape"), ("task", "a/b"), ("channel", "/tmp/x"),
                                         ("metric", "../m")])
def test_plotting_results_whose_names_are_paths_is_one_line(semcom, tmp_path, field, value):
    point = {"method": "importance", "task": "reconstruct", "channel": "awgn", "snr_db": 0.0, "channel_uses": 512,
             "channel_uses_mean": 512, "seed": 0, "metrics": {"psnr_db": {"value": 20.0, "n": 4, "ci95": [19, 21]}}}
    if field == "metric":
        point["metrics"] = {value: point["metrics"]["psnr_db"]}
    else:
        point[field] = value
    doc = {"format": "semcom-evaluate/1", "points": [point],
           "run": {"checkpoint": "c", "checkpoint_hash": "h", "preset": "p"}}
    results = tmp_path / "r.json"
    results.write_text(json.dumps(doc))
    assert_clean_failure(semcom("evaluate", "--plot", results), "not a plain name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


# --- the replace rule on the image commands -------------------------------------------------------------

def test_a_stage_onto_another_checkpoint_needs_force_and_replaces_it(semcom, tmp_path, tiny_codec_recipe):
    other = tmp_path / "other"
    shutil.copytree(SHIPPED, other)
    (other / "vae" / "extra.txt").write_text("x")  # not a part file: gone once replaced
    args = ["finetune", "--stage", "image-codec", "-c", SHIPPED, "-o", other]
    assert_clean_failure(semcom(*args), "add --force")
    assert (other / "vae" / "extra.txt").exists()
    r = semcom(*args, "--force")
    assert r.exit_code == 0, r.output
    model = ReconstructModel.from_pretrained(other)
    assert model.manifest["codec"]["width"] == 16 and not (other / "vae").exists()  # a new codec drops the VAE
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left beside it


def test_a_stage_onto_a_folder_of_other_files_is_refused_even_with_force(semcom, tmp_path, tiny_codec_recipe):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for extra in ([], ["--force"]):
        r = semcom("finetune", "--stage", "image-codec", "-c", SHIPPED, "-o", folder, *extra)
        assert_clean_failure(r, "not a reconstruct checkpoint")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_guide_replaces_only_its_own_png_and_only_with_force(semcom, tmp_path):
    scene = tmp_path / "scene.png"
    scene.write_bytes(_png(scene_at("test", 0).image))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for extra in ([], ["--force"]):
        assert_clean_failure(semcom("guide", scene, "-q", "the red shape", "-o", notes, *extra),
                             "another kind of file", "guide map (PNG)")
    assert notes.read_text() == "mine"
    old = tmp_path / "old.png"
    old.write_bytes(_png(np.zeros((64, 64), dtype=np.uint8)))
    assert_clean_failure(semcom("guide", scene, "-q", "the red shape", "-o", old), "add --force")


# --- the codec stage on a chosen device -----------------------------------------------------------------

def test_the_codec_stage_trains_on_the_device_it_is_given_and_says_where(semcom, tmp_path, tiny_codec_recipe):
    out = tmp_path / "out"
    r = semcom("finetune", "--stage", "image-codec", "-c", SHIPPED, "-o", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    model = ReconstructModel.from_pretrained(out)
    assert model.manifest["training"]["image-codec"]["device"] == "cpu"
    assert model.manifest["codec"]["crops"] == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU would train on it")
def test_a_gpu_asked_for_where_there_is_none_is_one_line(semcom, tmp_path, tiny_codec_recipe):
    r = semcom("finetune", "--stage", "image-codec", "-c", SHIPPED, "-o", tmp_path / "out", "--device", "cuda")
    assert_clean_failure(r, "no CUDA GPU")
    assert list(tmp_path.iterdir()) == []


def test_device_is_refused_for_the_image_stages_that_train_on_the_cpu(semcom, tmp_path):
    r = semcom("finetune", "--stage", "guidance", "-o", tmp_path / "out", "--device", "cpu")
    assert_clean_failure(r, "only image-codec")
