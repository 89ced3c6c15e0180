"""The one configuration system's base: strict pydantic models (unknown keys refused), and the one-line
error every bad value gets. Presets (:mod:`.preset`) and the image line's stage settings build on it; this
module needs pydantic alone, so the training loops that use it run where YAML and the rest are not installed."""

from __future__ import annotations

import reprlib
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import MAX_SEED

__all__ = ["Strict", "StageSettings", "short_repr", "first_error_line", "settings_from", "with_changes",
           "LearningRate", "Steps", "BatchSize", "Every", "Seed", "Share", "Weight", "FiniteFloat", "Range",
           "ordered_range", "MAX_LR", "MAX_STEPS", "MAX_BATCH", "MAX_EVERY"]

# Bounds every training stage's settings share (presets' train.<stage> and the image line's stages): a
# value past them is refused in one line before anything is built or trained. They are far beyond any
# recipe (the largest batch trained is 256 on a GPU, the longest run 4,000 steps) and keep a typing slip
# (--lr 1e30, --batch-size 100000000) from training to NaN weights or asking for terabytes.
MAX_LR = 1.0
MAX_STEPS = 1_000_000
MAX_BATCH = 4096
MAX_EVERY = 1_000_000

LearningRate = Annotated[float, Field(gt=0, le=MAX_LR, allow_inf_nan=False)]
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH)]
Every = Annotated[int, Field(ge=1, le=MAX_EVERY)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def ordered_range(low: float, high: float):
    """A validator for a (min, max) pair inside [low, high] with min ≤ max."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        a, b = value
        if not (low <= a <= b <= high):
            raise ValueError(f"must be (min, max) with {low:g} ≤ min ≤ max ≤ {high:g}")
        return value

    return AfterValidator(check)


def Range(low: float, high: float):  # noqa: N802 (a type, as Annotated types are named)
    """A (min, max) pair of finite floats inside [low, high]."""
    return Annotated[tuple[FiniteFloat, FiniteFloat], ordered_range(low, high)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class StageSettings(BaseModel):
    """A training stage's settings: strict, frozen (a run's settings do not change under it), and recorded
    as they are in the checkpoint's manifest and in partial runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=BaseModel)


def short_repr(value, limit: int = 60) -> str:
    """repr() cut to ``limit`` characters: an error line stays one short line whatever the input."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlist, short.maxdict = 2, limit, limit, 4, 4
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_error_line(err: ValidationError, source: str) -> str:
    e = err.errors(include_input=True)[0]
    field = ".".join(str(p) for p in e["loc"])[:80] or "(top level)"
    got = short_repr(e.get("input"))
    if e["type"] == "extra_forbidden":
        return f"{source}: unknown field '{field}'"
    if e["type"] in ("literal_error", "choice"):
        allowed = e.get("ctx", {}).get("expected", "")
        return f"{source}: field '{field}' must be one of {allowed} (got {got})"
    return f"{source}: field '{field}': {e['msg'][:120]} (got {got})"


def settings_from(cls: type[S], data: dict[str, Any], source: str, known_only: bool = False) -> S:
    """``cls`` from ``data`` (a manifest's record, a partial run's header), one line for a bad value;
    ``known_only``: keys ``cls`` does not have are left out (a record written by a later semcom)."""
    if known_only:
        data = {k: v for k, v in data.items() if k in cls.model_fields}
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise SemcomError(first_error_line(err, source)) from None


def with_changes(settings: S, source: str = "settings", **changes) -> S:
    """A validated copy of ``settings`` with ``changes`` (flags over a recipe's defaults)."""
    return settings_from(type(settings), {**settings.model_dump(), **changes}, source)
