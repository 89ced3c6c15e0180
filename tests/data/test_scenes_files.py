"""Issue 34: a scenes folder is semcom's own output (replaced whole with --force, never mixed with other
files), and scenes.json reads back checked: any content loads or is refused in one line (fuzzed)."""

from __future__ import annotations

import json
import os

from conftest import assert_clean_failure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcom_cli.core.errors import SemcomError
from semcom_cli.data.scenes.files import SCENES_OUTPUT, ScenesDoc, load_scenes_json, scenes_from

FUZZ = settings(max_examples=int(os.environ.get("SEMCOM_FUZZ_EXAMPLES", 200)), deadline=3000,
                derandomize=not os.environ.get("SEMCOM_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def test_scenes_into_a_folder_of_other_files_is_refused_even_with_force(semcom, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for extra in ([], ["--force"]):
        assert_clean_failure(semcom("scenes", "-o", out, "-n", "1", *extra), "holds other files")
    assert [p.name for p in out.iterdir()] == ["holiday.png"]


def test_scenes_replace_an_earlier_scenes_folder_only_with_force_and_whole(semcom, tmp_path):
    out = tmp_path / "scenes"
    assert semcom("scenes", "-o", out, "-n", "3").exit_code == 0
    assert SCENES_OUTPUT.recognise(out) and len(load_scenes_json(out).scenes) == 3
    assert_clean_failure(semcom("scenes", "-o", out, "-n", "1", "--start", "5"), "add --force")
    r = semcom("scenes", "-o", out, "-n", "1", "--start", "5", "--force")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["scene-00005.mask.png", "scene-00005.png", "scenes.json"]
    assert not [p for p in tmp_path.iterdir() if p.name != "scenes"]  # no staging folder left beside it
    (out / "notes.txt").write_text("added by hand")  # now it holds a file semcom did not write
    assert not SCENES_OUTPUT.recognise(out)
    assert_clean_failure(semcom("scenes", "-o", out, "-n", "1", "--force"), "holds other files")


def test_a_damaged_scenes_json_is_refused_in_one_line(tmp_path):
    for text, fragment in (("{", "does not parse"), ("[]", "not a JSON object"), ('{"format": "x"}', "format"),
                           (json.dumps({"format": "semcom-scenes/1", "split": "test", "size": 64, "scenes": [
                               {"index": 0, "seed": 1, "background": "plain", "objects": [], "areas": []}]}),
                            "objects")):
        path = tmp_path / "scenes.json"
        path.write_text(text)
        try:
            load_scenes_json(path)
        except SemcomError as err:
            assert fragment in str(err) and "\n" not in str(err)
        else:
            raise AssertionError(text)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["test", "plain", "circle", "red", "color", 64, 128]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=16)
VALID_SCENE = {"index": 0, "seed": 7, "background": "plain", "areas": [40],
               "objects": [{"shape": "circle", "color": "red", "center": [10, 10], "radius": 5, "angle": 0,
                            "aspect": 1}],
               "queries": [{"text": "the red shape", "kind": "color", "target": 0, "referent": {"color": "red"}}]}
SCENE_KEYS = [*VALID_SCENE, "answer", "zzz"]


@st.composite
def scenes_docs(draw):
    """Mostly a valid scenes.json with fields of its scenes, objects and queries replaced or dropped."""
    scene = json.loads(json.dumps(VALID_SCENE))
    for key in draw(st.lists(st.sampled_from(SCENE_KEYS), max_size=3)):
        if draw(st.booleans()):
            scene[key] = draw(values)
        else:
            scene.pop(key, None)
    for part in ("objects", "queries"):
        if isinstance(scene.get(part), list) and scene[part] and isinstance(scene[part][0], dict) \
                and draw(st.booleans()):
            scene[part][0][draw(st.sampled_from(["shape", "color", "center", "radius", "text", "kind", "target",
                                                 "referent", "answer"]))] = draw(values)
    doc = {"format": draw(st.sampled_from(["semcom-scenes/1"] * 3 + ["semcom-scenes/2", None])),
           "split": draw(st.sampled_from(["test", "train", "val", "nope", None])),
           "size": draw(st.sampled_from([64, 128, 65, "64", None])),
           "scenes": draw(st.sampled_from([[scene], [scene, scene], [], None, "x"]))}
    if draw(st.booleans()):
        doc[draw(st.text(max_size=6))] = draw(values)
    return doc


@FUZZ
@given(doc=st.one_of(scenes_docs(), values))
def test_any_scenes_json_loads_or_raises_semcom_error(doc):
    try:
        loaded = scenes_from(doc, "scenes.json")
    except SemcomError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
        return
    assert isinstance(loaded, ScenesDoc) and loaded.scenes
    assert all(q.target < len(s.objects) for s in loaded.scenes for q in s.queries)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_as_scenes_json_load_or_raise_semcom_error(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "scenes.json"
    path.write_bytes(data)
    try:
        load_scenes_json(path)
    except SemcomError as err:
        assert "\n" not in str(err)
