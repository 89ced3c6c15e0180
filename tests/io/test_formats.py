import json

import pytest
import torch
from safetensors.torch import save

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes
from semcom_cli.io.semantic import Header, SemanticFile, read_semantic, write_semantic


def _header(stage="encode", **fields):
    return Header(stage=stage, task="vqa", modality="image", checkpoint="ck", checkpoint_hash="abc", source="x.png",
                  n_tokens=3, symbols_per_token=4, channel_uses=12, user=0, role="private", **fields)


def _file(stage="encode"):
    symbols = torch.nn.functional.normalize(torch.arange(1, 25, dtype=torch.float32).view(3, 4, 2), dim=-1)
    return SemanticFile({"symbols": symbols}, _header(stage))  # power 1 per complex symbol


def test_roundtrip_keeps_tensors_and_header(tmp_path):
    path = tmp_path / "x.safetensors"
    write_semantic(path, _file())
    back = read_semantic(str(path), stage="encode")
    assert torch.equal(back.tensors["symbols"], _file().tensors["symbols"])
    assert back.header == _file().header


def test_same_content_gives_same_bytes():
    # safetensors writes its metadata map in hash order; semcom's single JSON key must not vary
    fields = {"channel": "awgn", "snr_db": 3.0, "seed": 4, "share_id": "s", "users": [0, 1]}
    a = SemanticFile(_file().tensors, _header("transmit", **fields))
    b = SemanticFile(_file().tensors, _header("transmit", **dict(reversed(list(fields.items())))))
    assert a.to_bytes() == b.to_bytes()


def test_a_header_of_the_wrong_type_is_refused_in_one_line(tmp_path):
    meta = json.dumps({"format": "semcom-semantic", "format_version": 1, **_header().to_json(), "n_tokens": "many"})
    path = tmp_path / "h.safetensors"
    path.write_bytes(save({"symbols": torch.zeros(3, 4, 2)}, metadata={"semcom": meta}))
    with pytest.raises(SemcomError, match="damaged header: field 'n_tokens'"):
        read_semantic(str(path))


def test_wrong_stage_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    write_semantic(path, _file("encode"))
    with pytest.raises(SemcomError, match="'encode' file; this stage needs a 'transmit' file"):
        read_semantic(str(path), stage="transmit")


@pytest.mark.parametrize("cut", [0, 5, 40, -3])
def test_truncated_file_refused(tmp_path, cut):
    data = _file().to_bytes()
    path = tmp_path / "t.safetensors"
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(SemcomError, match="truncated|corrupted|not a safetensors"):
        read_semantic(str(path))


def test_plain_safetensors_is_not_semantic(tmp_path):
    path = tmp_path / "plain.safetensors"
    path.write_bytes(save({"symbols": torch.zeros(2, 2)}))
    with pytest.raises(SemcomError, match="not a semcom semantic file"):
        read_semantic(str(path))


def test_future_version_refused(tmp_path):
    meta = json.dumps({"format": "semcom-semantic", "format_version": 99, "stage": "encode"})
    path = tmp_path / "v.safetensors"
    path.write_bytes(save({"symbols": torch.zeros(1, 1, 2)}, metadata={"semcom": meta}))
    with pytest.raises(SemcomError, match="version 99 is not supported"):
        read_semantic(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(SemcomError, match="no such file"):
        read_semantic(str(tmp_path / "nope.safetensors"))


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import os

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(SemcomError, match="out.bin: cannot write it .disk full."):
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert list(tmp_path.iterdir()) == []
