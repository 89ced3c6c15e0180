import pytest

from semcom_cli.config.preset import apply_overrides, available_presets, load_preset, preset_from_dict
from semcom_cli.core.errors import SemcomError


def test_shipped_presets_load():
    assert {"smollm2", "smollm2-mlp", "tiny"} <= set(available_presets())
    for name in available_presets():
        assert load_preset(name).name == name
    assert available_presets(evaluation=True) == ["ci-bench"]


def test_unknown_field_is_named():
    with pytest.raises(SemcomError, match=r"unknown field 'codec.symbols'"):
        preset_from_dict({"codec": {"symbols": 3}})


def test_ill_typed_field_is_named():
    with pytest.raises(SemcomError, match=r"field 'codec.symbols_per_token'"):
        preset_from_dict({"codec": {"symbols_per_token": "many"}})


def test_bad_choice_lists_allowed_values():
    with pytest.raises(SemcomError, match=r"'projector.kind' must be one of 'kan' or 'mlp'"):
        preset_from_dict({"projector": {"kind": "transformer"}})


def test_non_finite_numbers_rejected():
    with pytest.raises(SemcomError, match=r"codec.snr_floor_db"):
        preset_from_dict({"codec": {"snr_floor_db": float("nan")}})
    with pytest.raises(SemcomError, match=r"channel.rician_k"):
        preset_from_dict({"channel": {"rician_k": float("inf")}})


def test_names_are_checked_against_the_registries():
    with pytest.raises(SemcomError, match=r"must be one of 'awgn', 'rayleigh', 'rayleigh-iid' or 'rician'"):
        preset_from_dict({"train": {"channel": {"channels": ["wifi"]}}})
    with pytest.raises(SemcomError, match=r"must be one of 'vqa', 'vqa-varied', 'caption' or 'text'"):
        preset_from_dict({"train": {"instruct": {"tasks": ["vqa-rephrased"]}}})  # evaluation-only


def test_the_codec_floor_defaults_to_the_channel_stage_range():
    assert preset_from_dict({"train": {"channel": {"snr_min": -7}}}).codec.snr_floor_db == -7
    assert preset_from_dict({"codec": {"snr_floor_db": -3}}).codec.snr_floor_db == -3


def test_a_manifest_from_an_older_semcom_still_loads():
    from semcom_cli.config.preset import migrate_saved_preset

    old = {"channel": {"name": "awgn", "snr_db": 10.0, "rician_k": 2.0}, "data": {"train_limit": None}}
    preset = preset_from_dict(migrate_saved_preset(old))
    assert preset.channel.rician_k == 2.0 and preset.device == "cpu"
    with pytest.raises(SemcomError, match="unknown field 'channel.name'"):
        preset_from_dict(old)  # a user's preset keeps being checked strictly


def test_context_heads_must_divide_the_codec_width():
    with pytest.raises(SemcomError, match=r"codec.hidden \(64\) must be a multiple of codec.context_heads \(5\)"):
        preset_from_dict({"codec": {"hidden": 64, "context_heads": 5}})
    assert preset_from_dict({"codec": {"hidden": 64, "context_heads": 4}}).codec.context_heads == 4


def test_overrides_apply_and_validate():
    preset = apply_overrides(load_preset("tiny"), {"codec.symbols_per_token": 8, "seed": None})
    assert preset.codec.symbols_per_token == 8
    assert preset.seed == load_preset("tiny").seed
    with pytest.raises(SemcomError, match="unknown preset field 'codec.nope'"):
        apply_overrides(preset, {"codec.nope": 1})
    with pytest.raises(SemcomError, match="symbols_per_token"):
        apply_overrides(preset, {"codec.symbols_per_token": 0})


def test_bad_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("projector: [unclosed\n")
    with pytest.raises(SemcomError, match="not valid YAML"):
        load_preset(bad)
    with pytest.raises(SemcomError, match="preset not found"):
        load_preset("no-such-preset")


def test_the_mlp_ablation_differs_from_the_default_recipe_only_in_its_projector():
    default, ablation = (load_preset(n).model_dump() for n in ("smollm2", "smollm2-mlp"))
    assert ablation["projector"].pop("kind") == "mlp" and default["projector"].pop("kind") == "kan"
    assert ablation.pop("name") == "smollm2-mlp"
    default.pop("name")
    assert ablation == default


def test_a_base_is_laid_under_the_preset(tmp_path):
    (tmp_path / "parent.yaml").write_text("base: tiny\nseed: 5\ncodec: {hidden: 12}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\nname: child\ntrain: {channel: {steps: 3}}\n")
    child, tiny = load_preset(tmp_path / "child.yaml"), load_preset("tiny")
    assert (child.name, child.seed, child.codec.hidden, child.train.channel.steps) == ("child", 5, 12, 3)
    # what no file changes comes from tiny, field by field inside a mapping too
    assert child.codec.symbols_per_token == tiny.codec.symbols_per_token
    assert child.train.channel.channels == tiny.train.channel.channels


@pytest.mark.parametrize("text, message", [
    ("base: loop.yaml\n", "leads back to itself"),
    ("base: 3\n", "base must name a preset"),
    ("base: ci-bench\n", "evaluation preset"),
    ("base: nowhere\n", "preset not found: nowhere"),
])
def test_a_bad_base_is_refused_in_one_line(tmp_path, text, message):
    (tmp_path / "loop.yaml").write_text(text)
    with pytest.raises(SemcomError, match=message):
        load_preset(tmp_path / "loop.yaml")
