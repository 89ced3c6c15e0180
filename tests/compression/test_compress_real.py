"""Compression of the shipped checkpoint on the real SmolLM2: int8 (smoothed, per-token activations)
with the vocabulary cut to 8k answers like the float32 model, from a file a quarter of the size."""

import pytest
import torch

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.compression.calibrate import calibration_inputs
from semcom_cli.compression.llm import compress_llm
from semcom_cli.compression.measure import part_sizes
from semcom_cli.compression.recipe import Recipe
from semcom_cli.compression.smooth import smooth_for_int8
from semcom_cli.models.compressed import save_compressed_llm
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import save_checkpoint
from semcom_cli.tasks import get_task, normalize_answer

pytestmark = pytest.mark.real


@torch.no_grad()
def _answers(model, data, rows, task="vqa"):
    seed_channel(3)
    images = data.batch_images([data.image_ids[i] for i in rows])
    tokens, mask = model.image_tokens(images)
    y, h = make_channel("awgn").send(model.encode(tokens, mask, "image"), 10.0)
    received = model.receive(y, h, 10.0, mask, "image")
    items = get_task(task).items(data)
    answers = model.answer(["vqa"] * len(rows), [items[i][1] for i in rows], received, mask)
    return [normalize_answer(a) for a in answers], [normalize_answer(items[i][2]) for i in rows]


def test_int8_with_a_smaller_vocabulary_answers_like_float32(tmp_path, test_data):
    source = SemcomModel.from_pretrained()
    llm = source.get_llm()
    rows = list(range(0, 1920, 40))  # 48 test questions, spread over the split
    before, truth = _answers(source, test_data, rows)
    reworded_before, reworded_truth = _answers(source, test_data, rows, "vqa-rephrased")
    llm.model = llm.model.merge_and_unload()
    smooth_for_int8(llm.model, calibration_inputs(source, count=32))
    recipe = Recipe("int8+vocab-8k", weights="int8", compute="int8", vocab=8192)
    compressed = compress_llm(llm, recipe, [])

    def extra(tmp):
        save_compressed_llm(compressed, tmp / "llm")
        return {"compression": {"recipe": recipe.as_dict(), "source": {"name": source.name, "hash": source.hash}}}
    save_checkpoint(source, tmp_path / "small", {}, weights="int8", extra=extra)
    small = SemcomModel.from_pretrained(tmp_path / "small")
    assert part_sizes(small)["receiver_mb"] < part_sizes(source)["receiver_mb"] / 4
    after, _ = _answers(small, test_data, rows)
    reworded_after, _ = _answers(small, test_data, rows, "vqa-rephrased")
    agree = sum(a == b for a, b in zip(before, after)) / len(rows)
    assert agree >= 0.9, (before, after)
    right = sum(a == t for a, t in zip(after, truth))
    assert right >= sum(b == t for b, t in zip(before, truth)) - 2
    assert sum(a == t for a, t in zip(reworded_after, reworded_truth)) >= \
        sum(b == t for b, t in zip(reworded_before, reworded_truth)) - 3
