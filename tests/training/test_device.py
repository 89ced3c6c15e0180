"""On a machine with a CUDA GPU: one training step and one evaluate point run there, and agree with
the CPU within float tolerance. Skipped where there is no GPU (CI runs on CPU)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_one_training_step_on_the_gpu(train_data):
    from semcom_cli.config.preset import apply_overrides
    from semcom_cli.training.stages import run_stage

    model, llm = tiny_model(seed=0)
    model.preset = apply_overrides(model.preset, {"device": "cuda", "train.channel.steps": 1})
    model.to("cuda")
    llm.model.to("cuda")
    summary = run_stage("channel", model, llm, train_data)
    assert summary["steps"] == 1 and torch.isfinite(torch.tensor(summary["final_loss"]))
    assert next(model.channel_decoder.parameters()).device.type == "cuda"


def test_one_evaluate_point_on_the_gpu_matches_the_cpu(tiny_checkpoint, test_data):
    from semcom_cli.evaluation import Point, Settings, evaluate_point
    from semcom_cli.system import SemcomModel

    point, settings = Point("semantic", "vqa", "awgn", 10.0, None), Settings(limit=8, seed=0)
    records = [evaluate_point({"main": SemcomModel.from_pretrained(tiny_checkpoint, device=d)}, test_data, point,
                              settings) for d in ("cpu", "cuda")]
    assert records[0]["metrics"]["accuracy"]["n"] == records[1]["metrics"]["accuracy"]["n"] == 8
