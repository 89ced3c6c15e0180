"""Shared fixtures: a tiny trained checkpoint (random 2-layer Llama), the CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from semcom_cli.cli.app import app

REPO = Path(__file__).resolve().parent.parent
SAMPLE_IMAGE_ID = 0  # easy-vqa test image 0: a red triangle


def tiny_model(seed: int = 0, projector: str = "kan", **overrides):
    from semcom_cli.config.preset import apply_overrides, load_preset
    from semcom_cli.models.llm import load_backbone
    from semcom_cli.system import SemcomModel

    preset = apply_overrides(load_preset("tiny"), {"seed": seed, "projector.kind": projector, **overrides})
    llm = load_backbone(preset.backbone, preset.seed)
    model = SemcomModel(preset, llm.embed_dim)
    model.llm = llm
    return model, llm


@pytest.fixture(scope="session")
def train_data():
    from semcom_cli.data.easyvqa import EasyVQA

    return EasyVQA.load("train")


@pytest.fixture(scope="session")
def test_data():
    from semcom_cli.data.easyvqa import EasyVQA

    return EasyVQA.load("test")


def _train_tiny(folder: Path, data, seed: int) -> Path:
    from semcom_cli.training.stages import run_stage

    model, llm = tiny_model(seed)
    history = [run_stage(stage, model, llm, data) for stage in ("align", "channel", "instruct")]
    model.save_pretrained(folder, training={"stages": history})
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, train_data) -> Path:
    return _train_tiny(tmp_path_factory.mktemp("ckpt") / "tiny-a", train_data, seed=0)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory, train_data) -> Path:
    return _train_tiny(tmp_path_factory.mktemp("ckpt") / "tiny-b", train_data, seed=1)


@pytest.fixture(scope="session")
def sample_png(tmp_path_factory) -> Path:
    import easy_vqa

    src = Path(easy_vqa.get_test_image_paths()[SAMPLE_IMAGE_ID])
    dst = tmp_path_factory.mktemp("img") / "shape.png"
    dst.write_bytes(src.read_bytes())
    return dst


def run_pipe(image: Path, question: str, snr: float = 5.0, checkpoint: Path | None = None) -> dict:
    """encode | transmit | decode as real processes joined by shell pipes; returns decode's JSON."""
    import json
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "semcom")
    ck = f"-c {checkpoint}" if checkpoint else ""
    cmd = (f"set -o pipefail; {exe} encode {image} --task vqa {ck} -o - "
           f"| {exe} transmit - --channel awgn --snr {snr} --seed 1 -o - "
           f"| {exe} decode - --question '{question}' {ck} --json")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=os.environ)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def run_one_and_two_processes(args: list[str], one: Path, two: Path) -> None:
    """Run ``semcom ARGS -o ONE`` plainly and ``-o TWO`` under torchrun with 2 processes (1 thread each)."""
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for launcher, out in (([], one), ([str(exe / "torchrun"), "--standalone", "--nproc_per_node", "2",
                                        "--no-python"], two)):
        r = subprocess.run([*launcher, str(exe / "semcom"), *args, "-o", str(out)],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr


class Semcom:
    """Runs the CLI in-process and returns the click Result."""

    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args, input: bytes | None = None):
        return self.runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def semcom() -> Semcom:
    return Semcom()


def assert_clean_failure(result, *fragments: str) -> None:
    """Exit code 2, exactly one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("semcom: error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
