"""The wording generator and the picture augmentation: held-out wordings never produced, answers
right by construction, the same pictures under the same seed."""

from __future__ import annotations

import random

import torch

from semcom_cli.data.augment import augment_batch, render_shape, render_shapes
from semcom_cli.tasks.rephrase import rephrase
from semcom_cli.tasks.shapes import COLORS, SHAPES
from semcom_cli.tasks.wording import HELD_OUT, ask, normalize_wording


def test_the_generator_never_produces_a_held_out_wording(test_data):
    # every wording vqa-rephrased makes of the test questions is in the held-out set ...
    made = {normalize_wording(rephrase(q, v)) for q in test_data.questions[:600] for v in range(3)}
    assert made <= HELD_OUT
    # ... and 30,000 generated questions never hit one, nor use its telltale words
    rng = random.Random(0)
    for _ in range(30000):
        question, _ = ask(rng.choice(COLORS), rng.choice(SHAPES), rng)
        words = normalize_wording(question)
        assert words not in HELD_OUT
        assert "picture" not in words and "figure" not in words


def test_generated_answers_follow_the_image():
    rng = random.Random(1)
    seen = set()
    for _ in range(4000):
        color, shape = rng.choice(COLORS), rng.choice(SHAPES)
        question, answer = ask(color, shape, rng)
        seen.add(answer)
        words = normalize_wording(question).split()
        if answer in COLORS:
            assert answer == color
        elif answer in SHAPES:
            assert answer == shape
        else:
            assert answer in ("yes", "no")
            negations = {"no", "not", "lack", "lacking", "but", "other", "nothing", "without", "absent", "missing",
                         "free", "devoid", "false", "isn't", "non", "avoid", "wrong"}
            negated = bool(negations & set(words))
            asked = [w for w in words if w in COLORS or w in SHAPES]
            shown = asked[-1] in (color, shape)
            assert (answer == "yes") == (shown != negated), question
    assert {"yes", "no"} <= seen and set(COLORS) <= seen and set(SHAPES) <= seen


def test_many_wordings_per_kind():
    rng = random.Random(2)
    wordings = {normalize_wording(ask("red", "circle", rng)[0]) for _ in range(3000)}
    assert len(wordings) > 1000


def test_augmentation_is_deterministic_under_a_seed_and_keeps_images_in_range(test_data):
    images = test_data.batch_images(range(8))
    a = augment_batch(images, random.Random(5), 1.0)
    b = augment_batch(images, random.Random(5), 1.0)
    c = augment_batch(images, random.Random(6), 1.0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == images.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(augment_batch(images, random.Random(5), 0.0), images)
    # the shape is still there: its pixels keep a colour far from the background
    background = a[:, :, :2, :2].mean(dim=(2, 3))
    far = ((a - background[:, :, None, None]).abs().sum(1) > 0.5).flatten(1).sum(1)
    assert bool((far > 20).all())


def test_rendered_shapes_are_deterministic_and_drawn_in_their_colour():
    x = render_shapes([("red", "circle"), ("blue", "triangle")], random.Random(3))
    y = render_shapes([("red", "circle"), ("blue", "triangle")], random.Random(3))
    assert torch.equal(x, y) and x.shape == (2, 3, 64, 64)
    for _ in range(20):
        im = render_shape("green", "rectangle", random.Random(_))
        background = im[:, :2, :2].mean(dim=(1, 2))
        shape_pixels = im[:, (im - background[:, None, None]).abs().sum(0) > 0.5]
        assert shape_pixels.shape[1] > 30
        median = shape_pixels.median(1).values
        assert median[1] > median[0] + 0.2 and median[1] > median[2] + 0.2  # green dominates


def test_a_global_pool_vision_encoder_reads_a_moved_shape_the_same():
    from semcom_cli.models.vision import VisionEncoder

    torch.manual_seed(0)
    encoder = VisionEncoder([8, 16, 16, 16], 16, 2, strides=[2, 2, 2, 1], pool="global")
    grid = VisionEncoder([8, 16, 16], 16, 2)
    assert "pool" not in grid.config and encoder.config["pool"] == "global"  # older checkpoints still load
    images = torch.full((2, 3, 64, 64), 0.95)
    images[0, :, 16:24, 16:24] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    images[1, :, 24:32, 32:40] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # moved by the total stride
    with torch.no_grad():
        def change(features):
            return float((features[0] - features[1]).norm() / features[0].norm())
        # only the picture's border (zero padding) tells the two apart; the 4×4 layout sees the move
        assert change(encoder(images)) < 0.1 < change(grid(images))
