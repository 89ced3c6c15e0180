"""Each training stage on the tiny preset: the loss falls, and checkpoints reload exactly."""

import json

import pytest
import torch
from conftest import run_one_and_two_processes, tiny_model

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.core.errors import SemcomError
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import checkpoint_hash
from semcom_cli.training.stages import run_stage


@pytest.fixture(scope="module")
def trained(train_data):
    model, llm = tiny_model(seed=0)
    summaries = {stage: run_stage(stage, model, llm, train_data) for stage in ("align", "channel", "instruct")}
    return model, summaries


@pytest.mark.parametrize("stage", ["align", "channel"])
def test_loss_falls(trained, stage):
    s = trained[1][stage]
    assert s["final_loss"] < 0.5 * s["first_loss"], s


def test_instruct_loss_falls(trained):
    s = trained[1]["instruct"]
    assert s["final_loss"] < s["first_loss"], s


def test_instruct_trains_only_the_adapter(trained):
    model, _ = trained
    trainable = [n for n, p in model.llm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.parametrize("joint", [False, True])
def test_the_joint_stage_trains_the_codec_on_the_answer_loss(train_data, joint):
    model, llm = tiny_model(seed=0, **{"train.instruct.joint": joint, "train.instruct.steps": 2,
                                       "train.instruct.channel_fraction": 1.0})
    before = {n: p.detach().clone() for n, p in model.channel_decoder.named_parameters()}
    encoder_before = [p.detach().clone() for p in model.channel_encoder.parameters()]
    run_stage("instruct", model, llm, train_data)
    changed = [n for n, p in model.channel_decoder.named_parameters() if not torch.equal(p, before[n])]
    encoder_changed = any(not torch.equal(p, q) for p, q in zip(model.channel_encoder.parameters(), encoder_before))
    # the LLM's answer loss reaches the decoder's first layer (and the encoder, through the channel) ...
    assert (any(n.startswith("kan1") for n in changed) and encoder_changed) == joint
    # ... and without joint, nothing of the codec moves
    assert bool(changed) == joint


def test_saved_checkpoint_reloads_to_identical_outputs(trained, train_data, tmp_path):
    model, _ = trained
    digest = model.save_pretrained(tmp_path / "ck")
    loaded = SemcomModel.from_pretrained(tmp_path / "ck")
    assert loaded.hash == digest == checkpoint_hash(tmp_path / "ck")
    images = train_data.batch_images([0, 1, 2])
    with torch.no_grad():
        out = []
        for m in (model, loaded):
            tokens, mask = m.image_tokens(images)
            seed_channel(5)
            y, h = make_channel("rayleigh").send(m.encode(tokens, mask, "image"), 3.0)
            received = m.receive(y, h, 3.0, mask, "image")
            out.append((received, m.answer(["vqa", "caption", "vqa"], ["what shape?", None, "is it red?"],
                                           received, mask)))
    assert torch.equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]


def test_same_seed_same_checkpoint_bytes(train_data, tmp_path):
    digests = []
    for run in range(2):
        model, llm = tiny_model(seed=3)
        run_stage("align", model, llm, train_data)
        digests.append(model.save_pretrained(tmp_path / f"run{run}" / "ck"))
    assert digests[0] == digests[1]


def test_adapter_holds_only_the_weights_and_a_path_free_config(trained, tmp_path):
    model, _ = trained
    model.save_pretrained(tmp_path / "ck")
    adapter = tmp_path / "ck" / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == model.get_llm().model_id  # an id, not a cache path
    # peft holds the targets in a set, whose order follows the hash seed: saved sorted, the bytes do not
    targets = config["target_modules"]
    assert targets == sorted(targets) and set(targets) == set(model.preset.backbone.lora.target_modules)


def test_tampered_checkpoint_refused(trained, tmp_path):
    model, _ = trained
    model.save_pretrained(tmp_path / "ck")
    weights = tmp_path / "ck" / "projector" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(SemcomError, match="do not match the manifest's hash"):
        SemcomModel.from_pretrained(tmp_path / "ck")


def test_mlp_projector_ablation_builds_and_trains(train_data):
    model, llm = tiny_model(seed=0, projector="mlp")
    s = run_stage("align", model, llm, train_data)
    assert s["final_loss"] < s["first_loss"]


def test_word_cross_entropy_ignores_padding_and_prefers_the_right_word():
    from semcom_cli.training.stages import _vocab_cross_entropy

    vocab = torch.eye(5)
    targets = torch.tensor([[1, 3, -100]])
    right = vocab[[1, 3, 0]][None]  # the padded slot holds a word that is not a target
    wrong = vocab[[3, 1, 0]][None]
    assert _vocab_cross_entropy(right, targets, vocab) < 0.01
    assert _vocab_cross_entropy(wrong, targets, vocab) > 10
    padded_elsewhere = right.clone()
    padded_elsewhere[0, 2] = torch.randn(5)
    assert torch.isclose(_vocab_cross_entropy(padded_elsewhere, targets, vocab),
                         _vocab_cross_entropy(right, targets, vocab))


def test_caption_cross_entropy_reads_the_packet_as_a_whole():
    """The packet-level term scores captions by all their tokens together: a packet with one token
    misread alone still reads as its caption, unlike a packet read as another caption;
    images without a caption add nothing."""
    from torch.nn import functional as F

    from semcom_cli.training.stages import _caption_cross_entropy

    words = torch.eye(6)  # 3 colours (0-2) and 3 shapes (3-5); captions tile [colour, shape] twice
    captions = [(c, s) for c in range(3) for s in range(3, 6)]
    vectors = F.normalize(torch.stack([words[[c, s, c, s]] for c, s in captions]), dim=-1)
    classes = torch.tensor([captions.index((1, 4)), -1])
    right = torch.stack([words[[1, 4, 1, 4]], words[[0, 3, 0, 3]]])
    one_wrong = right.clone()
    one_wrong[0, 2] = 0.6 * words[1] + 0.8 * words[2]  # alone, this colour token reads as colour 2
    other = right.clone()
    other[0] = words[[2, 5, 2, 5]]
    loss = [_caption_cross_entropy(x, classes, vectors, classes).item() for x in (right, one_wrong, other)]
    assert loss[0] < 1e-6 and loss[1] < 1e-3 and loss[2] > 10, loss
    # the uncaptioned second image is ignored, whatever it holds
    changed = right.clone()
    changed[1] = torch.randn(4, 6)
    assert _caption_cross_entropy(changed, classes, vectors, classes).item() == loss[0]
    assert _caption_cross_entropy(right[1:], classes[1:], vectors, classes[1:]).item() == 0.0


class _Killed(Exception):
    pass


@pytest.mark.parametrize("stage", ["align", "channel", "instruct", "corpus", "retrieval"])
def test_a_killed_run_resumes_to_the_same_weights(train_data, tmp_path, stage):
    from semcom_cli.training.partial import load_partial, save_partial
    from semcom_cli.training.trainer import Checkpointing

    def prepared():
        """A tiny model ready for ``stage`` (the earlier stages run), saved and reloaded."""
        model, llm = tiny_model(seed=5)
        order = ("align", "channel", "instruct", "corpus", "retrieval")
        for earlier in order[: order.index(stage)]:
            run_stage(earlier, model, llm, train_data)
        if stage == "align":
            return model, llm
        model.save_pretrained(tmp_path / "before")  # as `semcom finetune` starts: from a saved checkpoint
        reloaded = SemcomModel.from_pretrained(tmp_path / "before")
        return reloaded, reloaded.get_llm()

    model, llm = prepared()
    whole = run_stage(stage, model, llm, train_data)
    uninterrupted = model.save_pretrained(tmp_path / "uninterrupted" / "ck")

    model, llm = prepared()
    every = max(1, getattr(model.preset.train, stage).steps // 3)

    def save_then_die(state):
        save_partial(tmp_path / "partial", model, stage, state, history=[])
        if state.step == 2 * every:  # killed right after the second save
            raise _Killed

    with pytest.raises(_Killed):
        run_stage(stage, model, llm, train_data, checkpointing=Checkpointing(every, save_then_die))

    resumed_model, state, _ = load_partial(tmp_path / "partial", stage)
    assert state.step == 2 * every
    resumed = run_stage(stage, resumed_model, resumed_model.get_llm(), train_data,
                        checkpointing=Checkpointing(resume=state))
    assert resumed["steps"] == whole["steps"] and resumed["final_loss"] == whole["final_loss"]
    assert resumed_model.save_pretrained(tmp_path / "resumed" / "ck") == uninterrupted


def test_partial_run_of_another_stage_refused(train_data, tmp_path):
    from semcom_cli.training.partial import load_partial, save_partial
    from semcom_cli.training.trainer import Checkpointing

    model, llm = tiny_model(seed=5)
    saved = []
    run_stage("align", model, llm, train_data, checkpointing=Checkpointing(10, saved.append))
    save_partial(tmp_path / "partial", model, "align", saved[0], history=[])
    with pytest.raises(SemcomError, match="partial 'align' run"):
        load_partial(tmp_path / "partial", "channel")
    (tmp_path / "partial" / "checkpoint" / "vision" / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(SemcomError):
        load_partial(tmp_path / "partial", "align")


@pytest.mark.parametrize("stage", ["align", "instruct"])
def test_two_processes_train_as_one(stage, tiny_checkpoint, tmp_path):
    """Under torchrun each process takes its share of every batch and gradients are averaged:
    the trained weights match a single-process run (up to float summation order)."""
    from semcom_cli.system import SemcomModel

    if stage == "align":
        args = ["align", "--preset", "tiny", "--steps", "4"]
    else:
        args = ["finetune", "--stage", "instruct", "-c", str(tiny_checkpoint), "--steps", "3"]
    run_one_and_two_processes(args, tmp_path / "one", tmp_path / "two")
    if stage == "align":
        init = tiny_model(0)[0].projector.state_dict()
        a, b = (SemcomModel.from_pretrained(tmp_path / run).projector.state_dict() for run in ("one", "two"))
    else:
        from safetensors.torch import load_file

        name = "adapter/adapter_model.safetensors"
        init = load_file(tiny_checkpoint / name)
        a, b = load_file(tmp_path / "one" / name), load_file(tmp_path / "two" / name)
    assert a.keys() == b.keys() == init.keys()
    update = max((a[k] - init[k]).abs().max().item() for k in a)
    gap = max((a[k] - b[k]).abs().max().item() for k in a)
    # the same steps up to float summation order: far below the size of the steps themselves
    assert update > 1e-3 and gap < 0.02 * update, (gap, update)


@pytest.mark.parametrize("question, answer, kind", [
    ("what color is the shape?", "red", "open"),
    ("is there a red shape?", "yes", "present"),
    ("is there not a red shape?", "no", "present"),
    ("is no circle present?", "yes", "absent"),
    ("does the image contain a triangle?", "no", "absent"),
])
def test_question_kind(question, answer, kind):
    from semcom_cli.data.easyvqa import question_kind

    assert question_kind(question, answer) == kind


def test_instruct_draws_open_present_and_absent_questions_evenly(train_data):
    """easy-vqa's own mix is 26 / 13 / 60 %: trained on it, the LLM answers "absent" blindly."""
    import random
    from collections import Counter

    from semcom_cli.data.easyvqa import question_kind
    from semcom_cli.tasks import get_task

    rng = random.Random(0)
    kinds = Counter(question_kind(q, a) for _, q, a in
                    (get_task("vqa").train_sample(train_data, rng) for _ in range(3000)))
    assert all(abs(kinds[k] / 3000 - 1 / 3) < 0.04 for k in ("open", "present", "absent")), kinds
