"""A few checks on the real SmolLM2-135M-Instruct backbone and the shipped checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_pipe

from semcom_cli.core.resources import default_checkpoint
from semcom_cli.models.llm import load_backbone, sha256_file, smollm2_gguf
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import read_manifest

DEFAULT_CHECKPOINT = default_checkpoint()
from semcom_cli.config.preset import load_preset

pytestmark = pytest.mark.real


CI_BENCH_TEST = "test_ci_bench_gate_passes_on_the_shipped_checkpoint"


@pytest.fixture(scope="module", autouse=True)
def ci_bench(request, tmp_path_factory):
    """``semcom evaluate --preset ci-bench`` (the longest check here), started in a process of its own as
    the module starts, when its test is to run: it keeps about one core busy for minutes while this
    module's other tests run in this process beside it, and its test, the module's last, waits for it.
    (process, its results file, its stderr); ended if still running when the module is done."""
    if not any(item.name == CI_BENCH_TEST and item.path == request.path for item in request.session.items):
        yield None
        return
    folder = tmp_path_factory.mktemp("ci-bench")
    out, log = folder / "ci.json", folder / "stderr.txt"
    exe = Path(sys.executable).parent / "semcom"
    with open(log, "wb") as stderr:
        process = subprocess.Popen([str(exe), "evaluate", "--preset", "ci-bench", "-o", str(out)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))  # no cores spun idle
    try:
        yield process, out, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def smollm2():
    return load_backbone(load_preset("smollm2").backbone)


def test_smollm2_from_the_wheel_answers_a_plain_question(smollm2):
    assert smollm2.embed_dim == 576
    assert sum(p.numel() for p in smollm2.model.parameters()) > 130e6
    tok = smollm2.tokenizer
    ids = tok("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
              return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = smollm2.model.generate(ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])


def test_shipped_checkpoint_names_this_base_model():
    manifest = read_manifest(DEFAULT_CHECKPOINT)
    assert manifest["base_model"]["sha256"] == sha256_file(smollm2_gguf())
    assert manifest["preset"]["name"] == "smollm2"
    size = sum(f.stat().st_size for f in DEFAULT_CHECKPOINT.rglob("*") if f.is_file())
    assert size < 25e6


def test_shipped_checkpoint_answers_through_a_shell_pipe(sample_png):
    # easy-vqa test image 0 is a red triangle
    assert run_pipe(sample_png, "what color is the shape?", snr=10)["answer"] == "red"
    assert run_pipe(sample_png, "what shape is in the image?", snr=10)["answer"] == "triangle"


def test_shipped_checkpoint_accuracy_on_a_fixed_sample_at_0_db(test_data):
    """A fixed 200-question sample over AWGN at 0 dB. The shipped checkpoint scores 94.8 % on the whole
    test set (README, "Issue 14's targets"). The floor guards that level, with room for sampling and
    floating-point differences between CPUs, not for a worse model."""
    from semcom_cli.evaluation import Point, Settings, evaluate_point

    model = SemcomModel.from_pretrained(DEFAULT_CHECKPOINT)
    record = evaluate_point({"main": model}, test_data, Point("semantic", "vqa", "awgn", 0.0, None),
                            Settings(limit=200, seed=0))
    accuracy = record["metrics"]["accuracy"]
    assert accuracy["n"] == 200
    assert accuracy["value"] >= 0.90, record


def test_shipped_checkpoint_shares_what_users_have_in_common(test_data):
    """The calibrated threshold on the real tokens: one scene is sent once at no cost in accuracy,
    a shared colour saves at least 30 %, scenes with nothing in common share nothing."""
    from semcom_cli.evaluation.share import SharePoint, evaluate_share_point

    model = SemcomModel.from_pretrained()
    one_scene = evaluate_share_point(model, test_data, SharePoint("same-scene", 4, "awgn", 0.0), groups=8)
    assert one_scene["saving"]["min"] == 0.75
    assert one_scene["users_changed"] == {"gained": 0, "lost": 0}
    colour = evaluate_share_point(model, test_data, SharePoint("same-color", 4, "awgn", 0.0), groups=8)
    assert colour["saving"]["min"] >= 0.3  # the two colour tokens go public in every group
    distinct = evaluate_share_point(model, test_data, SharePoint("distinct", 2, "awgn", 0.0), groups=8)
    assert distinct["saving"]["max"] == 0.0


def test_shipped_importance_follows_the_question(test_data):
    """On the shipped checkpoint a colour question's budget goes to the slots holding the colour word,
    a shape question's to the shape's (easy-vqa test image 0, a red triangle: " red triangle" tiled
    over 4 slots puts the colour in slots 0 and 2), and 8 channel uses answer both right at 10 dB."""
    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.link.rate import allocate, token_importance
    from semcom_cli.link.rate.packets import send_at_rate

    model = SemcomModel.from_pretrained(DEFAULT_CHECKPOINT)
    with torch.no_grad():
        tokens, _ = model.image_tokens(test_data.batch_images([0, 0]))
    questions = ["what color is the shape?", "what shape is in the image?"]
    weights = token_importance(model, "vqa", tokens, questions)
    assert float(weights[0, [0, 2]].sum()) > 0.8 and float(weights[1, [1, 3]].sum()) > 0.8, weights
    copies = allocate(weights, 8, model.symbols_per_token, can_leave_out=True)
    assert copies.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]
    seed_channel(0)
    with torch.no_grad():
        received, mask = send_at_rate(model, make_channel("awgn"), tokens, copies, "image", 10.0)
        assert model.answer(["vqa", "vqa"], questions, received, mask) == ["red", "triangle"]


def test_shipped_checkpoint_has_a_rate_table_for_auto():
    from semcom_cli.link.rate import RateTable

    table = RateTable.from_manifest(read_manifest(DEFAULT_CHECKPOINT), "shipped")
    assert table.split == "train" and table.task == "vqa"
    assert set(table.accuracy) == {"uniform", "content", "importance"}
    # without a question, the content column answers from 8 uses at 15 dB (one colour and one shape slot)
    assert table.choose(15.0, 0.99, "content")[0] <= 8
    low, _, _ = table.choose(-5.0, 0.95, "importance")
    high, _, _ = table.choose(20.0, 0.95, "importance")
    assert high < low  # a better channel needs fewer uses for the same accuracy


# last: the module's other tests ran while the command did (see the ci_bench fixture)
def test_ci_bench_gate_passes_on_the_shipped_checkpoint(ci_bench):
    """The CI regression gate itself: every floor of presets/ci-bench.yaml holds."""
    process, out, log = ci_bench
    assert process.wait(timeout=1800) == 0, log.read_text(errors="replace")[-2000:]
    doc = json.loads(out.read_text())
    assert doc["run"]["plan"]["name"] == "ci-bench" and len(doc["points"]) == 63
