"""Reconstruct checkpoints written before every model shared one checkpoint layout: an old folder is
refused in one line that says how to convert it, and the conversion keeps every tensor and setting."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import assert_clean_failure
from safetensors.torch import load_file, save_file

from semcom_cli.core.errors import SemcomError
from semcom_cli.io.checkpoint import checkpoint_hash
from semcom_cli.reconstruct.convert import OLD_FORMAT, convert
from semcom_cli.reconstruct.model import ReconstructModel, default_scenes_checkpoint

# the old flat file of each part, and the prefix its tensors had there
OLD_FILES = {"guide_net": ("guidance.safetensors", "net."), "referent_parser": ("guidance.safetensors", "parser."),
             "encoder": ("codec.safetensors", "encoder."), "decoder": ("codec.safetensors", "decoder."),
             "vae": ("vae.safetensors", ""), "diffusion": ("diffusion.safetensors", ""),
             "scene_features": ("features.safetensors", "")}


@pytest.fixture(scope="module")
def old_folder(tmp_path_factory):
    """The shipped reconstruct checkpoint as the previous semcom wrote it: flat files, its own format."""
    shipped = default_scenes_checkpoint()
    manifest = json.loads((shipped / "manifest.json").read_text())
    folder = tmp_path_factory.mktemp("old") / "semcom-scenes"
    folder.mkdir()
    files: dict[str, dict] = {}
    for part, (name, prefix) in OLD_FILES.items():
        files.setdefault(name, {}).update({prefix + k: v for k, v in
                                           load_file(shipped / part / "model.safetensors").items()})
    for name, tensors in files.items():
        save_file(tensors, folder / name)
    manifest = {k: v for k, v in manifest.items() if k not in ("kind", "hash")}
    manifest["format"] = OLD_FORMAT
    manifest["training"] = {k: v for k, v in manifest["training"].items() if k != "converted"}
    manifest["hash"] = checkpoint_hash(folder, manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return folder


def test_an_old_folder_is_refused_with_the_command_that_converts_it(old_folder, semcom, sample_png, tmp_path):
    with pytest.raises(SemcomError, match="python -m semcom_cli.reconstruct.convert"):
        ReconstructModel.from_pretrained(old_folder)
    r = semcom("encode", sample_png, "--task", "reconstruct", "--query", "the shape", "-c", old_folder,
               "-o", tmp_path / "p.sem")
    assert_clean_failure(r, "python -m semcom_cli.reconstruct.convert")
    assert not (tmp_path / "p.sem").exists()


def test_conversion_keeps_every_tensor_and_setting(old_folder, tmp_path):
    new = tmp_path / "converted"
    digest = convert(old_folder, new)
    shipped = default_scenes_checkpoint()
    model = ReconstructModel.from_pretrained(new)
    assert model.hash == digest and model.generative.fast is not None
    for part, (name, prefix) in OLD_FILES.items():
        old = load_file(old_folder / name)
        converted = load_file(new / part / "model.safetensors")
        assert converted.keys() == {k[len(prefix):] for k in old if k.startswith(prefix)}
        assert all(torch.equal(v, old[prefix + k]) and v.dtype == old[prefix + k].dtype for k, v in converted.items())
        if part != "referent_parser":  # an old layout's parser predates "unknown": its config says so (no version)
            assert (new / part / "config.json").read_bytes() == (shipped / part / "config.json").read_bytes()
    assert "version" not in json.loads((new / "referent_parser" / "config.json").read_text())
    with pytest.raises(SemcomError, match="guide-checks"):  # the guide's checks postdate the old layout
        model.guide
    manifest = json.loads((new / "manifest.json").read_text())
    old_manifest = json.loads((old_folder / "manifest.json").read_text())
    assert manifest["training"]["converted"] == {"from_format": OLD_FORMAT, "from_hash": old_manifest["hash"]}
    assert {k: v for k, v in manifest.items() if k not in ("format", "kind", "hash", "training")} == \
        {k: v for k, v in old_manifest.items() if k not in ("format", "hash", "training")}
    # the shipped checkpoint is this conversion with the guide's checks retrained (stage guide-checks)
    assert all((new / part).is_dir() for part in OLD_FILES) and not (new / "presence_check").exists()


def test_the_command_converts_in_place_and_refuses_what_it_cannot(old_folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(old_folder, copy)
    run = [sys.executable, "-m", "semcom_cli.reconstruct.convert"]
    done = subprocess.run([*run, str(copy)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hash"] == ReconstructModel.from_pretrained(copy).hash
    again = subprocess.run([*run, str(copy)], capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0 and "nothing to convert" in again.stderr
    (old_folder / "vae.safetensors").rename(tmp_path / "vae.safetensors")  # a damaged old folder
    try:
        broken = subprocess.run([*run, str(old_folder), str(tmp_path / "out")], capture_output=True, text=True)
        assert broken.returncode == 2 and "do not match the manifest's hash" in broken.stderr
        assert not (tmp_path / "out").exists()
    finally:
        (tmp_path / "vae.safetensors").rename(old_folder / "vae.safetensors")
