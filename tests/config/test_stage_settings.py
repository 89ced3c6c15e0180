"""Issue 34: every training stage's settings are finite and bounded (the image line's StageSettings and the
presets' train.<stage>), refused in one line otherwise, and what they accept can be built and estimated;
fuzzed with arbitrary values."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcom_cli.config.base import MAX_BATCH, settings_from, with_changes
from semcom_cli.config.preset import apply_overrides, load_preset
from semcom_cli.core.errors import SemcomError
from semcom_cli.reconstruct.generative.train import DiffusionTrain, FeatureTrain, VaeTrain
from semcom_cli.reconstruct.guidance.referent import ParserTrain
from semcom_cli.reconstruct.guidance.train import GuidanceTrain
from semcom_cli.reconstruct.imaging.train import CodecTrain

FUZZ = settings(max_examples=int(os.environ.get("SEMCOM_FUZZ_EXAMPLES", 300)), deadline=3000,
                derandomize=not os.environ.get("SEMCOM_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow])

IMAGE_STAGES = (GuidanceTrain, CodecTrain, VaeTrain, DiffusionTrain, FeatureTrain, ParserTrain)
BAD = [("lr", math.nan), ("lr", math.inf), ("lr", 1e30), ("lr", 0.0), ("lr", -1e-3), ("batch_size", 10**8),
       ("batch_size", 0), ("steps", 10**9), ("steps", 0), ("seed", -1), ("seed", 2**40)]


@pytest.mark.parametrize("cls", IMAGE_STAGES)
@pytest.mark.parametrize("field,value", BAD)
def test_image_stage_settings_refuse_values_out_of_range(cls, field, value):
    with pytest.raises(SemcomError, match=field) as err:
        with_changes(cls(), "flags", **{field: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("changes", [
    {"snr_range": (10.0, -10.0)}, {"snr_range": (math.nan, 1.0)}, {"roi_share_range": (0.0, 1.5)},
    {"budgets": ()}, {"budgets": (10,)}, {"unguided": 1.5}, {"crops": 10**9}, {"random_k": 2.0}, {"width": 8},
])
def test_codec_settings_refuse_impossible_draws(changes):
    with pytest.raises(SemcomError):
        with_changes(CodecTrain(), "flags", **changes)


@pytest.mark.parametrize("cls,changes", [
    (VaeTrain, {"channels": (16, 32)}), (VaeTrain, {"channels": (12, 32, 64)}), (VaeTrain, {"kl_weight": math.inf}),
    (DiffusionTrain, {"channels": (64, 112)}), (DiffusionTrain, {"channels": (64,)}),
    (DiffusionTrain, {"train_timesteps": 10**8}), (FeatureTrain, {"width": 12}),
])
def test_generative_settings_refuse_networks_that_cannot_be_built(cls, changes):
    with pytest.raises(SemcomError):
        with_changes(cls(), "flags", **changes)


@pytest.mark.parametrize("key,value", [("train.channel.lr", math.nan), ("train.instruct.lr", 1e30),
                                       ("train.align.batch_size", 10**8), ("train.rate.steps", 10**9),
                                       ("train.channel.snr_min", math.inf), ("train.federated.lr_front", 5.0),
                                       ("train.channel.snr_min", 30.0)])
def test_preset_training_sections_refuse_values_out_of_range(key, value):
    with pytest.raises(SemcomError) as err:
        apply_overrides(load_preset("tiny"), {key: value})
    assert "\n" not in str(err.value)


def test_the_shipped_presets_keep_to_the_bounds():
    from semcom_cli.config.preset import available_presets

    for name in available_presets():
        preset = load_preset(name)
        assert all(getattr(preset.train, s).batch_size <= MAX_BATCH for s in ("align", "channel", "instruct"))


def test_the_batch_estimate_of_a_model_stage_counts_the_llm():
    from types import SimpleNamespace

    from semcom_cli.training.memory import preset_stage_need

    preset = load_preset("smollm2")
    model = SimpleNamespace(preset=preset, parameters=lambda: iter(()))
    align = preset_stage_need(model, "align", SimpleNamespace(batch_size=64))
    instruct = preset_stage_need(model, "instruct", SimpleNamespace(batch_size=64))
    assert 0 < align.total < instruct.total


FIELDS = ["steps", "batch_size", "lr", "pool", "crops", "random_k", "width", "seed", "log_every", "snr_range", "budgets",
          "roi_share_range", "unguided", "no_query", "kl_weight", "channels", "latent_channels", "receiver_width",
          "train_timesteps", "zzz"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from([1, 2, 16, 32, 64, 128, 4096, 1e-3, 0.5]))
values = st.one_of(scalars, st.lists(scalars, max_size=4).map(tuple), st.lists(scalars, max_size=4),
                   st.dictionaries(st.text(max_size=4), scalars, max_size=2))


@FUZZ
@given(cls=st.sampled_from(IMAGE_STAGES), changes=st.dictionaries(st.sampled_from(FIELDS), values, max_size=4))
def test_any_image_stage_settings_are_accepted_or_refused_in_one_line(cls, changes):
    try:
        cfg = settings_from(cls, {**cls().model_dump(), **changes}, "flags")
    except SemcomError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
        return
    # what is accepted is in range: finite, bounded, and its batch's memory can be estimated
    assert 0 < cfg.lr <= 1 and math.isfinite(cfg.lr) and 1 <= cfg.batch_size <= MAX_BATCH and cfg.steps >= 1
    if hasattr(cfg, "memory"):
        assert 0 < cfg.memory().total < 10**15


@FUZZ
@given(flags=st.fixed_dictionaries({}, optional={"steps": st.integers(-2**40, 2**40),
                                                 "batch_size": st.integers(-2**40, 2**40),
                                                 "lr": st.floats(allow_nan=True, allow_infinity=True)}),
       cls=st.sampled_from(IMAGE_STAGES))
def test_any_training_flags_are_accepted_or_refused_in_one_line(flags, cls):
    try:
        cfg = with_changes(cls(), "flags", **flags)
    except SemcomError as err:
        assert "\n" not in str(err)
        return
    assert math.isfinite(cfg.lr) and cfg.batch_size <= MAX_BATCH
