"""Fuzzing the two readers of untrusted input: any header and tensors, any preset, either load as
valid or raise semcom's one error type, never anything else, in bounded time and memory."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from semcom_cli.config.preset import preset_from_dict
from semcom_cli.core.errors import SemcomError
from semcom_cli.io.semantic import SemanticFile

# Derandomized: CI runs the same 300 cases every time, so a red run is reproducible and not luck.
# To explore new cases locally: SEMCOM_FUZZ_EXAMPLES=5000 SEMCOM_FUZZ_RANDOM=1 pytest tests/io/test_fuzz.py
FUZZ = settings(max_examples=int(os.environ.get("SEMCOM_FUZZ_EXAMPLES", 300)), deadline=3000,
                derandomize=not os.environ.get("SEMCOM_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
FIELDS = ["stage", "task", "modality", "checkpoint", "checkpoint_hash", "source", "n_tokens", "symbols_per_token",
          "channel_uses", "role", "user", "channel", "snr_db", "seed", "rician_k", "repeats", "share_id",
          "share_plan", "power_scale", "snr_floor_db", "users", "n_users", "sources", "token_indices"]
VALID = {"stage": "transmit", "task": "vqa", "modality": "image", "checkpoint": "c", "checkpoint_hash": "h",
         "source": "s", "n_tokens": 2, "symbols_per_token": 2, "channel_uses": 4, "role": "private", "user": 0,
         "channel": "awgn", "snr_db": 3.0, "seed": 0}


@st.composite
def headers(draw):
    """Mostly a valid header with some fields replaced, dropped or added at random."""
    header = dict(VALID) if draw(st.booleans()) else {}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=6)):
        if draw(st.booleans()):
            header[name] = draw(values)
        else:
            header.pop(name, None)
    header.update(draw(st.dictionaries(st.text(max_size=6), values, max_size=2)))
    return {"format": "semcom-semantic", "format_version": draw(st.sampled_from([1, 1, 1, 2, "1", None])), **header}


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))
    if draw(st.booleans()):
        shape = [*shape[:2], 2] if len(shape) >= 2 else [2, 2, 2]
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int32, torch.float16]))
    fill = draw(st.sampled_from([0.5, math.nan, math.inf, 0.0, -3.0, 2 ** 0.5 / 2]))
    out = {"symbols": torch.full(shape, fill).to(dtype)}
    if draw(st.booleans()):
        out["gain"] = torch.full(draw(st.sampled_from([[2], [3], [2, 1]])), draw(st.sampled_from([1.0, 0.0,
                                                                                                  math.nan])))
    if draw(st.booleans()):
        out["extra"] = torch.zeros(1)
    return out


@FUZZ
@given(header=headers(), tensors=tensors())
def test_any_header_and_tensors_load_or_raise_semcom_error(header, tensors):
    data = save({k: v.contiguous() for k, v in tensors.items()},
                metadata={"semcom": json.dumps(header, allow_nan=True)})
    try:
        sem = SemanticFile.from_bytes(data, "fuzz")
    except SemcomError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
        return
    # what loads is consistent: the header agrees with finite tensors
    symbols = sem.tensors["symbols"]
    assert list(symbols.shape) == [sem.header.n_tokens, sem.header.symbols_per_token, 2]
    assert bool(torch.isfinite(symbols).all())


@FUZZ
@given(data=st.binary(max_size=300), cut=st.integers(0, 400))
def test_any_bytes_load_or_raise_semcom_error(data, cut):
    valid = save({"symbols": torch.ones(2, 2, 2) / 2 ** 0.5},
                 metadata={"semcom": json.dumps({"format": "semcom-semantic", "format_version": 1, **VALID})})
    for blob in (data, valid[:cut] + data, valid[:cut]):
        try:
            SemanticFile.from_bytes(blob, "fuzz")
        except SemcomError:
            pass


presets = st.dictionaries(st.sampled_from(["name", "seed", "device", "backbone", "vision", "projector", "codec",
                                           "channel", "train", "data", "kind", "zzz"]), values, max_size=5)


@FUZZ
@given(data=presets)
def test_any_preset_mapping_loads_or_raises_semcom_error(data):
    try:
        preset_from_dict(data)
    except SemcomError as err:  # user keys and values may hold newlines: the message still may not
        assert "\n" not in str(err) and len(str(err)) < 400


@FUZZ
@given(text=st.text(max_size=400))
def test_any_preset_text_loads_or_raises_semcom_error(text, tmp_path_factory):
    from semcom_cli.config.preset import load_preset

    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_text(text)
    try:
        load_preset(path)
    except SemcomError as err:
        assert "\n" not in str(err)


@pytest.mark.parametrize("depth", [5, 9])
def test_a_deep_alias_chain_is_refused_quickly(tmp_path, depth):
    from semcom_cli.config.preset import load_preset

    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, depth)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SemcomError, match="aliases"):
        load_preset(path)


def test_a_preset_key_with_a_newline_is_reported_on_one_line():
    with pytest.raises(SemcomError) as err:
        preset_from_dict({"backbone": {"bad\nkey\u2028": None}})
    assert "\n" not in str(err.value) and "\u2028" not in str(err.value) and "bad\\nkey" in str(err.value)
