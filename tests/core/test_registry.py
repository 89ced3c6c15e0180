"""The one Registry type: registration order, one-line refusals that list what is there, unique names; every
registry the command line names is listed by ``semcom list``; a missing optional library names its extra."""

from __future__ import annotations

import json

import pytest

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.optional import EXTRAS, require
from semcom_cli.core.registry import Registry


def test_entries_keep_their_registration_order_and_are_found_by_name():
    shapes = Registry("shape")

    @shapes.register("circle")
    def circle():
        return "o"

    shapes.register("square", lambda: "[]")
    assert shapes.names() == ["circle", "square"] and list(shapes) == ["circle", "square"]
    assert shapes.lookup("circle") is circle and "square" in shapes and len(shapes) == 2
    assert shapes.names(lambda entry: entry is circle) == ["circle"]


def test_an_unknown_name_is_one_line_listing_the_registered_ones():
    shapes = Registry("shape")
    shapes.register("circle", object())
    with pytest.raises(SemcomError) as refused:
        shapes.lookup("hexagon")
    assert str(refused.value) == "unknown shape 'hexagon' (choose from: circle)"
    with pytest.raises(SemcomError, match=r"^--shape: unknown shape 'x' \(choose from: circle\)$"):
        shapes.check("x", "--shape")
    with pytest.raises(SemcomError) as long_name:
        shapes.check("y" * 500)
    assert len(str(long_name.value)) < 120 and "\n" not in str(long_name.value)


def test_a_name_is_registered_once_and_can_be_taken_back():
    shapes = Registry("shape")
    shapes.register("circle", 1)
    with pytest.raises(ValueError, match="registered twice"):
        shapes.register("circle", 2)
    assert shapes.unregister("circle") == 1 and "circle" not in shapes


def test_a_class_registers_under_its_name_attribute():
    kinds = Registry("kind")

    @kinds.register()
    class Fading:
        name = "fading"

    assert kinds["fading"] is Fading


def test_the_package_registries_are_registry_objects():
    from semcom_cli.channel import CHANNELS
    from semcom_cli.evaluation.methods import METHODS
    from semcom_cli.evaluation.metrics import METRICS
    from semcom_cli.models.projector import PROJECTORS
    from semcom_cli.tasks import TASKS
    from semcom_cli.training.stages import STAGES

    for registry in (CHANNELS, TASKS, PROJECTORS, METHODS, METRICS, STAGES):
        assert isinstance(registry, Registry) and len(registry) >= 2
    assert {"awgn", "rayleigh", "none"} <= set(CHANNELS) and {"vqa", "caption", "text"} <= set(TASKS)
    assert {"kan", "mlp"} == set(PROJECTORS)


def test_semcom_list_shows_every_registry_and_every_stage(semcom):
    r = semcom("list", "--json")
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert {"channels", "tasks", "methods", "metrics", "stages", "decoders"} <= set(listed)
    assert set(listed["stages"]) == {"align", "channel", "instruct", "rate", "corpus", "retrieval", "guidance",
                                     "guide-checks", "image-codec", "image-vae", "image-diffusion", "scene-features",
                                     "federated"}
    assert all(listed["stages"].values())  # every stage says what it trains


def test_semcom_list_refuses_an_unknown_registry_in_one_line(semcom):
    r = semcom("list", "gizmos")
    assert r.exit_code == 2 and "unknown registry 'gizmos' (choose from: channels," in r.stderr


def test_an_unknown_stage_lists_every_registered_stage(semcom, tmp_path):
    r = semcom("finetune", "--stage", "warp", "-o", tmp_path / "out")
    assert r.exit_code == 2
    assert "unknown stage 'warp' (choose from: align, channel," in r.stderr and "image-vae" in r.stderr
    assert "federated" in r.stderr and not (tmp_path / "out").exists()


def test_a_missing_optional_library_names_its_extra(monkeypatch):
    EXTRAS["semcom_no_such_module"] = ("gizmos", "the gizmo stage (no-such-module)")
    try:
        with pytest.raises(SemcomError, match=r"needs the 'gizmos' extra: pip install 'semcom\[gizmos\]'"):
            require("semcom_no_such_module")
    finally:
        del EXTRAS["semcom_no_such_module"]
    require("faiss")  # installed here: nothing to say
