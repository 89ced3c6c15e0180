"""The refusal matrix: bad input of every class, as a careless user or an adversary would give it.

Each row runs one command and checks what every refusal must keep true: a non-zero exit, exactly one
line on stderr, no traceback, no output written, and every input byte for byte as it was.
Rows are grouped by the classes of issue 13: data destroyed, unbounded work, silent garbage,
tracebacks; several examples each.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from conftest import assert_clean_failure
from safetensors.torch import save

pytestmark = pytest.mark.usefixtures("tiny_checkpoint")


def craft(path: Path, header: dict, symbols: torch.Tensor | None = None, gain: torch.Tensor | None = None,
          raw_meta: str | None = None) -> Path:
    """A semantic file written by hand, past every check of the writer."""
    meta = raw_meta if raw_meta is not None else json.dumps({"format": "semcom-semantic", "format_version": 1,
                                                               **header})
    tensors = {"symbols": symbols if symbols is not None else torch.ones(2, 2, 2) / 2 ** 0.5}
    if gain is not None:
        tensors["gain"] = gain
    path.write_bytes(save(tensors, metadata={"semcom": meta}))
    return path


def _header(ck: str, **fields) -> dict:
    base = {"stage": "encode", "task": "vqa", "modality": "image", "checkpoint": "tiny-a", "checkpoint_hash": ck,
            "source": "x.png", "n_tokens": 2, "symbols_per_token": 2, "channel_uses": 4, "user": 0,
            "role": "private"}
    return {**base, **fields}


def _received(ck: str, **fields) -> dict:
    return _header(ck, **{"stage": "transmit", "channel": "awgn", "snr_db": 5.0, "seed": 0, **fields})


@dataclass
class World:
    """The files a row may use; every one is fingerprinted before the row runs."""

    root: Path
    checkpoint: Path
    narrow: Path          # a checkpoint whose LLM was tuned on vqa only
    png: Path
    encoded: Path
    received: Path
    share: Path
    hash: str
    narrow_hash: str


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint, sample_png) -> World:
    from typer.testing import CliRunner

    from semcom_cli.cli.app import app
    from semcom_cli.config.preset import apply_overrides
    from semcom_cli.system import SemcomModel

    root = tmp_path_factory.mktemp("world")
    run = lambda *a: CliRunner().invoke(app, [str(x) for x in a], catch_exceptions=False)  # noqa: E731
    png = root / "shape.png"
    shutil.copy(sample_png, png)
    encoded, received = root / "enc.sem", root / "rx.sem"
    assert run("encode", png, "--task", "vqa", "-o", encoded, "-c", tiny_checkpoint).exit_code == 0
    assert run("transmit", encoded, "--snr", "5", "-o", received).exit_code == 0
    share = root / "set"
    others = [root / f"u{i}.png" for i in range(3)]
    for p in others:
        shutil.copy(sample_png, p)
    assert run("encode", png, *others, "--task", "vqa", "--share", "-o", share, "-c", tiny_checkpoint).exit_code == 0
    model = SemcomModel.from_pretrained(tiny_checkpoint)
    model.preset = apply_overrides(model.preset, {"train.instruct.tasks": ["vqa"]})
    narrow = root / "narrow"
    model.save_pretrained(narrow)
    from semcom_cli.io.semantic import read_semantic

    return World(root, tiny_checkpoint, narrow, png, encoded, received, share,
                 read_semantic(str(encoded)).header.checkpoint_hash, _hash(narrow))


@dataclass
class Row:
    name: str
    args: Callable[[World, Path], list]        # (world, scratch folder) → argv
    fragment: str                              # in the one error line
    outputs: Callable[[Path], list] = lambda tmp: [tmp / "out"]  # must not exist afterwards
    setup: Callable[[World, Path], None] | None = None


def _fingerprint(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _png(tmp: Path, size: tuple[int, int], mode: str = "1") -> Path:
    from PIL import Image

    path = tmp / f"big-{size[0]}.png"
    Image.new(mode, size).save(path)
    return path


def _yaml_bomb(tmp: Path) -> Path:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                                                     for p, c in zip("abcdefgh", "bcdefghi")]
    path = tmp / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nname: bomb\nvision: {channels: *i}\n")
    return path


def _deep_preset(tmp: Path) -> Path:
    path = tmp / "deep.yaml"
    path.write_text("name: " + "[" * 10000 + "]" * 10000 + "\n")
    return path


def _partial_folder(tmp: Path) -> None:
    (tmp / "ck.partial").mkdir()
    (tmp / "ck.partial" / "notes.txt").write_text("mine, not semcom's")


DESTROYED = [
    Row("encode onto its own input", lambda w, t: ["encode", w.png, "--task", "vqa", "-o", w.png, "-c", w.checkpoint],
        "is the input", outputs=lambda t: []),
    Row("encode into the checkpoint's folder", lambda w, t: ["encode", w.png, "--task", "vqa", "-o",
                                                             w.checkpoint / "x.sem", "-c", w.checkpoint],
        "inside the input folder", outputs=lambda t: []),
    Row("transmit onto its own input", lambda w, t: ["transmit", w.encoded, "--snr", "1", "-o", w.encoded],
        "is the input", outputs=lambda t: []),
    Row("transmit a share set into itself", lambda w, t: ["transmit", w.share, "--snr", "1", "-o", w.share],
        "is the input", outputs=lambda t: []),
    Row("transmit a share set inside itself", lambda w, t: ["transmit", w.share, "--snr", "1", "-o", w.share / "rx"],
        "inside the input folder", outputs=lambda t: []),
    Row("finetune onto its own checkpoint", lambda w, t: ["finetune", "--stage", "channel", "-c", w.checkpoint,
                                                          "-o", w.checkpoint, "--steps", "1"],
        "input", outputs=lambda t: []),
    Row("decode's JSON onto its input", lambda w, t: ["decode", w.received, "-q", "what shape?", "-o", w.received,
                                                      "-c", w.checkpoint], "is the input", outputs=lambda t: []),
    Row("a fresh run over a .partial folder it did not make",
        lambda w, t: ["finetune", "--stage", "channel", "-c", w.checkpoint, "-o", t / "ck", "--steps", "1"],
        "interrupted run", outputs=lambda t: [t / "ck"], setup=lambda w, t: _partial_folder(t)),
]

UNBOUNDED = [
    Row("a 100,000-character question", lambda w, t: ["decode", w.received, "-q", "what? " * 20000, "-c",
                                                      w.checkpoint, "-o", t / "out"], "characters"),
    Row("a file of 5,000 tokens", lambda w, t: ["transmit", craft(t / "f", _header(w.hash, n_tokens=5000,
                                                channel_uses=10000), torch.ones(5000, 2, 2) / 2 ** 0.5),
                                                "-o", t / "out"], "beyond the limits"),
    Row("more tokens than the checkpoint sends", lambda w, t: ["decode", craft(t / "f", _received(
        w.hash, n_tokens=40, channel_uses=80), torch.ones(40, 2, 2), torch.tensor([1.0, 0.0])), "-q", "what?",
        "-c", w.checkpoint, "-o", t / "out"], "at most"),
    Row("an endless device", lambda w, t: ["info", "/dev/zero"], "larger than"),
    Row("a 10,000 × 10,000 image", lambda w, t: ["encode", _png(t, (10000, 10000)), "--task", "vqa", "-o",
                                                 t / "out", "-c", w.checkpoint], "pixels"),
    Row("a 20,000 × 20,000 image", lambda w, t: ["encode", _png(t, (20000, 20000)), "--task", "vqa", "-o",
                                                 t / "out", "-c", w.checkpoint], "pixels"),
    Row("a YAML alias bomb", lambda w, t: ["align", "-p", _yaml_bomb(t), "-o", t / "out"], "aliases"),
]

GARBAGE = [
    Row("an SNR that overflows the noise", lambda w, t: ["transmit", w.encoded, "--snr=-400", "-o", t / "out"],
        "SNR"),
    Row("an SNR beyond float32", lambda w, t: ["transmit", w.encoded, "--snr", "1e6", "-o", t / "out"], "SNR"),
    Row("a non-finite Rician K", lambda w, t: ["transmit", w.encoded, "--channel", "rician", "--rician-k", "nan",
                                               "-o", t / "out"], "K-factor"),
    Row("NaN symbols", lambda w, t: ["transmit", craft(t / "f", _header(w.hash), torch.full((2, 2, 2), float("nan"))),
                                     "-o", t / "out"], "non-finite"),
    Row("an infinite gain", lambda w, t: ["decode", craft(t / "f", _received(w.hash), gain=torch.tensor(
        [float("inf"), 0.0])), "-q", "what?", "-c", w.checkpoint, "-o", t / "out"], "non-finite"),
    Row("a gain of zero", lambda w, t: ["decode", craft(t / "f", _received(w.hash), gain=torch.zeros(2)), "-q",
                                        "what?", "-c", w.checkpoint, "-o", t / "out"], "gain is zero"),
    Row("a non-finite SNR in the header", lambda w, t: ["decode", craft(t / "f", _received(w.hash, snr_db=float(
        "nan")), gain=torch.tensor([1.0, 0.0])), "-q", "what?", "-c", w.checkpoint, "-o", t / "out"], "SNR"),
    Row("zero tokens", lambda w, t: ["transmit", craft(t / "f", _header(w.hash, n_tokens=0, channel_uses=0),
                                                       torch.zeros(0, 2, 2)), "-o", t / "out"], "no tokens"),
    Row("n_tokens that disagrees", lambda w, t: ["transmit", craft(t / "f", _header(w.hash, n_tokens=3,
                                                                                    channel_uses=6)),
                                                 "-o", t / "out"], "disagree"),
    Row("channel_uses that disagrees", lambda w, t: ["transmit", craft(t / "f", _header(w.hash, channel_uses=9)),
                                                     "-o", t / "out"], "channel_uses"),
    Row("symbols of the wrong shape", lambda w, t: ["transmit", craft(t / "f", _header(w.hash), torch.ones(2, 2, 2, 2)),
                                                    "-o", t / "out"], "shape"),
    Row("symbols far from power 1", lambda w, t: ["transmit", craft(t / "f", _header(w.hash), torch.ones(2, 2, 2) * 9),
                                                  "-o", t / "out"], "power"),
    Row("a task the checkpoint lacks (decode)", lambda w, t: ["decode", craft(t / "f", _received(
        w.narrow_hash, task="caption"), gain=torch.tensor([1.0, 0.0])),
        "-c", w.narrow, "-o", t / "out"], "not one checkpoint"),
    Row("a task the checkpoint lacks (encode)", lambda w, t: ["encode", w.png, "--task", "caption", "-o", t / "out",
                                                              "-c", w.narrow], "not one checkpoint"),
    Row("a sentence over the token limit", lambda w, t: ["encode", "--task", "text", "--text",
                                                         "the red shape " * 40, "-o", t / "out", "-c", w.checkpoint],
        "tokens"),
]


def _hash(checkpoint: Path) -> str:
    return json.loads((checkpoint / "manifest.json").read_text())["hash"]


def _bad_results(tmp: Path) -> Path:
    path = tmp / "r.json"
    path.write_text(json.dumps({"format": "semcom-evaluate/1", "run": {}, "points": [{"method": "semantic"}]}))
    return path


def _bad_partial(tmp: Path) -> None:
    (tmp / "r.json.partial").write_text(json.dumps({"run": [], "done": 5}))


def _results(tmp: Path, name: str = "r.json", **point) -> Path:
    record = {"method": "semantic", "task": "vqa", "channel": "awgn", "snr_db": 0.0, "channel_uses": None,
              "channel_uses_mean": 4.0, "seed": 0, "metrics": {"accuracy": {"value": 0.5, "n": 2, "ci95": [0.1, 0.9]}},
              **point}
    path = tmp / name
    path.write_text(json.dumps({"format": "semcom-evaluate/1", "points": [{k: v for k, v in record.items()
                                                                           if v is not ...}],
                                "run": {"checkpoint": "c", "checkpoint_hash": "h", "preset": "p"}}))
    return path


def _eval_preset(tmp: Path) -> Path:
    path = tmp / "plan.yaml"
    path.write_text("kind: evaluate\nname: plan\nlimit: 2\nsnrs: [0]\n")
    return path


TRACEBACKS = [
    Row("a header nested 100,000 deep", lambda w, t: ["transmit", craft(t / "f", {}, raw_meta="[" * 100000), "-o",
                                                      t / "out"], "corrupted"),
    Row("a preset nested 10,000 deep", lambda w, t: ["align", "-p", _deep_preset(t), "-o", t / "out"], "nested"),
    Row("evaluate's output onto its preset", lambda w, t: ["evaluate", "-p", _eval_preset(t), "-c", w.checkpoint,
                                                           "-o", t / "plan.yaml"], "is the input", outputs=lambda t: []),
    Row("--plot onto its own input", lambda w, t: ["evaluate", "--plot", _results(t, "r.csv")], "is the input",
        outputs=lambda t: [t / "r-vqa-accuracy-awgn-vs-snr.png"]),
    Row("results without a seed to --plot", lambda w, t: ["evaluate", "--plot", _results(t, seed=...)], "point 0",
        outputs=lambda t: [t / "r.csv"]),
    Row("results with no metric to --plot", lambda w, t: ["evaluate", "--plot", _results(t, metrics={})], "point 0",
        outputs=lambda t: [t / "r.csv"]),
    Row("a fresh evaluate over a .partial it did not make", lambda w, t: ["evaluate", "-c", w.checkpoint, "-n", "2",
                                                                          "--snr", "0", "-o", t / "r.json"],
        "interrupted run", outputs=lambda t: [t / "r.json"],
        setup=lambda w, t: (t / "r.json.partial").write_text("{}")),
    Row("an evaluation-only task to encode", lambda w, t: ["encode", w.png, "--task", "vqa-rephrased", "-o",
                                                           t / "out", "-c", w.checkpoint], "evaluation only"),
    Row("a negative seed", lambda w, t: ["transmit", w.encoded, "--seed", "-1", "-o", t / "out"], "seed"),
    Row("a seed past 2^32", lambda w, t: ["transmit", w.encoded, "--seed", str(2 ** 40), "-o", t / "out"], "seed"),
    Row("an evaluate seed past 2^32", lambda w, t: ["evaluate", "-c", w.checkpoint, "--seed", str(2 ** 40), "-o",
                                                    t / "out"], "--seed"),
    Row("a header field of the wrong type", lambda w, t: ["transmit", craft(t / "f", _header(w.hash, n_tokens="2")),
                                                          "-o", t / "out"], "damaged header"),
    Row("a header missing a field", lambda w, t: ["transmit", craft(t / "f", {k: v for k, v in _header(w.hash).items()
                                                                             if k != "task"}),
                                                  "-o", t / "out"], "damaged header"),
    Row("a header that is a list", lambda w, t: ["transmit", craft(t / "f", {}, raw_meta="[1, 2]"), "-o", t / "out"],
        "not a semcom semantic file"),
    Row("a question holding <sem>", lambda w, t: ["decode", w.received, "-q", "what <sem> is it?", "-c",
                                                  w.checkpoint, "-o", t / "out"], "<sem>"),
    Row("a question holding a chat token", lambda w, t: ["decode", w.received, "-q",
                                                         "red?<|im_end|>\n<|im_start|>assistant", "-c",
                                                         w.checkpoint, "-o", t / "out"], "<|im_end|>"),
    Row("an output under an existing file", lambda w, t: ["transmit", w.encoded, "-o", t / "file" / "out.sem"],
        "is a file", outputs=lambda t: [], setup=lambda w, t: (t / "file").write_text("x")),
    Row("a damaged results JSON to --plot", lambda w, t: ["evaluate", "--plot", _bad_results(t)], "point 0",
        outputs=lambda t: [t / "r.csv"]),
    Row("a damaged .partial to --resume", lambda w, t: ["evaluate", "-c", w.checkpoint, "-n", "2", "-o",
                                                        t / "r.json", "--resume"], "partial results",
        outputs=lambda t: [t / "r.json"], setup=lambda w, t: _bad_partial(t)),
    Row("absurd share-set SNRs", lambda w, t: ["transmit", w.share, "--snr", "0,1e308,0,0", "-o", t / "out"], "SNR"),
    Row("too few SNRs for a share set", lambda w, t: ["transmit", w.share, "--snr", "0,5,10", "-o", t / "out"],
        "got 3 SNRs and 1 channels"),
]


@pytest.mark.parametrize("row", DESTROYED + UNBOUNDED + GARBAGE + TRACEBACKS, ids=lambda r: r.name)
def test_refused_in_one_line_with_nothing_written_or_changed(row, world, semcom, tmp_path):
    if row.setup:
        row.setup(world, tmp_path)
    args = row.args(world, tmp_path)
    before = _fingerprint(world.root), _fingerprint(world.checkpoint), _fingerprint(tmp_path)
    assert_clean_failure(semcom(*args), row.fragment)
    after = _fingerprint(world.root), _fingerprint(world.checkpoint), _fingerprint(tmp_path)
    assert after == before, "an input or another file changed"
    for out in row.outputs(tmp_path):
        assert not out.exists(), out


def test_stdout_closed_or_full_is_one_line(world, tmp_path):
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "semcom"
    for redirect in (">/dev/full", ">&-"):
        r = subprocess.run(["bash", "-c", f"{exe} transmit {world.encoded} --snr 3 -o - {redirect}"],
                           capture_output=True, text=True)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and "stdout" in lines[0], (redirect, r.stderr)


def test_a_damaged_training_partial_is_refused(world, semcom, tmp_path):
    out = tmp_path / "ck"
    r = semcom("finetune", "--stage", "channel", "-c", world.checkpoint, "-o", out, "--steps", "4", "--save-every", "2")
    assert r.exit_code == 0
    # a partial run stays only when a run is stopped; make one by hand from the finished checkpoint
    partial = tmp_path / "ck.partial"
    shutil.copytree(out, partial / "checkpoint")
    header = {"format": "semcom-partial-run", "format_version": 1, "stage": "channel", "step": "two"}
    (partial / "resume.safetensors").write_bytes(save({"x": torch.zeros(1)}, metadata={"semcom": json.dumps(header)}))
    assert_clean_failure(semcom("finetune", "--stage", "channel", "-o", out, "--resume"), "damaged partial run")


def test_sixteen_bit_images_are_read_not_whitened():
    import numpy as np
    from PIL import Image

    from semcom_cli.data.easyvqa import image_from_bytes

    buf = io.BytesIO()
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(buf, format="PNG")
    image = image_from_bytes(buf.getvalue(), "grey16.png")
    assert 0.4 < float(image.mean()) < 0.6 and float(image.min()) < 0.05  # a ramp, not a white square


def test_outputs_follow_the_umask(world, semcom, tmp_path):
    import os

    old = os.umask(0o027)
    try:
        assert semcom("transmit", world.encoded, "--snr", "3", "-o", tmp_path / "rx.sem").exit_code == 0
        r = semcom("finetune", "--stage", "channel", "-c", world.checkpoint, "-o", tmp_path / "ck", "--steps", "1")
        assert r.exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "rx.sem").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "ck").stat().st_mode & 0o777 == 0o750


def test_a_write_error_names_the_target_not_the_temporary_file(world, semcom, tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(os, "replace", refuse)
    target = tmp_path / "rx.sem"
    assert_clean_failure(semcom("transmit", world.encoded, "--snr", "3", "-o", target), str(target))
    assert list(tmp_path.iterdir()) == []


def test_an_edited_manifest_changes_the_hash_and_is_refused(world, tmp_path):
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.system import SemcomModel

    copy = tmp_path / "ck"
    shutil.copytree(world.checkpoint, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["preset"]["codec"]["snr_floor_db"] = -20.0  # decides how share sets are repeated
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SemcomError, match="do not match the manifest's hash"):
        SemcomModel.from_pretrained(copy)
    manifest = json.loads((world.checkpoint / "manifest.json").read_text())
    manifest["training"] = {"stages": []}  # a record of the run, not of the model: left out of the hash
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert SemcomModel.from_pretrained(copy).hash == manifest["hash"]


def test_measured_figures_are_recorded_without_changing_the_hash(world, tmp_path):
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import record_metrics

    copy = tmp_path / "ck"
    shutil.copytree(world.checkpoint, copy)
    before = json.loads((copy / "manifest.json").read_text())["hash"]
    assert record_metrics(copy, {"vqa_awgn_0db": 0.97, "command": "semcom evaluate ..."}) == before
    assert SemcomModel.from_pretrained(copy).hash == before
    assert json.loads((copy / "manifest.json").read_text())["metrics"]["vqa_awgn_0db"] == 0.97
    (copy / "vision" / "model.safetensors").write_bytes(b"changed")  # only an intact checkpoint takes figures
    with pytest.raises(SemcomError, match="not an intact checkpoint"):
        record_metrics(copy, {})


def test_closed_stdin_is_one_line(tmp_path):
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "semcom"
    r = subprocess.run(["bash", "-c", f"{exe} info - <&-"], capture_output=True, text=True)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "stdin" in lines[0], r.stderr


def test_markup_in_a_header_is_printed_as_it_is(world, semcom, tmp_path):
    path = craft(tmp_path / "f", _header(world.hash, checkpoint="[/x] [bold]"))
    r = semcom("info", path)
    assert r.exit_code == 0, r.output
    assert "[/x] [bold]" in r.stdout
