import pytest

from semcom_cli.core.errors import SemcomError
from semcom_cli.data.easyvqa import derive_captions
from semcom_cli.tasks import TEMPLATE, caption_text, get_task, normalize_answer, parse_caption


def test_template_splits_around_semantic_tokens():
    before, after = get_task("vqa").prompt("  what   color is the shape? ")
    assert before == "<|im_start|>user\n[vqa] "
    assert after == "\nwhat color is the shape?<|im_end|>\n<|im_start|>assistant\n"
    assert TEMPLATE.count("<sem>") == 1


def test_fixed_instructions_and_required_question():
    assert "Describe" in get_task("caption").prompt()[1]
    assert "Repeat" in get_task("text").prompt("ignored")[1]
    with pytest.raises(SemcomError, match="needs a question"):
        get_task("vqa").prompt("  ")
    with pytest.raises(SemcomError, match="unknown task 'vqa2'.*vqa, vqa-rephrased, vqa-varied, caption, text"):
        get_task("vqa2")


def test_caption_parsing_and_answer_normalisation():
    assert parse_caption(caption_text("teal", "circle")) == ("teal", "circle")
    assert parse_caption("It is a Brown rectangle.") == ("brown", "rectangle")
    assert normalize_answer(" Yes. ") == "yes"


def test_captions_derived_from_questions():
    caps = derive_captions(
        ["what color is the shape?", "is there not a circle?", "what shape is present?",
         "is there a blue shape?", "does the image not contain a rectangle?"],
        ["red", "no", "triangle", "no", "no"],
        [0, 1, 0, 1, 1],
    )
    assert caps == {0: ("red", "triangle")}  # image 1 reveals a circle but no colour


def test_derived_captions_agree_with_every_test_answer(test_data):
    caps = test_data.captions
    assert len(caps) > 800
    for q, a, i in zip(test_data.questions, test_data.answers, test_data.image_ids):
        if i in caps and q in ("what color is the shape?", "what shape is in the image?"):
            assert a in caps[i]


def test_tasks_score_and_prompt_through_the_registry():
    assert get_task("caption").correct("It is a red triangle.", "a red triangle") == 1.0
    assert get_task("caption").correct("a red circle", "a red triangle") == 0.0
    assert get_task("vqa").correct(" Yes.", "yes") == 1.0
    rephrased = get_task("vqa-rephrased")
    assert rephrased.tag == "vqa" and not rephrased.trainable and rephrased.modality == "image"
    assert get_task("text").modality == "text" and get_task("text").metrics == ("exact_match", "bleu", "similarity")
