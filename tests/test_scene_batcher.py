"""The batched scene generator (semcom_cli.data.scenes.batched): PIL's masks, the reference generator's
distribution and rules, the same tensors from the same seed."""

import math

import numpy as np
import pytest
import torch

from semcom_cli.data.scenes import COLOR_RGB, SceneBatcher, SceneObject, generate_scene
from semcom_cli.data.scenes.backgrounds import PHOTOS, lighten, photo_crop
from semcom_cli.data.scenes.batched import MAX_OBJECTS, fill_objects, visible_masks
from semcom_cli.data.scenes.generator import MIN_PIXELS, MIN_VISIBLE, _draw_object, _filled, _same_colour_touch
from semcom_cli.tasks.shapes import COLORS, SHAPES

SIZE = 64
SCENES = 400


@pytest.fixture(scope="module")
def batcher():
    return SceneBatcher("train", SIZE, crops=32, seed=0)


@pytest.fixture(scope="module")
def batch(batcher):
    return batcher.draw(SCENES, torch.Generator().manual_seed(1))


def _objects(batch, row: int) -> list[SceneObject]:
    """The reference's objects for the used slots of one scene, from the batch's parameters."""
    return [SceneObject(SHAPES[int(batch.shapes[row, k])], COLORS[int(batch.colors[row, k])],
                        (float(batch.centers[row, k, 0]), float(batch.centers[row, k, 1])), float(batch.radii[row, k]),
                        float(batch.angles[row, k]), float(batch.aspects[row, k]))
            for k in range(int(batch.count[row]))]


def _filled_again(batch) -> torch.Tensor:
    """[B, 5, H, W]: every used slot's polygon filled again from the returned parameters."""
    used = torch.arange(MAX_OBJECTS) < batch.count[:, None]
    filled = torch.zeros_like(batch.masks)
    filled[used] = fill_objects(batch.shapes[used], batch.centers[used], batch.radii[used], batch.angles[used],
                                batch.aspects[used], SIZE)
    return filled


def test_shapes_dtypes_and_unused_slots(batch):
    assert batch.images.shape == (SCENES, 3, SIZE, SIZE) and batch.images.dtype == torch.uint8
    assert batch.masks.shape == (SCENES, MAX_OBJECTS, SIZE, SIZE) and batch.masks.dtype == torch.bool
    assert batch.count.dtype == torch.long and batch.colors.shape == batch.shapes.shape == (SCENES, MAX_OBJECTS)
    assert batch.centers.shape == (SCENES, MAX_OBJECTS, 2) and batch.textured.shape == (SCENES,)
    unused = torch.arange(MAX_OBJECTS) >= batch.count[:, None]
    assert not batch.masks[unused].any() and (batch.colors[unused] == -1).all() and (batch.shapes[unused] == -1).all()
    assert (batch.radii[unused] == 0).all() and (batch.colors[~unused] >= 0).all()


def test_masks_are_exactly_the_pixels_that_show_each_object(batch):
    assert int(batch.masks.sum(1).max()) <= 1  # disjoint
    # the masks are the returned objects drawn again in order, later ones on top
    assert torch.equal(visible_masks(_filled_again(batch)), batch.masks)
    pixels = batch.images.permute(0, 2, 3, 1)
    palette = torch.tensor([COLOR_RGB[c] for c in COLORS], dtype=torch.uint8)
    for k in range(MAX_OBJECTS):
        shown = batch.masks[:, k]
        ink = palette[batch.colors[:, k].clamp(min=0)][:, None, None, :].expand_as(pixels)
        assert (pixels[shown] == ink[shown]).all()
    for row in torch.nonzero(~batch.textured)[:, 0].tolist():  # a plain background: one colour off the masks
        off = pixels[row][~batch.masks[row].any(0)]
        assert (off == off[0]).all() and int(off.min()) >= 230


def test_each_polygon_is_filled_as_pil_fills_it(batch):
    """The tensor fill against the reference's PIL fill (generator._filled), object by object: measured
    identical on every object (9,000 reference objects at 16, 64 and 128 pixels, and these)."""
    filled = _filled_again(batch)
    same, ious = 0, []
    for row in range(120):
        for k, obj in enumerate(_objects(batch, row)):
            pil, ours = _filled(obj, SIZE), filled[row, k].numpy()
            same += bool((pil == ours).all())
            ious.append((pil & ours).sum() / (pil | ours).sum())
    rng = np.random.default_rng(7)
    for size in (32, 128):  # other sizes, on objects the reference draws
        objects = [_draw_object(rng, size, "red") for _ in range(150)]
        ours = fill_objects(torch.tensor([SHAPES.index(o.shape) for o in objects]),
                            torch.tensor([o.center for o in objects], dtype=torch.float64),
                            torch.tensor([o.radius for o in objects], dtype=torch.float64),
                            torch.tensor([o.angle for o in objects], dtype=torch.float64),
                            torch.tensor([o.aspect for o in objects], dtype=torch.float64), size).numpy()
        for obj, mine in zip(objects, ours):
            pil = _filled(obj, size)
            same += bool((pil == mine).all())
            ious.append((pil & mine).sum() / (pil | mine).sum())
    assert same == len(ious), f"{same} of {len(ious)} identical, mean IoU {np.mean(ious):.4f}"


def test_every_scene_keeps_the_visibility_and_colour_rules(batch):
    assert int(batch.count.min()) >= 2 and int(batch.count.max()) <= 5
    used = torch.arange(MAX_OBJECTS) < batch.count[:, None]
    radii, centers, shapes = batch.radii[used], batch.centers[used], batch.shapes[used]
    assert ((radii >= 0.09 * SIZE) & (radii <= 0.22 * SIZE)).all()
    margin = 0.6 * radii[:, None]  # an object may run a little off the edge, never mostly
    assert ((centers >= margin) & (centers <= SIZE - margin)).all()
    angles, aspects = batch.angles[used], batch.aspects[used]
    assert ((angles >= 0) & (angles < 360)).all()
    rectangle = shapes == SHAPES.index("rectangle")
    assert ((aspects[rectangle] >= 0.55) & (aspects[rectangle] <= 1)).all() and (aspects[~rectangle] == 1).all()
    for row in range(SCENES):
        objects = _objects(batch, row)
        filled = np.stack([_filled(o, SIZE) for o in objects])  # the reference's own fill
        seen = batch.masks[row, : len(objects)].flatten(1).sum(1).numpy()
        assert (seen >= MIN_VISIBLE * filled.sum((1, 2))).all() and (seen >= MIN_PIXELS * SIZE * SIZE).all()
        assert not _same_colour_touch(filled, [o.color for o in objects])


def _chi2(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample chi-square statistic of two histograms over the same bins."""
    table = np.stack([a, b]).astype(float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    keep = expected > 0
    return float((((table - expected) ** 2)[keep] / expected[keep]).sum())


CHI2_999 = {2: 13.82, 3: 16.27, 7: 24.32}  # chi-square quantile 0.999 by degrees of freedom


def _close(a: np.ndarray, b: np.ndarray, sigmas: float = 4.0) -> bool:
    """Whether two samples' means agree within ``sigmas`` standard errors of their difference."""
    return abs(a.mean() - b.mean()) <= sigmas * math.sqrt(a.var() / len(a) + b.var() / len(b))


def test_the_statistics_match_the_reference_generator(batch):
    reference = [generate_scene(seed, SIZE) for seed in range(SCENES)]
    counts = (np.array([len(s.objects) for s in reference]), batch.count.numpy())
    ref_objects = [o for s in reference for o in s.objects]
    our_objects = [o for row in range(SCENES) for o in _objects(batch, row)]
    assert _chi2(*(np.bincount(c, minlength=6)[2:] for c in counts)) < CHI2_999[3]
    for field, bins in (("color", COLORS), ("shape", SHAPES)):
        hist = [np.array([sum(getattr(o, field) == v for o in objs) for v in bins])
                for objs in (ref_objects, our_objects)]
        assert _chi2(*hist) < CHI2_999[len(bins) - 1], field
    assert _close(*(np.array([o.radius for o in objs]) for objs in (ref_objects, our_objects)))
    ref_seen = np.concatenate([s.masks.sum((1, 2)) for s in reference])
    used = torch.arange(MAX_OBJECTS) < batch.count[:, None]
    our_seen = batch.masks.flatten(2).sum(2)[used].numpy()
    assert _close(ref_seen, our_seen)
    # the share of objects partly hidden by a later one
    ref_hidden = np.array([_filled(o, SIZE).sum() for o in ref_objects]) > ref_seen
    our_hidden = (_filled_again(batch).flatten(2).sum(2)[used] > batch.masks.flatten(2).sum(2)[used]).numpy()
    assert _close(ref_hidden.astype(float), our_hidden.astype(float))
    ref_plain = np.array([s.image[~s.masks.any(0)].mean() for s in reference])
    plain = torch.nonzero(~batch.textured)[:, 0]
    our_plain = np.array([batch.images[r].permute(1, 2, 0)[~batch.masks[r].any(0)].float().mean() for r in plain])
    assert _close(ref_plain, our_plain)
    assert abs(float(batch.textured.float().mean()) - 0.5) < 4 * math.sqrt(0.25 / SCENES)


def test_textured_backgrounds_are_stored_crops_lightened_as_the_reference_does(batcher):
    rng = np.random.default_rng(0)  # the batcher's seed: its crops come first from this stream
    assert np.array_equal(batcher.crops[1].permute(1, 2, 0).numpy(),
                          [photo_crop(rng, SIZE, PHOTOS["train"]) for _ in range(2)][1][1])
    textured, images = batcher._backgrounds(64, torch.Generator().manual_seed(3))
    again = torch.Generator().manual_seed(3)  # the same draws, in _backgrounds's order
    torch.rand(64, generator=again)
    torch.randint(230, 256, (64, 3, 1, 1), generator=again, dtype=torch.uint8)
    pick = torch.randint(batcher.crops.shape[0], (64,), generator=again)
    light = 0.3 + 0.3 * torch.rand(64, 1, 1, 1, generator=again, dtype=torch.float64)
    assert textured.any()
    for row in torch.nonzero(textured)[:, 0].tolist():
        crop = batcher.crops[pick[row]].permute(1, 2, 0).numpy()
        assert np.array_equal(images[row].permute(1, 2, 0).numpy(), lighten(crop, float(light[row])))


def test_the_same_seed_gives_the_same_tensors(batcher, batch):
    again = SceneBatcher("train", SIZE, crops=32, seed=0)
    assert torch.equal(again.crops, batcher.crops)
    repeat = again.draw(SCENES, torch.Generator().manual_seed(1))
    for field in batch.__dataclass_fields__:
        assert torch.equal(getattr(batch, field), getattr(repeat, field)), field
    assert not torch.equal(again.draw(SCENES, torch.Generator().manual_seed(2)).images, batch.images)
    assert not torch.equal(SceneBatcher("train", SIZE, crops=32, seed=1).crops, batcher.crops)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_same_seed_gives_the_same_tensors_and_the_cpu_fill():
    batcher = SceneBatcher("train", SIZE, device="cuda", crops=8, seed=0)
    first, second = (batcher.draw(64, torch.Generator(device="cuda").manual_seed(4)) for _ in range(2))
    for field in first.__dataclass_fields__:
        assert torch.equal(getattr(first, field), getattr(second, field)), field
    used = torch.arange(MAX_OBJECTS, device="cuda") < first.count[:, None]
    params = [getattr(first, f)[used] for f in ("shapes", "centers", "radii", "angles", "aspects")]
    assert torch.equal(fill_objects(*params, SIZE).cpu(), fill_objects(*(p.cpu() for p in params), SIZE))
