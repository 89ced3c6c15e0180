"""The presence check (issue 35): it learns what a map marks (colour, shape, corner, an object at all), a
referent is present as far as that agrees with it, and the guide says "not found" under its threshold.
Tiny settings and a stand-in marker where a guide is needed: no LLM."""

import torch

from semcom_cli.data.scenes import COLOR_RGB, Referent, scene_at
from semcom_cli.reconstruct.guidance.guide import FOUND, NOT_FOUND, UNKNOWN, Guide, GuideThresholds
from semcom_cli.reconstruct.guidance.presence import (
    COLOURS,
    SHAPES,
    PresenceCheck,
    PresenceTrain,
    object_examples,
    presence,
    presence_examples,
    train_presence,
)
from semcom_cli.reconstruct.guidance.referent import Reading


def colour_marker(images: torch.Tensor, referents: list[Referent]) -> torch.Tensor:
    """Logits: high where a pixel has the referent's colour (low everywhere for a referent without one)."""
    out = torch.full(images.shape[:1] + images.shape[2:], -6.0)
    for b, r in enumerate(referents):
        if r.color:
            rgb = torch.tensor(COLOR_RGB[r.color], dtype=torch.float32)[:, None, None] / 255
            out[b] = torch.where((images[b] - rgb).abs().amax(0) < 0.02, 6.0, -6.0)
    return out


def test_object_examples_label_each_object_and_a_background_patch():
    pictures, which, masks, labels = object_examples("train", 10)
    scenes = [scene_at("train", i) for i in range(10)]
    objects = sum(len(s.objects) for s in scenes)
    assert pictures.shape == (10, 3, 64, 64) and objects <= len(which) <= objects + 10
    first = scenes[0].objects[0]
    assert labels[0, 0] == COLOURS.index(first.color) and labels[0, 1] == SHAPES.index(first.shape)
    background = (labels[:, 1] < 0).nonzero()[:, 0].tolist()
    assert background  # a patch of background, off every object of its own scene
    for i in background:
        assert masks[i].sum() >= 20 and not (masks[i] & torch.from_numpy(scenes[int(which[i])].masks.any(0))).any()


def test_guide_maps_are_labelled_by_what_they_mark_and_the_same_seed_gives_the_same_examples():
    pictures, which, maps, refs, held, marked = presence_examples(colour_marker, "train", 12, with_labels=True)
    assert maps.shape == (len(held), 64, 64) and refs.shape == (len(held), 4) and marked.shape == (len(held), 6)
    assert 0.2 < float(held.mean()) < 0.8  # both kinds, from every scene
    coloured_and_present = (refs[:, 0] > 0) & (held > 0.5)
    # the stand-in marks the named colour's pixels: where the scene has it, the label is that colour
    assert (marked[coloured_and_present, 0] == refs[coloured_and_present, 0] - 1).float().mean() > 0.9
    again = presence_examples(colour_marker, "train", 12)
    assert torch.equal(again[3], refs) and torch.equal(again[4], held)


def test_the_presence_check_learns_colours_and_agrees_only_with_the_named_one():
    torch.manual_seed(0)
    check = train_presence(PresenceTrain(steps=300, batch_size=32, scenes=150, guide_scenes=0))
    pictures, which, masks, labels = object_examples("val", 30)
    objects = labels[:, 1] >= 0
    with torch.no_grad():
        logits = check(pictures[which], masks.float())
    assert (logits[objects, :8].argmax(1) == labels[objects, 0]).float().mean() > 0.75
    named = torch.zeros(len(which), 4, dtype=torch.long)
    named[:, 0] = labels[:, 0].long().clamp_min(0) + 1
    other = named.clone()
    other[:, 0] = (named[:, 0] % 8) + 1  # the next colour: not the object's
    right, wrong = check.agreement(logits, named)[objects], check.agreement(logits, other)[objects]
    assert float((right > wrong).float().mean()) > 0.8
    assert torch.all(check.agreement(logits, torch.zeros_like(named)) <= 1.0)


class _Parser:
    """Reads every query as its own fixed referent (known), or as unknown when it says so."""

    def __init__(self, referents):
        self.referents = referents

    def read(self, texts, *_):
        out = []
        for t in texts:
            ref = self.referents.get(t, Referent())
            out.append(Reading(t, ref, {f: 0.99 for f in ref.to_json()}, (), ("x",) if t == "zzz" else (), (),
                               0.9 if t == "zzz" else 0.01))
        return out


class _Reader:
    def read(self, texts):
        return torch.zeros(len(texts), 1, 4), torch.ones(len(texts), 1, dtype=torch.bool), torch.zeros(
            len(texts), 1, dtype=torch.long)


def test_the_guide_says_not_found_under_the_presence_threshold_and_marks_nothing():
    net = lambda images, indices: colour_marker(images, [Referent.from_indices(i) for i in indices])  # noqa: E731
    check = PresenceCheck()
    with torch.no_grad():  # a check whose every output is even: objectness 0.5, each colour 1/8
        for param in check.parameters():
            param.zero_()
    images = torch.zeros(3, 3, 64, 64)
    images[:, 0, 10:20, 10:20] = 1.0  # a red square
    parser = _Parser({"red": Referent(color="red"), "blue": Referent(color="blue")})
    guide = Guide(_Reader(), parser, net, GuideThresholds(not_found_below=0.1), check)
    # the even check gives a named colour 0.5 × 1/8: under 0.1, so nothing counts as found
    logits, findings = guide.find(images, ["red", "blue", "zzz"])
    assert [f.status for f in findings] == [NOT_FOUND, NOT_FOUND, UNKNOWN]
    assert all(abs(f.presence - 0.0625) < 1e-6 for f in findings[:2]) and findings[2].presence is None
    assert float(logits.max()) < -20  # a map that marks nothing: the transmitter falls back to uniform
    assert "presence 0.06" in findings[0].why() and "no object" in findings[0].why()
    guide.thresholds = GuideThresholds(not_found_below=0.05)
    logits, findings = guide.find(images[:2], ["red", "blue"])
    assert [f.status for f in findings] == [FOUND, FOUND]
    assert float(logits[0, 15, 15]) > 0
    circle = presence(check, images[:1], torch.sigmoid(logits[:1]), [Referent(shape="circle")])
    assert abs(float(circle) - 0.5 / 3) < 1e-6  # objectness 0.5 × one shape in three
