"""The guide says what it does not know (issue 35): the labelled queries it learns from, the thresholds
it keeps in the checkpoint, and — on the shipped checkpoint with the real SmolLM2 — unreadable and
absent-object queries ending "unknown" / "not found" while queries naming a present object are found."""

import json
import re
import shutil

import pytest
import torch
from conftest import assert_clean_failure

from semcom_cli.data.scenes import ABSENT, absent_queries, referring_queries, scene_at
from semcom_cli.data.scenes.readings import (
    FOREIGN,
    OUTSIDE,
    OUTSIDE_WORDS,
    READ,
    UNREAD,
    known_queries,
    outside_queries,
)
from semcom_cli.tasks.shapes import COLORS, SHAPES


def test_every_query_has_a_tag_per_word_and_known_ones_are_readable():
    for split in ("train", "val", "test"):
        for q in known_queries(split, 40):
            assert len(q.word_tags) == len(q.text.split()) and q.readable and UNREAD not in q.word_tags
            assert READ in q.word_tags, q.text  # some word sets a field
    for q in outside_queries("train", 300):
        assert len(q.word_tags) == len(q.text.split()) and not q.readable, q
        assert UNREAD in q.word_tags or OUTSIDE in q.fields


def test_the_held_out_words_never_meet_the_training_ones():
    for kind, sides in OUTSIDE_WORDS.items():
        assert not set(sides["train"]) & set(sides["held_out"]), kind
        assert not set(sides["train"]) & (set(COLORS) | set(SHAPES)), kind
    assert not set(FOREIGN["train"]) & set(FOREIGN["held_out"])
    train_words = {w for sides in OUTSIDE_WORDS.values() for w in sides["train"]}
    train_words |= {w.lower() for colours, shapes, _ in FOREIGN["train"].values()
                    for w in (*colours.values(), *shapes.values())}
    for q in outside_queries("held_out", 200, seed=1000):
        if q.kind.startswith("outside"):
            unread = [w for w, t in zip(q.text.split(), q.word_tags) if t == UNREAD]
            assert not {w.strip("?.!").lower().split("-")[0] for w in unread} & train_words, q.text


def test_validation_calibrates_on_wordings_no_other_split_uses():
    val = {q.text for q in known_queries("val", 60)}
    others = {q.text for split in ("train", "test") for q in known_queries(split, 200)}
    assert val and not val & others


def test_absent_queries_name_what_the_scene_does_not_hold():
    checked = 0
    for index in range(40):
        scene = scene_at("test", index)
        pairs = {(o.color, o.shape) for o in scene.objects}
        for q in absent_queries(scene, "test", per_kind=3):
            r = q.referent
            assert q.target == ABSENT
            if r.color and r.shape:
                assert (r.color, r.shape) not in pairs
            elif r.color and not r.where:
                assert r.color not in {c for c, _ in pairs}
            elif r.shape:
                assert r.shape not in {s for _, s in pairs}
            checked += 1
        # and the scene's own referents are never among them
        present = {q.referent for q in referring_queries(scene, "test", per_kind=9)}
        assert not present & {q.referent for q in absent_queries(scene, "test", per_kind=9)}
    assert checked > 60


# ---- the shipped checkpoint, real SmolLM2 ---------------------------------------------------------------

@pytest.fixture(scope="module")
def guide():
    from semcom_cli.reconstruct.model import ReconstructModel

    return ReconstructModel.from_pretrained(need_codec=False).guide


def _scene_images(indices):
    return torch.stack([torch.from_numpy(scene_at("test", i).image).permute(2, 0, 1).float() / 255 for i in indices])


@pytest.mark.real
def test_the_shipped_guide_says_unknown_and_not_found(guide):
    scene = scene_at("test", 0)  # brown triangle, teal and blue rectangles, green circle and triangle
    queries = {
        "the purple star": "unknown", "asdf qwerty": "unknown", "the dog": "unknown",
        "le cercle vert": "unknown", "the striped triangle": "unknown", "the medium-sized rectangle": "unknown",
        "find the red circle": "not found", "the yellow one": "not found",
        "the teal rectangle": "found", "the green circle": "found", "the brown triangle": "found",
    }
    _, findings = guide.find(_scene_images([0] * len(queries)), list(queries))
    got = {q: f.status for q, f in zip(queries, findings)}
    assert got == queries, got
    by_query = dict(zip(queries, findings))
    assert "purple" in " ".join(by_query["the purple star"].reading.unused_words) or \
        by_query["the purple star"].reading.outside
    assert by_query["the teal rectangle"].reading.confidence["color"] > 0.5
    assert {(o.color, o.shape) for o in scene.objects} >= {("teal", "rectangle"), ("green", "circle")}


@pytest.mark.real
def test_the_shipped_checkpoint_records_its_thresholds_and_their_calibration():
    from semcom_cli.reconstruct.model import default_scenes_checkpoint

    manifest = json.loads((default_scenes_checkpoint() / "manifest.json").read_text())
    stored = manifest["guide_thresholds"]
    assert 0 < stored["not_found_below"] < 1 and 0.5 <= stored["unused_word"] < 1
    assert stored["calibration"]["split"] == "val"


def test_a_parser_from_before_unknown_is_refused_in_one_line(tmp_path, semcom):
    from semcom_cli.reconstruct.model import default_scenes_checkpoint

    old = tmp_path / "old-scenes"
    shutil.copytree(default_scenes_checkpoint(), old)
    config = old / "referent_parser" / "config.json"
    saved = json.loads(config.read_text())
    saved.pop("version")
    config.write_text(json.dumps(saved))
    from semcom_cli.io.checkpoint import checkpoint_hash

    manifest = json.loads((old / "manifest.json").read_text())
    manifest["hash"] = checkpoint_hash(old, manifest)  # as an older semcom wrote it: whole, not damaged
    (old / "manifest.json").write_text(json.dumps(manifest))
    image = tmp_path / "scene.png"
    from PIL import Image

    Image.fromarray(scene_at("test", 0).image).save(image)
    result = semcom("guide", str(image), "-q", "the red circle", "-o", str(tmp_path / "map.png"), "-c", str(old))
    assert_clean_failure(result, "guide-checks")
    assert not (tmp_path / "map.png").exists()
    assert re.search(r"predates", result.output)


@pytest.mark.real
@pytest.mark.parametrize("query,status", [("le cercle vert", "unknown"), ("the yellow one", "not found")])
def test_encode_falls_back_to_uniform_says_so_and_records_it_in_the_file(semcom, tmp_path, query, status):
    from PIL import Image

    from semcom_cli.io.semantic import SemanticFile

    image = tmp_path / "scene.png"
    Image.fromarray(scene_at("test", 0).image).save(image)  # no yellow object, nothing in French
    sem = tmp_path / "p.sem"
    r = semcom("encode", str(image), "--task", "reconstruct", "--query", query, "-o", str(sem))
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("semcom: note:")]
    assert len(notes) == 1 and "sent uniform" in notes[0]  # said in one line, on stderr
    header = SemanticFile.from_bytes(sem.read_bytes(), "p").header
    assert header.image["method"] == "uniform" and header.image["side_uses"] == 0
    assert header.image["guide"]["status"] == status
    fallback = header.image["fallback"]
    assert fallback["from"] == "importance" and fallback["to"] == "uniform" and fallback["why"] in notes[0]
    # and the receiver decodes it as the uniform packet it is
    rx = tmp_path / "p.rx"
    assert semcom("transmit", str(sem), "--snr", "12", "-o", str(rx)).exit_code == 0
    done = semcom("decode", str(rx), "-o", str(tmp_path / "out.png"), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["box_received"] is None
