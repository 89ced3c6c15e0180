"""The CLI end to end on the tiny checkpoint: stages, pipes, determinism, and every bad input."""

import json
from pathlib import Path

import pytest
from conftest import assert_clean_failure, run_pipe

pytestmark = pytest.mark.usefixtures("tiny_checkpoint")


@pytest.fixture
def encoded(semcom, tiny_checkpoint, sample_png, tmp_path) -> Path:
    out = tmp_path / "enc.safetensors"
    r = semcom("encode", sample_png, "--task", "vqa", "-o", out, "-c", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def received(semcom, encoded, tmp_path) -> Path:
    out = tmp_path / "rx.safetensors"
    r = semcom("transmit", encoded, "--channel", "rayleigh", "--snr", "5", "--seed", "1", "-o", out)
    assert r.exit_code == 0, r.output
    return out


def test_help_lists_every_stage(semcom):
    r = semcom("--help")
    for command in ("align", "finetune", "encode", "transmit", "decode", "evaluate", "info"):
        assert command in r.stdout


def test_encode_writes_power_normalised_symbols(semcom, encoded, tiny_checkpoint):
    r = semcom("info", encoded, "--json")
    meta = json.loads(r.stdout)
    assert meta["stage"] == "encode" and meta["task"] == "vqa" and meta["modality"] == "image"
    assert meta["checkpoint"] == "tiny-a" and len(meta["checkpoint_hash"]) == 64
    assert meta["tensors"]["symbols"] == [2, 2, 2]  # tiny: 2 tokens × 2 complex symbols
    assert meta["channel_uses"] == 4 and meta["role"] == "private"
    from semcom_cli.io.semantic import read_semantic

    symbols = read_semantic(str(encoded)).tensors["symbols"]
    assert abs(symbols.pow(2).sum(-1).mean().item() - 1.0) < 1e-5


def test_transmit_then_decode(semcom, received, tiny_checkpoint, tmp_path):
    meta = json.loads(semcom("info", received, "--json").stdout)
    assert (meta["stage"], meta["channel"], meta["snr_db"], meta["seed"]) == ("transmit", "rayleigh", 5.0, 1)
    assert meta["tensors"]["gain"] == [2]
    out = tmp_path / "answer.json"
    r = semcom("decode", received, "--question", "what shape is in the image?", "-c", tiny_checkpoint,
               "-o", out, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result == json.loads(out.read_text())
    assert result["task"] == "vqa" and result["checkpoint"] == "tiny-a" and isinstance(result["answer"], str)


def test_a_per_symbol_fading_file_carries_a_gain_per_symbol_and_decodes(semcom, encoded, tiny_checkpoint, tmp_path):
    rx = tmp_path / "iid.safetensors"
    assert semcom("transmit", encoded, "--channel", "rayleigh-iid", "--snr", "5", "-o", rx).exit_code == 0
    meta = json.loads(semcom("info", rx, "--json").stdout)
    assert meta["channel"] == "rayleigh-iid" and meta["tensors"]["gain"] == meta["tensors"]["symbols"] == [2, 2, 2]
    r = semcom("decode", rx, "-q", "what shape?", "-c", tiny_checkpoint, "--json")
    assert r.exit_code == 0, r.output
    # a block-fading file with a per-symbol gain (or the other way round) does not fit its channel
    from safetensors.torch import load_file, save_file

    from semcom_cli.io.semantic import read_semantic
    sem = read_semantic(str(rx))
    bad = tmp_path / "bad.safetensors"
    header = {"format": "semcom-semantic", "format_version": 1, **sem.header.to_json(), "channel": "rayleigh"}
    save_file(load_file(str(rx)), str(bad), metadata={"semcom": json.dumps(header)})
    assert_clean_failure(semcom("decode", bad, "-q", "what shape?", "-c", tiny_checkpoint), "[2] 'gain'")


def test_text_task_round_trip(semcom, tiny_checkpoint, tmp_path):
    enc, rx = tmp_path / "t.safetensors", tmp_path / "t_rx.safetensors"
    assert semcom("encode", "--task", "text", "--text", "is there a red shape?", "-o", enc,
                  "-c", tiny_checkpoint).exit_code == 0
    meta = json.loads(semcom("info", enc, "--json").stdout)
    assert meta["modality"] == "text" and meta["n_tokens"] == 6  # "is there a red shape?" in SmolLM2 tokens
    assert semcom("transmit", enc, "--snr", "20", "-o", rx).exit_code == 0
    r = semcom("decode", rx, "-c", tiny_checkpoint, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["task"] == "text"


def test_info_on_checkpoint(semcom, tiny_checkpoint):
    data = json.loads(semcom("info", tiny_checkpoint, "--json").stdout)
    assert data["kind"] == "checkpoint" and data["preset"] == "tiny"
    assert [s["stage"] for s in data["training"]["stages"]] == ["align", "channel", "instruct"]
    assert {"torch", "transformers", "peft"} <= set(data["versions"])


def test_same_seed_same_bytes(semcom, encoded, sample_png, tiny_checkpoint, tmp_path):
    again = tmp_path / "again.safetensors"
    semcom("encode", sample_png, "--task", "vqa", "-o", again, "-c", tiny_checkpoint)
    assert again.read_bytes() == encoded.read_bytes()
    outs = []
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        path = tmp_path / f"{name}.safetensors"
        semcom("transmit", encoded, "--snr", "0", "--seed", seed, "-o", path)
        outs.append(path.read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_shell_pipe_through_all_stages(tiny_checkpoint, sample_png):
    result = run_pipe(sample_png, "what color is the shape?", snr=5, checkpoint=tiny_checkpoint)
    assert result["snr_db"] == 5.0 and result["channel"] == "awgn" and result["question"] == "what color is the shape?"


def test_evaluate_reports_each_snr(semcom, tiny_checkpoint, tmp_path):
    out = tmp_path / "results.json"
    r = semcom("evaluate", "-c", tiny_checkpoint, "--task", "vqa,caption", "--snr", "0,10",
               "--limit", "6", "-o", out)
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert [(x["task"], x["snr_db"]) for x in data["points"]] == [
        ("vqa", 0.0), ("vqa", 10.0), ("caption", 0.0), ("caption", 10.0)]
    for x in data["points"]:
        m = x["metrics"]["accuracy"]
        assert m["n"] == 6 and 0.0 <= m["value"] <= 1.0 and x["channel_uses_mean"] == 4.0
    assert data["run"]["checkpoint"] == "tiny-a" and data["run"]["seeds"]["sample"] == 0
    assert "torch" in data["run"]["versions"]


# --- bad input: one line on stderr, exit code 2, no output file --------------------------------


def test_missing_input_file(semcom, tiny_checkpoint, tmp_path):
    out = tmp_path / "o.safetensors"
    assert_clean_failure(semcom("encode", tmp_path / "nope.png", "--task", "vqa", "-o", out,
                                "-c", tiny_checkpoint), "no such file")
    assert not out.exists()


def test_not_an_image(semcom, tiny_checkpoint, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("hello, I am text")
    out = tmp_path / "o.safetensors"
    assert_clean_failure(semcom("encode", fake, "--task", "vqa", "-o", out, "-c", tiny_checkpoint),
                         "not an image")
    assert not out.exists()


def test_truncated_semantic_file(semcom, encoded, tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(encoded.read_bytes()[:-10])
    out = tmp_path / "o.safetensors"
    assert_clean_failure(semcom("transmit", cut, "--snr", "1", "-o", out), "truncated")
    assert not out.exists()


def test_corrupted_header(semcom, encoded, tmp_path):
    data = bytearray(encoded.read_bytes())
    data[12:20] = b"\xff" * 8
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    assert_clean_failure(semcom("transmit", bad, "--snr", "1", "-o", tmp_path / "o"), "corrupted")


def test_file_from_another_checkpoint(semcom, received, other_checkpoint, tmp_path):
    out = tmp_path / "a.json"
    assert_clean_failure(semcom("decode", received, "-q", "what shape?", "-c", other_checkpoint, "-o", out),
                         "was encoded with checkpoint tiny-a")
    assert not out.exists()


def test_wrong_stage(semcom, encoded, received, tiny_checkpoint, tmp_path):
    assert_clean_failure(semcom("decode", encoded, "-q", "what shape?", "-c", tiny_checkpoint),
                         "'encode' file", "semcom transmit")
    out = tmp_path / "o.safetensors"
    assert_clean_failure(semcom("transmit", received, "--snr", "1", "-o", out), "'transmit' file")
    assert not out.exists()


def test_unknown_task(semcom, sample_png, tiny_checkpoint, tmp_path):
    assert_clean_failure(semcom("encode", sample_png, "--task", "segment", "-o", tmp_path / "o",
                                "-c", tiny_checkpoint), "unknown task 'segment'")


def test_unknown_channel(semcom, encoded, tmp_path):
    assert_clean_failure(semcom("transmit", encoded, "--channel", "wifi", "--snr", "1", "-o", tmp_path / "o"),
                         "unknown channel 'wifi'", "awgn")


@pytest.mark.parametrize("snr", ["nan", "inf", "-inf", "loud"])
def test_snr_not_finite(semcom, encoded, snr, tmp_path):
    out = tmp_path / "o.safetensors"
    assert_clean_failure(semcom("transmit", encoded, f"--snr={snr}", "-o", out), "finite number of dB")
    assert not out.exists()


def test_question_required_for_vqa(semcom, received, tiny_checkpoint):
    assert_clean_failure(semcom("decode", received, "-c", tiny_checkpoint), "needs a question")


def test_preset_unknown_field(semcom, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("name: p\nprojector: {kind: kan, tokens: 4}\n")
    out = tmp_path / "ck"
    assert_clean_failure(semcom("align", "-p", preset, "-o", out), "unknown field 'projector.tokens'")
    assert not out.exists()


def test_preset_ill_typed_field(semcom, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("name: p\ncodec: {symbols_per_token: four}\n")
    assert_clean_failure(semcom("align", "-p", preset, "-o", tmp_path / "ck"), "codec.symbols_per_token")


def test_missing_checkpoint(semcom, encoded, tmp_path):
    assert_clean_failure(semcom("encode", encoded, "--task", "vqa", "-o", tmp_path / "o",
                                "-c", tmp_path / "none"), "no such checkpoint folder")


def test_evaluate_bad_snr_list(semcom, tiny_checkpoint):
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--snr", "0,nan"), "finite number of dB")


@pytest.mark.parametrize("args, fragment", [
    (["transmit", "x.safetensors"], "Missing option '--output'"),
    (["transmit", "x.safetensors", "-o", "y", "--snr"], "'--snr' requires an argument"),
    (["teleport"], "No such command 'teleport'"),
])
def test_usage_errors_are_one_line_too(args, fragment):
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "semcom")
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and fragment in r.stderr


def test_align_resumes_a_killed_run_to_the_same_checkpoint(semcom, train_data, tmp_path):
    from semcom_cli.config.preset import apply_overrides, load_preset
    from semcom_cli.models.llm import load_backbone
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import read_manifest
    from semcom_cli.training.partial import save_partial
    from semcom_cli.training.stages import run_stage
    from semcom_cli.training.trainer import Checkpointing

    whole = tmp_path / "whole" / "ck"  # the same name: a checkpoint's name is part of what its hash covers
    assert semcom("align", "-p", "tiny", "-o", whole, "--steps", "6", "--save-every", "2").exit_code == 0

    # the same command, killed after its save at step 4
    out = tmp_path / "killed" / "ck"
    preset = apply_overrides(load_preset("tiny"), {"train.align.steps": 6, "train.align.save_every": 2})
    llm = load_backbone(preset.backbone, preset.seed)
    model = SemcomModel(preset, llm.embed_dim)
    model.llm = llm

    def save_then_die(state):
        save_partial(tmp_path / "killed" / "ck.partial", model, "align", state, history=[])
        if state.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage("align", model, llm, train_data, checkpointing=Checkpointing(2, save_then_die))
    assert not out.exists()

    assert_clean_failure(semcom("align", "-o", out, "--resume", "--steps", "8"), "drop --steps")
    r = semcom("align", "-o", out, "--resume")
    assert r.exit_code == 0, r.output
    assert "resuming align at step 4 of 6" in r.stderr
    assert read_manifest(out)["hash"] == read_manifest(whole)["hash"]
    assert not (tmp_path / "killed" / "ck.partial").exists()


def test_resume_without_a_partial_run(semcom, tiny_checkpoint, tmp_path):
    assert_clean_failure(semcom("finetune", "--stage", "channel", "-c", tiny_checkpoint,
                                "-o", tmp_path / "ck", "--resume"), "no partial run to resume")


def test_partial_run_written_while_training_and_removed_after(semcom, tiny_checkpoint, tmp_path, monkeypatch):
    import semcom_cli.training.partial as checkpoint

    seen = []
    real = checkpoint.save_partial
    monkeypatch.setattr(checkpoint, "save_partial",
                        lambda folder, *a, **k: (real(folder, *a, **k), seen.append(sorted(p.name for p in folder.iterdir()))))
    out = tmp_path / "ch"
    r = semcom("finetune", "--stage", "channel", "-c", tiny_checkpoint, "-o", out, "--steps", "4", "--save-every", "2")
    assert r.exit_code == 0, r.output
    assert seen == [["checkpoint", "resume.safetensors"]]  # saved at step 2 (not at the last step)
    assert not (tmp_path / "ch.partial").exists()


def test_a_device_that_is_not_here_is_refused_in_one_line(semcom, sample_png, tiny_checkpoint, tmp_path):
    import torch

    out = tmp_path / "o.sem"
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: tests/training/test_device.py runs on it instead")
    assert_clean_failure(semcom("encode", sample_png, "--task", "vqa", "-o", out, "-c", tiny_checkpoint,
                                "--device", "cuda"), "no CUDA GPU")
    assert_clean_failure(semcom("encode", sample_png, "--task", "vqa", "-o", out, "-c", tiny_checkpoint,
                                "--device", "tpu"), "device")
    assert not out.exists()
    r = semcom("encode", sample_png, "--task", "vqa", "-o", out, "-c", tiny_checkpoint, "--device", "cpu")
    assert r.exit_code == 0, r.output
