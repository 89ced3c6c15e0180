"""The scene generator of MLLM-SC's data (issue 16): exact masks, seeds, splits, referring queries."""

import numpy as np
import pytest

from semcom_cli.data.scenes import COLOR_RGB, QUERY_KINDS, generate_scene, referring_queries, scene_at
from semcom_cli.data.scenes.backgrounds import PHOTOS
from semcom_cli.data.scenes.generator import MIN_VISIBLE, _filled
from semcom_cli.data.scenes.queries import WORDINGS

SCENES = [scene_at(split, i) for split in ("train", "test") for i in range(24)]


@pytest.mark.parametrize("scene", SCENES[:12] + SCENES[24:36], ids=lambda s: f"{s.seed}-{s.background}")
def test_masks_are_exactly_the_pixels_that_show_each_object(scene):
    masks = scene.masks
    assert masks.shape == (len(scene.objects), scene.size, scene.size) and masks.dtype == bool
    assert int(masks.sum(0).max()) <= 1  # disjoint
    for obj, mask in zip(scene.objects, masks):
        assert (scene.image[mask] == COLOR_RGB[obj.color]).all()
        whole = _filled(obj, scene.size)
        assert not (mask & ~whole).any()  # only the object's own polygon …
        assert mask.sum() >= MIN_VISIBLE * whole.sum()  # … and at least half of it
    if scene.background == "plain":  # everything that is not background belongs to one object
        background = scene.image[0, 0] if not masks[:, 0, 0].any() else None
        if background is not None:
            differs = (scene.image != background).any(-1)
            assert (differs == masks.any(0)).all()


def test_objects_of_one_colour_never_touch():
    for scene in SCENES:
        for i, a in enumerate(scene.objects):
            for j in range(i + 1, len(scene.objects)):
                if scene.objects[j].color != a.color:
                    continue
                grown = np.pad(scene.masks[i], 1)
                near = grown[2:, 1:-1] | grown[:-2, 1:-1] | grown[1:-1, 2:] | grown[1:-1, :-2] | scene.masks[i]
                assert not (near & scene.masks[j]).any()


def test_the_same_seed_gives_the_same_scene_and_splits_differ():
    a, b = scene_at("test", 7), scene_at("test", 7)
    assert a.image.tobytes() == b.image.tobytes() and a.masks.tobytes() == b.masks.tobytes()
    assert a.objects == b.objects
    assert scene_at("train", 7).image.tobytes() != a.image.tobytes()
    assert generate_scene(3, 128).image.shape == (128, 128, 3)
    counts = [len(s.objects) for s in SCENES]
    assert min(counts) == 2 and max(counts) <= 5


def test_test_scenes_sit_on_photographs_no_training_scene_used():
    assert not set(PHOTOS["test"]) & set(PHOTOS["train"])
    textured = [s for s in SCENES if s.background != "plain"]
    assert textured and all(s.background in PHOTOS["test"] for s in SCENES[24:] if s.background != "plain")
    assert all(s.background in PHOTOS["train"] for s in SCENES[:24] if s.background != "plain")


def test_every_query_refers_to_exactly_one_object():
    kinds = set()
    for scene in SCENES:
        objs = scene.objects
        for q in referring_queries(scene, "train", per_kind=3):
            kinds.add(q.kind)
            target = objs[q.target]
            if q.kind == "color":
                assert [o.color for o in objs].count(target.color) == 1 and target.color in q.text
            elif q.kind == "shape":
                assert [o.shape for o in objs].count(target.shape) == 1 and target.shape in q.text
            elif q.kind == "color_shape":
                assert [(o.color, o.shape) for o in objs].count((target.color, target.shape)) == 1
            elif q.kind == "question":
                assert q.answer in (target.color, target.shape)
                assert q.text.endswith("?") or q.text.startswith("tell me")
            elif q.kind == "size":
                areas = sorted(scene.areas())
                assert scene.areas()[q.target] in (areas[0], areas[-1])
    assert kinds == set(QUERY_KINDS)


def test_test_queries_use_wordings_training_never_does():
    train = {w for ws in WORDINGS["train"].values() for w in ws}
    test = {w for ws in WORDINGS["test"].values() for w in ws}
    assert not train & test
    texts = {q.text for s in SCENES[24:] for q in referring_queries(s, "test", per_kind=3)}
    train_texts = {q.text for s in SCENES[24:] for q in referring_queries(s, "train", per_kind=3)}
    assert texts and not texts & train_texts


def test_scenes_command_writes_images_masks_and_queries(semcom, tmp_path):
    import json

    from PIL import Image

    out = tmp_path / "scenes"
    r = semcom("scenes", "-o", out, "--split", "test", "-n", "3", "--start", "5")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "scenes.json").read_text())
    assert [s["index"] for s in doc["scenes"]] == [5, 6, 7]
    scene = scene_at("test", 6)
    image = np.asarray(Image.open(out / "scene-00006.png"))
    labels = np.asarray(Image.open(out / "scene-00006.mask.png"))
    assert image.tobytes() == scene.image.tobytes()
    for k, mask in enumerate(scene.masks):
        assert ((labels == k + 1) == mask).all()
    assert doc["scenes"][1]["queries"][0]["target"] < len(scene.objects)


@pytest.mark.parametrize("flags,fragment", [(["--size", "100"], "64 or 128"), (["-n", "0"], "--count"),
                                            (["--split", "dev"], "--split")])
def test_bad_scene_flags_get_one_line(semcom, tmp_path, flags, fragment):
    from conftest import assert_clean_failure

    out = tmp_path / "scenes"
    assert_clean_failure(semcom("scenes", "-o", out, *flags), fragment)
    assert not out.exists()


# query guidance ----------------------------------------------------------------------------------

def test_guidance_maps_have_the_image_size_and_the_measures_are_right():
    import torch

    from semcom_cli.data.scenes import Referent
    from semcom_cli.reconstruct.guidance import GuidanceNet, iou, patch_map

    torch.manual_seed(0)
    net = GuidanceNet(width=8).eval()
    images = torch.rand(2, 3, 64, 64)
    referents = torch.tensor([Referent(color="red").indices(), Referent(shape="circle", where="leftmost").indices()])
    logits = net(images, referents)
    assert logits.shape == (2, 64, 64)
    # the referent steers the map: the same image asked for something else gives another map
    with torch.no_grad():
        for p in net.parameters():  # FiLM starts at identity; move it off so the referent shows
            p.add_(0.05 * torch.randn_like(p))
    other = torch.tensor([Referent(color="blue").indices()] * 2)
    assert not torch.allclose(net(images, referents), net(images, other))
    target = torch.zeros(2, 64, 64, dtype=torch.bool)
    target[:, :32] = True
    perfect = torch.where(target, 10.0, -10.0)
    assert iou(perfect, target).tolist() == [1.0, 1.0]
    half = torch.where(torch.zeros_like(target).index_fill_(1, torch.arange(16), True), 10.0, -10.0)
    assert torch.allclose(iou(half, target), torch.tensor([0.5, 0.5]))
    assert torch.allclose(patch_map(perfect)[:, :4], torch.ones(2, 4, 8), atol=1e-4)


def test_the_query_reader_reads_each_text_once(tiny):
    from semcom_cli.reconstruct.guidance import QueryReader

    _, llm = tiny
    reader = QueryReader(llm, layer=1)
    states, mask = reader(["the red shape", "the leftmost triangle", "the red shape"])
    assert states.shape[0] == 3 and states.shape[2] == llm.embed_dim
    assert torch_equal(states[0], states[2]) and mask[0].sum() == mask[2].sum()
    assert len(reader._cache) == 2


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@pytest.fixture(scope="module")
def tiny():
    from conftest import tiny_model

    return tiny_model()
