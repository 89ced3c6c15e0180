"""Reworded easy-vqa questions: unseen wordings that keep the question's meaning."""

import easy_vqa
import pytest

from semcom_cli.evaluation import plan_points, sample_items

REPHRASED = "vqa-rephrased"
from semcom_cli.tasks.rephrase import ABSENT, OPEN_COLOR, OPEN_SHAPE, PRESENT, rephrase


def test_no_rewording_is_an_easy_vqa_wording():
    train, _, _ = easy_vqa.get_train_questions()
    test, _, _ = easy_vqa.get_test_questions()
    seen = set(train) | set(test)
    for i, q in enumerate(sorted(set(test))):
        for variant in range(3):
            new = rephrase(q, variant)
            assert new not in seen
            assert not {"image", "shape", "color"} & set(new.rstrip("?.").split()), new


@pytest.mark.parametrize("question, variant, expected", [
    ("what color is the circle?", 0, OPEN_COLOR[0].format(thing="circle")),
    ("what is the color of the shape?", 1, OPEN_COLOR[1].format(thing="figure")),
    ("what is the red shape?", 2, OPEN_SHAPE[2]),
    ("is there a blue shape in the image?", 0, PRESENT[0].format(item="blue figure")),
    ("does the image contain a triangle?", 4, PRESENT[1].format(item="triangle")),
    ("is no gray shape present?", 0, ABSENT[0].format(item="gray figure")),
    ("does the image not contain a rectangle?", 2, ABSENT[2].format(item="rectangle")),
])
def test_rewording_keeps_what_is_asked(question, variant, expected):
    assert rephrase(question, variant) == expected


def test_rephrased_sample_pairs_each_reworded_question_with_the_original_answer(test_data):
    original = sample_items(test_data, "vqa", 50, seed=3)
    reworded = sample_items(test_data, REPHRASED, 50, seed=3)
    assert [(k, a) for k, _, a in reworded] == [(k, a) for k, _, a in original]
    assert all(q != r for (_, q, _), (_, r, _) in zip(original, reworded))
    assert {p.task for p in plan_points(["semantic"], [REPHRASED], ["awgn"], [0.0], [None])} == {REPHRASED}
