"""Federated split fine-tuning (issue 19) on the tiny preset: the devices' data, the split step, both of
Flower's engines, what crosses, a device that leaves, partial runs and bad input."""

from __future__ import annotations

import random
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_failure
from safetensors.torch import load_file

from semcom_cli.config.preset import FederatedTrain
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.domains import STYLES, client_shards, device_shard, domain_test_set, draw_picture
from semcom_cli.models.codebook import CAPTIONS
from semcom_cli.tasks.shapes import COLORS

SMALL = {"per_client": 12, "batch_size": 4, "llm_batch": 2}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for part in ("vision", "projector", "channel_encoder", "channel_decoder"):
        out.update({f"{part}.{k}": v for k, v in load_file(folder / part / "model.safetensors").items()})
    out.update({f"adapter.{k}": v for k, v in load_file(folder / "adapter" / "adapter_model.safetensors").items()})
    return out


# --- the devices' data ------------------------------------------------------------------------


def test_shards_are_non_iid_by_colour_and_style_and_seeded():
    shards = client_shards(4, 40, seed=3)
    for i, shard in enumerate(shards):
        colours = {CAPTIONS[int(label)][0] for label in shard.labels}
        assert colours <= set(COLORS[2 * i:2 * i + 2]), (i, colours)  # two colours per device
        new = [s for s in shard.styles if s != "easy-vqa"]
        assert max(new.count(s) for s in STYLES) == new.count(STYLES[i % 3])  # its own main style
    again = device_shard(2, 4, 40, seed=3)
    assert torch.equal(again.images, shards[2].images) and torch.equal(again.labels, shards[2].labels)
    assert not torch.equal(device_shard(2, 4, 40, seed=4).images, shards[2].images)
    eight = client_shards(8, 5)
    assert [{CAPTIONS[int(x)][0] for x in s.labels} for s in eight] == [{c} for c in COLORS]


def test_test_set_covers_every_caption_in_every_style():
    images, captions, questions, answers = domain_test_set(24)
    assert images.shape == (72, 3, 64, 64) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert set(captions[:24]) == set(CAPTIONS) and len(questions) == len(answers) == 72


def test_unknown_style_refused():
    with pytest.raises(SemcomError, match="unknown picture style"):
        draw_picture("red", "circle", "sketch", random.Random(0))


# --- the split step -----------------------------------------------------------------------------


@pytest.fixture()
def split_pair(tiny_checkpoint):
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(tiny_checkpoint, {f"train.federated.{k}": v for k, v in SMALL.items()})
    return model, device_shard(0, 2, 12)


def test_split_gradient_equals_the_joint_gradient(split_pair):
    """What the device back-propagates from the server's gradient at the symbols is exactly the
    gradient of the server's loss through the whole model (the split changes nothing)."""
    from semcom_cli.federated.split import FRONT_PARTS, DeviceFront, ServerBack

    model, shard = split_pair
    cfg = model.preset.train.federated
    front = DeviceFront(model, shard, cfg, node=0, seed=0)
    back = ServerBack(model, model.get_llm(), cfg)
    params = [p for part in FRONT_PARTS for p in getattr(model, part).parameters()]
    # joint: one graph from pictures to loss
    y, act = front._forward(1, 0)
    back.loss(act, y).backward()
    joint = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    # split: the server's gradient at the received symbols, then the device's recomputed forward
    y_server = act.y.clone().requires_grad_(True)
    back.loss(act, y_server).backward()
    y_again, act_again = front._forward(1, 0)
    assert torch.equal(act_again.y, act.y)  # the recomputed step is the same step
    (y_again * y_server.grad).sum().backward()
    for a, b in zip(joint, [p.grad for p in params]):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_u_shaped_gradient_equals_the_joint_gradient(split_pair):
    """U-shaped: from the server's label-free outputs and its own labels the device computes the joint loss,
    and the gradient it returns, back-propagated by the server, gives the back and the symbols the joint
    loss's gradients (the candidates' answers scored through the KV-cache trie, the right one picked on the
    device)."""
    from semcom_cli.federated.split import Activations, DeviceFront, ServerBack, loss_gradient, step_labels

    model, shard = split_pair
    cfg = model.preset.train.federated
    front = DeviceFront(model, shard, cfg, node=0, seed=0)
    back = ServerBack(model, model.get_llm(), cfg)
    with torch.no_grad():
        _, act = front._forward(1, 0)
    labels = step_labels(shard, cfg.batch_size, 0, 0, 1, 0)
    assert torch.equal(labels, act.labels)  # the device finds its step's labels without the front
    # joint: the server's own loss, with the labels
    y_joint = act.y.clone().requires_grad_(True)
    joint_loss = back.loss(act, y_joint)
    joint_loss.backward()
    joint = {n: p.grad.clone() for n, p in back.named_parameters()}
    back.opt.zero_grad(set_to_none=True)
    # U-shaped: no labels reach the server
    blind = Activations(act.y, act.gains, act.snr, None)
    y_u = act.y.clone().requires_grad_(True)
    outputs = back.outputs(blind, y_u)
    loss, gradient = loss_gradient(outputs, labels, cfg.caption_weight)
    assert abs(loss - joint_loss.item()) < 1e-4 * max(1.0, abs(joint_loss.item()))
    torch.autograd.backward([outputs.decision, outputs.answers], [gradient.decision, gradient.answers])
    assert torch.allclose(y_u.grad, y_joint.grad, atol=1e-6, rtol=1e-3)
    for name, p in back.named_parameters():
        assert torch.allclose(p.grad, joint[name], atol=1e-6, rtol=1e-3), name


def test_a_split_step_changes_front_and_back(split_pair):
    from semcom_cli.federated.split import DeviceFront, ServerBack, front_state

    model, shard = split_pair
    cfg = model.preset.train.federated
    front = DeviceFront(model, shard, cfg, node=0, seed=0)
    back = ServerBack(model, model.get_llm(), cfg)
    before_front = front_state(model)
    before_decoder = {k: v.clone() for k, v in model.channel_decoder.state_dict().items()}
    loss, grad = back.step(front.forward(1, 0))
    front.backward(1, 0, grad)
    assert grad.shape == front.forward(1, 0).y.shape and float(grad.abs().sum()) > 0
    assert any(not torch.equal(v, front_state(model)[k]) for k, v in before_front.items())
    assert any(not torch.equal(v, model.channel_decoder.state_dict()[k]) for k, v in before_decoder.items())


def test_fedprox_pulls_the_front_back_to_the_rounds_global_front(tiny_checkpoint):
    """With a zero gradient from the server, FedAvg's device leaves a moved weight where it is and
    FedProx's pulls it back toward the round's global front."""
    from semcom_cli.federated.split import DeviceFront, front_state
    from semcom_cli.system import SemcomModel

    moved = {}
    for strategy, mu in (("fedavg", 0.0), ("fedprox", 1.0)):
        model = SemcomModel.from_pretrained(tiny_checkpoint, {"train.federated.strategy": strategy,
                                                              "train.federated.proximal_mu": mu,
                                                              **{f"train.federated.{k}": v for k, v in SMALL.items()}})
        cfg = model.preset.train.federated
        front = DeviceFront(model, device_shard(0, 2, 6), cfg, node=0, seed=0)
        front.start_round(front_state(model))
        weight = model.projector.state_dict()
        key = next(k for k, v in weight.items() if v.is_floating_point())
        with torch.no_grad():
            dict(model.projector.named_parameters())[key].add_(0.5)
        before = dict(model.projector.named_parameters())[key].detach().clone()
        front.backward(1, 0, torch.zeros_like(front.forward(1, 0).y))
        after = dict(model.projector.named_parameters())[key].detach()
        moved[strategy] = float((after - before).mean())
    assert moved["fedavg"] == 0.0
    assert moved["fedprox"] < -1e-4  # back toward the anchor, 0.5 below


def test_fedprox_needs_mu_and_fedavg_refuses_one():
    with pytest.raises(ValueError, match="proximal_mu"):
        FederatedTrain(strategy="fedprox")
    with pytest.raises(ValueError, match="fedprox"):
        FederatedTrain(proximal_mu=0.1)
    assert FederatedTrain(strategy="fedprox", proximal_mu=0.1).proximal_mu == 0.1
    with pytest.raises(ValueError, match="server_momentum"):
        FederatedTrain(strategy="fedavgm")
    with pytest.raises(ValueError, match="server_momentum"):
        FederatedTrain(server_momentum=0.5)


# --- Flower: simulation ---------------------------------------------------------------------------


def _job(checkpoint, output, **settings):
    from semcom_cli.federated.app import FederatedJob
    from semcom_cli.federated.messages import MessageLog

    overrides = {f"train.federated.{k}": v for k, v in {**SMALL, **settings}.items()}
    return FederatedJob(str(checkpoint), str(output), overrides, message_log=MessageLog(keep_payloads=True))


@pytest.fixture(scope="module")
def simulated(tiny_checkpoint, tmp_path_factory):
    """Two devices, two rounds of two steps, in Flower's simulation engine: (job, summary, output, resumable).
    Its partial run after round 1 (which the run removes once its checkpoint is written) is copied first
    to ``resumable``'s partial-run folder, as a run killed before writing its checkpoint leaves it."""
    from semcom_cli.core.files import partial_path
    from semcom_cli.federated import partial
    from semcom_cli.federated.run import run_in_simulation

    root = tmp_path_factory.mktemp("fed")
    output, resumable = root / "two", root / "resumed"
    finish = partial.finish

    def keep_the_partial_run_then_finish(out, *args, **kwargs):
        shutil.copytree(partial_path(Path(out)), partial_path(resumable))
        return finish(out, *args, **kwargs)

    job = _job(tiny_checkpoint, output, clients=2, rounds=2, local_steps=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(partial, "finish", keep_the_partial_run_then_finish)
        summary = run_in_simulation(job, 2)
    return job, summary, output, resumable


def test_simulation_writes_a_trained_checkpoint(simulated, tiny_checkpoint):
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import read_manifest

    job, summary, output, _ = simulated
    model = SemcomModel.from_pretrained(output)  # its hash checks out
    stage = read_manifest(output)["training"]["stages"][-1]
    assert stage["stage"] == "federated" and stage["rounds"] == 2 and stage["steps"] == 2 * 2 * 2
    assert stage["dropped"] == [] and not Path(str(output) + ".partial").exists()
    before, after = _weights(tiny_checkpoint), _weights(output)
    for part in ("vision", "projector", "channel_encoder", "channel_decoder", "adapter"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part
    assert model.preset.train.federated.clients == 2


def test_nothing_of_a_devices_pictures_crosses(simulated):
    """Every message is recorded: only symbols, gains, SNRs, labels, gradients, weights and settings
    cross, and no picture a device holds (as float32 or uint8 bytes, or any 64-pixel row of one)
    appears in any payload, nor any caption as text."""
    job, summary, _, _ = simulated
    log = job.message_log
    kinds = {kind for entry in log.entries for kind in entry["bytes"]}
    assert kinds <= {"symbols", "labels", "gradients", "weights", "config"}
    assert {"symbols", "labels", "gradients", "weights"} <= kinds
    blob = b"".join(log.payloads)
    for shard in client_shards(2, SMALL["per_client"]):
        for image in shard.images:
            assert image.numpy().tobytes() not in blob
            assert (image * 255).round().to(torch.uint8).numpy().tobytes() not in blob
            assert image[0, 32].numpy().tobytes() not in blob  # not even one row of one channel
    text = " ".join(log.texts)
    assert not any(f"{c} {s}" in text for c, s in CAPTIONS)
    per = summary["bytes_per_round_per_device"]
    # down: the whole front at the round's start; up: its parameters for the averaging (no buffers)
    assert per["weights_down"] > per["weights_up"] > 0 and per["symbols"] > 0 and per["gradients"] > 0
    assert summary["secure_aggregation"] is False and summary["privacy"]["epsilon"] is None


# --- the averaging's privacy: SecAgg+ and client-side clipping -----------------------------------------


@pytest.fixture(scope="module")
def secured(tiny_checkpoint, tmp_path_factory):
    """The shared run's settings with Flower's SecAgg+ averaging: (job, summary, output)."""
    from semcom_cli.federated.run import run_in_simulation

    output = tmp_path_factory.mktemp("fed-secagg") / "two"
    job = _job(tiny_checkpoint, output, clients=2, rounds=2, local_steps=2, secure_aggregation=True)
    return job, run_in_simulation(job, 2), output


def _round_start_front(log, round_: int) -> list:
    """The global front a round starts from (the averaged front of the round before), as the server sent it."""
    tags = [(raw, t) for raw, t in zip(log.payloads, log.payload_tags)
            if t["round"] == round_ and t["type"] == "train.start" and t["kind"] == "weights"]
    first = tags[0][1]["node"]
    return [a for raw, t in tags if t["node"] == first for a in _arrays(raw)]


def test_secure_aggregation_averages_what_plain_averaging_does(simulated, secured):
    """Same devices, same steps: round 1's SecAgg+ average (what round 2 starts from) is the plain run's
    within SecAgg+'s fixed point (fronts quantised to 2^22 levels over ± the secure range), not bit for bit.
    (Later rounds drift further apart: Adam turns rounding-size differences into lr-size steps.)"""
    _, plain_summary, _, _ = simulated
    job, summary, _ = secured
    assert summary["secure_aggregation"] is True and summary["steps"] == plain_summary["steps"]
    got, want = _round_start_front(job.message_log, 2), _round_start_front(simulated[0].message_log, 2)
    assert len(got) == len(want) > 0
    worst = max(float(abs(a.astype("float64") - b).max()) for a, b in zip(got, want))
    assert 0 < worst < 1e-5, worst


def _arrays(payload: bytes) -> list:
    import io

    import numpy as np

    try:
        return [np.load(io.BytesIO(payload), allow_pickle=False)]
    except ValueError:
        return []


def test_the_server_never_holds_one_devices_front_in_the_clear(simulated, secured):
    """The devices' fronts after round 1's steps are the same in both runs (same seed, same steps). The
    plain run's server receives them; the SecAgg+ run's never does: no front crosses as weights, and none
    of their arrays appears in any payload, as float32 or float64."""
    plain_log, secure_log = simulated[0].message_log, secured[0].message_log
    fronts = [a for raw, tag in zip(plain_log.payloads, plain_log.payload_tags)
              if tag["round"] == 1 and tag["direction"] == "to_server" and tag["kind"] == "weights"
              for a in _arrays(raw) if a.size >= 16]
    assert len(fronts) >= 2 * 4  # two devices' parameter arrays
    assert not any(t["direction"] == "to_server" and t["kind"] == "weights" for t in secure_log.payload_tags)
    assert {t["kind"] for t in secure_log.payload_tags} >= {"secagg", "symbols", "gradients"}
    blob = b"".join(secure_log.payloads)
    for front in fronts:
        assert front.tobytes()[:64] not in blob
        assert front.astype("float64").tobytes()[:64] not in blob
    assert all(front.tobytes()[:64] in b"".join(plain_log.payloads) for front in fronts)  # the check can fail


def test_u_shaped_clipped_secure_run_sends_no_label_and_moves_at_most_the_clip(tiny_checkpoint, tmp_path):
    """All three at once through Flower (U-shaped, SecAgg+, clipping without noise), every payload kept:
    no label array, none of the devices' step labels (as the int64 bytes a label tensor would be sent as),
    no caption text; the server's label-free scores and the devices' gradients at them cross instead; the
    averaged front moves by at most the clip (each device's update clipped by Flower's fixedclipping_mod,
    plus SecAgg+'s fixed point), and the summary says what privacy the run has (none proven without noise)."""
    from semcom_cli.federated.run import run_in_simulation
    from semcom_cli.federated.split import front_parameters, step_labels
    from semcom_cli.system import SemcomModel

    clip = 0.01
    settings = dict(clients=2, rounds=1, local_steps=2, u_shaped=True, secure_aggregation=True, dp_clip=clip)
    job = _job(tiny_checkpoint, tmp_path / "u", **settings)
    summary = run_in_simulation(job, 2)
    assert summary["u_shaped"] is True and summary["secure_aggregation"] is True and summary["steps"] == 2 * 2
    assert summary["privacy"]["clip"] == clip and summary["privacy"]["epsilon"] == "inf"
    kinds = {t["kind"] for t in job.message_log.payload_tags}
    assert "labels" not in kinds and {"scores", "score_gradients", "symbols", "gradients", "secagg"} <= kinds
    blob = b"".join(job.message_log.payloads)
    steps = set()
    for node, shard in enumerate(client_shards(2, SMALL["per_client"])):
        for step in range(2):
            labels = step_labels(shard, SMALL["batch_size"], 0, node, 1, step)
            assert labels.numpy().tobytes() not in blob
            steps.add(tuple(labels.tolist()))
    text = " ".join(job.message_log.texts)
    assert not any(f"{c} {s}" in text for c, s in CAPTIONS)
    # What the U-shape does not hide: the gradient at the decision scores is (softmax - one-hot) / B, so a
    # curious server reads every label off it (docs/federated.md says so).
    decision_gradients = [arrays[0] for raw, t in zip(job.message_log.payloads, job.message_log.payload_tags)
                          if t["kind"] == "score_gradients" for arrays in [_arrays(raw)]
                          if arrays and arrays[0].ndim == 2 and arrays[0].shape[0] == SMALL["batch_size"]]
    assert len(decision_gradients) == 2 * 2
    assert all(tuple(g.argmin(1).tolist()) in steps for g in decision_gradients)
    before = front_parameters(SemcomModel.from_pretrained(tiny_checkpoint))
    after = front_parameters(SemcomModel.from_pretrained(tmp_path / "u"))
    moved = sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before)) ** 0.5
    assert 0.5 * clip < moved <= 1.02 * clip, moved
    decoder = _weights(tmp_path / "u"), _weights(tiny_checkpoint)
    assert any(not torch.equal(decoder[0][k], decoder[1][k]) for k in decoder[1] if k.startswith("channel_decoder"))


def test_the_privacy_flags_become_the_federated_settings():
    from semcom_cli.cli.federated import federated_overrides

    privacy = {"u_shaped": True, "secure_aggregation": True, "dp_noise": 2.0, "dp_clip": 0.1}
    overrides = federated_overrides(None, None, "simulation", None, None, None, None, None, privacy)
    assert overrides == {f"train.federated.{k}": v for k, v in privacy.items()}
    assert federated_overrides(None, None, "simulation", None, None, None, None, None,
                               {"u_shaped": None, "secure_aggregation": None, "dp_noise": None, "dp_clip": None}) == {}


# --- Flower: deployment ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(tiny_checkpoint, tmp_path_factory):
    """One deployment-engine run serves the two tests below: two rounds of one step with the run's two
    SuperNodes, over TLS with SuperNode authentication, while three strangers try to join: a SuperNode
    with a key pair of its own, one with no key, and one whose key was registered on the SuperLink's
    Control API as anyone on the machine could. Device 1 is stopped once round 1 is saved, as round 2
    starts. Returns (output, what the run's hooks saw)."""
    from semcom_cli.federated.credentials import make_node_key
    from semcom_cli.federated.deployment import run_in_deployment

    root = tmp_path_factory.mktemp("deployed")
    output = root / "deployed"
    job = _job(tiny_checkpoint, output, clients=2, rounds=2, local_steps=1)
    # the device that leaves is reported gone by the SuperLink well before this; the margin is for round 1's
    # first replies, which start the devices' ClientApps, on a slow machine
    job.engine, job.reply_timeout = "deployment", 60.0
    seen = {}

    def strangers_join(federation):
        keys = root / "stranger-keys"
        own = make_node_key(keys, "own")
        seen["own-key"] = federation.start_supernode("stranger-own-key", own.private,
                                                     "partition-id=0 num-partitions=2")
        seen["no-key"] = federation.start_supernode("stranger-no-key", None, "partition-id=1 num-partitions=2")
        registered = make_node_key(keys, "registered")
        seen["registered-node"] = federation.register(registered.public)
        seen["registered"] = federation.start_supernode("stranger-registered", registered.private,
                                                        "partition-id=1 num-partitions=2")
        seen["own-nodes"] = list(federation.nodes)
        seen["logs"] = federation.root / "logs"

    def leave_later(federation):  # device 1 leaves once round 1 is saved, as round 2 starts
        def watch():
            deadline = time.time() + 300
            while time.time() < deadline and not Path(str(output) + ".partial").exists():
                time.sleep(0.2)
            federation.processes["device1"].terminate()

        threading.Thread(target=watch, daemon=True).start()

    def on_started(federation):
        strangers_join(federation)
        leave_later(federation)

    run_in_deployment(job, 2, timeout=420, on_started=on_started)
    return output, seen


def test_deployment_engine_two_supernodes_and_no_stranger_joins(deployed):
    """None of the strangers is sent a message or averaged in; the run completes with the run's two
    devices (both in round 1, device 0 alone in round 2, see the next test)."""
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import read_manifest

    output, seen = deployed
    SemcomModel.from_pretrained(output)
    stage = read_manifest(output)["training"]["stages"][-1]
    own = seen["own-nodes"]
    assert stage["engine"] == "deployment" and stage["rounds"] == 2 and stage["clients"] == 2
    assert [d for d in stage["dropped"] if d["round"] == 1] == []  # both devices did round 1
    assert stage["bytes_per_round_per_device"]["symbols"] > 0
    assert len(set(own)) == 2 and seen["registered-node"] not in own
    # every message the server sent or received was to or from one of the run's two nodes, both of them
    assert set(stage["nodes"]) == set(own)
    assert not seen["logs"].exists()  # the run's folder (keys, certificates, logs) is gone
    for name in ("own-key", "no-key", "registered"):
        assert seen[name].poll() is not None  # ended with the run


def test_a_device_that_leaves_mid_run_does_not_corrupt_the_model(deployed):
    """One of two SuperNodes is stopped while the run goes on: the rounds finish with the other, the
    strategy averages what it received, and the checkpoint is whole."""
    from semcom_cli.system.checkpoint import read_manifest

    output, seen = deployed
    stage = read_manifest(output)["training"]["stages"][-1]
    assert stage["rounds"] == 2 and stage["dropped"] == [{"round": 2, "node": seen["own-nodes"][1]}], stage
    weights = _weights(output)
    assert all(torch.isfinite(v).all() for v in weights.values())


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    (["--engine", "grpc"], "unknown engine"),
    (["--clients", "0"], "clients"),
    (["--rounds", "0"], "rounds"),
    (["--lr", "0.1"], "--lr"),
    (["--device", "cuda"], "CPU"),
    (["--dp-noise", "1.0"], "dp_clip"),
    (["--dp-clip", "0"], "dp_clip"),
    (["--secagg", "--clients", "1"], "at least 2"),
])
def test_bad_federated_flags_get_one_line(tiny_checkpoint, tmp_path, args, fragment, semcom):
    result = semcom(*["finetune", "--stage", "federated", "-c", str(tiny_checkpoint), "-o", str(tmp_path / "x"),
                     *args])
    assert_clean_failure(result, fragment)
    assert not (tmp_path / "x").exists()


def test_federated_flags_belong_to_the_federated_stage(tiny_checkpoint, tmp_path, semcom):
    result = semcom(*["finetune", "--stage", "channel", "-c", str(tiny_checkpoint), "-o", str(tmp_path / "x"),
                     "--clients", "2"])
    assert_clean_failure(result, "--stage federated")
    for flag in (["--secagg"], ["--dp-clip", "0.1"], ["--dp-noise", "1"]):
        result = semcom(*["finetune", "--stage", "channel", "-c", str(tiny_checkpoint), "-o", str(tmp_path / "x"),
                         *flag])
        assert_clean_failure(result, "--stage federated")


def test_resume_without_a_partial_run_or_with_flags(tiny_checkpoint, tmp_path, semcom):
    assert_clean_failure(semcom(*["finetune", "--stage", "federated", "-o", str(tmp_path / "x"), "--resume"]),
                         "no partial run")
    assert_clean_failure(semcom(*["finetune", "--stage", "federated", "-o", str(tmp_path / "x"), "--resume",
                                 "--rounds", "3"]), "--resume")
