"""Every checkpoint part is loaded through one reader, which refuses weights that are not finite: a run that
diverged never decodes to nonsense, whatever the checkpoint's kind."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from semcom_cli.core.errors import SemcomError
from semcom_cli.io.checkpoint import checkpoint_hash


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_semcom_checkpoint_with_non_finite_weights_is_refused_in_one_line(tiny_checkpoint, tmp_path, value):
    from semcom_cli.system import SemcomModel

    damaged = tmp_path / "diverged"
    shutil.copytree(tiny_checkpoint, damaged)
    weights = damaged / "projector" / "model.safetensors"
    state = load_file(weights)
    name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = value
    save_file(state, weights)
    manifest = json.loads((damaged / "manifest.json").read_text())  # re-hashed: only the values are wrong
    manifest["hash"] = checkpoint_hash(damaged, manifest)
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SemcomError, match=r"part 'projector': its weights hold non-finite values"):
        SemcomModel.from_pretrained(damaged)
    SemcomModel.from_pretrained(tiny_checkpoint)  # the intact one loads
    assert torch.isfinite(load_file(tiny_checkpoint / "projector" / "model.safetensors")[name]).all()
