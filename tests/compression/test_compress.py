"""semcom compress: int8 storage and compute, smoothing, vocabulary pruning, layer removal, the
compressed checkpoint's format and refusals, and the measured search (tiny preset)."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from conftest import assert_clean_failure, run_pipe, tiny_model
from transformers import LlamaConfig, LlamaForCausalLM

from semcom_cli.compression.llm import compress_llm
from semcom_cli.compression.recipe import Recipe, candidate_recipes
from semcom_cli.compression.recover import name_after_removal, without_layers
from semcom_cli.compression.search import choose, pareto
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.texts import task_texts
from semcom_cli.models.compressed import save_compressed_llm
from semcom_cli.models.int8 import Int8Linear, QuantisedInputs, dequantize_rows, pack_state, quantize_rows, unpack_state
from semcom_cli.models.vocab import PrunedTokenizer, kept_token_ids
from semcom_cli.system import SemcomModel
from semcom_cli.system.checkpoint import rehash, save_checkpoint


def dynamic_linear(values: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
    """PyTorch's dynamically quantised Linear (fbgemm: one activation scale per call) with exactly these
    int8 rows: what ``Int8Linear``'s per-token scales are compared against."""
    import warnings

    from torch.ao.nn.quantized.dynamic import Linear

    with warnings.catch_warnings():  # torch marks its quantised tensors deprecated (for torchao)
        warnings.simplefilter("ignore", UserWarning)
        weight = torch._make_per_channel_quantized_tensor(values, scale.double(),
                                                          torch.zeros(values.shape[0], dtype=torch.long), 0)
    layer = Linear(values.shape[1], values.shape[0], bias_=bias is not None, dtype=torch.qint8)
    layer.set_weight_bias(weight, bias)
    return layer


ALL_INT8 = Recipe("int8+vocab", weights="int8", compute="int8", vocab=512, drop_layers=0.5)


# int8 rows ------------------------------------------------------------------

def test_int8_rows_are_within_half_a_step_and_compute_like_the_float_layer():
    torch.manual_seed(0)
    weight = torch.randn(48, 32) * torch.linspace(0.01, 3, 48)[:, None]  # rows of very different ranges
    values, scale = quantize_rows(weight)
    assert values.dtype == torch.int8 and scale.shape == (48,)
    assert bool(((dequantize_rows(values, scale) - weight).abs() <= scale[:, None] / 2 + 1e-7).all())
    x = torch.randn(7, 32)
    layer = dynamic_linear(values, scale, torch.ones(48))
    reference = x @ dequantize_rows(values, scale).T + 1
    assert torch.allclose(layer(x), reference, rtol=0.05, atol=0.05 * float(reference.abs().max()))


def test_int8_layers_scale_each_token_so_one_loud_token_costs_the_others_nothing():
    torch.manual_seed(0)
    weight = torch.randn(64, 48) * 0.1
    values, scale = quantize_rows(weight)
    shared = QuantisedInputs()
    first = Int8Linear.from_rows(values, scale, None, shared)
    second = Int8Linear.from_rows(values, scale, torch.ones(64), shared)
    x = torch.randn(2, 5, 48)
    x[0, 0] *= 1000  # one token a thousand times louder
    reference = x @ weight.T
    quiet = reference[1]
    per_token = first(x)
    assert per_token.shape == (2, 5, 64)
    assert float((per_token[1] - quiet).norm() / quiet.norm()) < 0.03
    per_call = dynamic_linear(values, scale)(x.reshape(-1, 48)).reshape(2, 5, 64)  # one scale for all tokens
    assert float((per_call[1] - quiet).norm() / quiet.norm()) > 0.3
    # a second layer reading the same tensor reuses its int8 rows; an in-place change is seen
    assert torch.equal(second(x), per_token + 1)
    x[1] *= 2
    assert torch.allclose(first(x)[1], 2 * per_token[1], rtol=1e-5, atol=1e-4)


def test_packed_state_keeps_small_tensors_and_restores_the_rest():
    state = {"big": torch.randn(64, 64), "bias": torch.randn(64), "small": torch.randn(4, 4),
             "ids": torch.arange(5)}
    packed = pack_state(state)
    assert set(packed) == {"big.int8", "big.scale", "bias", "small", "ids"}
    back = unpack_state(packed)
    assert set(back) == set(state) and torch.equal(back["bias"], state["bias"]) and torch.equal(back["ids"],
                                                                                                 state["ids"])
    assert float((back["big"] - state["big"]).abs().max()) <= float(packed["big.scale"].max()) / 2 + 1e-7


# vocabulary -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return tiny_model()[1].tokenizer


@pytest.fixture(scope="module")
def pruned(tokenizer):
    return PrunedTokenizer(tokenizer, kept_token_ids(tokenizer, task_texts(samples=200), 512))


def test_task_texts_keep_the_same_ids_and_unseen_words_are_spelt_with_kept_pieces(tokenizer, pruned):
    assert len(pruned) < 2000
    text = " what is the color of the shape?"
    assert [pruned.kept[i] for i in pruned(text)["input_ids"]] == tokenizer(text, add_special_tokens=False)[
        "input_ids"]
    for rare in (" a quadrilateral thingamajig, ÿ 日本 ✓", " zyzzogeton pterodactyl"):
        ids = pruned(rare)["input_ids"]
        assert all(0 <= i < len(pruned) for i in ids)
        assert pruned.decode(ids) == rare  # respelt, never lost
    assert pruned.decode(pruned(text)["input_ids"]) == text
    assert pruned.kept[pruned.eos_token_id] == tokenizer.eos_token_id
    assert pruned.kept[pruned.pad_token_id] == tokenizer.pad_token_id


def test_held_out_wordings_use_no_word_task_texts_give_away(tokenizer):
    """The kept set is built from training texts only: the evaluation-only rewordings are not read."""
    from semcom_cli.tasks.rephrase import rephrase

    texts = " ".join(task_texts(samples=200))
    assert rephrase("what color is the shape?", 3) not in texts


# building, saving, loading ----------------------------------------------------

def _merged(checkpoint: Path) -> SemcomModel:
    model = SemcomModel.from_pretrained(checkpoint)
    llm = model.get_llm()
    llm.model = llm.model.merge_and_unload()
    return model


def _write(model: SemcomModel, recipe: Recipe, folder: Path, drop=(), float_linears=()) -> str:
    source = without_layers(model.llm, list(drop)) if drop else model.llm
    compressed = compress_llm(source, recipe, list(float_linears))

    def extra(tmp):
        save_compressed_llm(compressed, tmp / "llm")
        return {"compression": {"recipe": recipe.as_dict(), "source": {"name": model.name, "hash": model.hash}}}
    return save_checkpoint(model, folder, {}, weights=recipe.weights, extra=extra)


def test_layers_are_removed_and_the_rest_renumbered():
    from semcom_cli.models.llm import LLM

    config = LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=4,
                         num_attention_heads=2, num_key_value_heads=1)
    network = LlamaForCausalLM(config)
    for i, layer in enumerate(network.model.layers):
        layer.input_layernorm.weight.data.fill_(float(i))
    short = without_layers(LLM(network, None, "x", "0"), [1, 2]).model
    assert short.config.num_hidden_layers == 2 and network.config.num_hidden_layers == 4  # a copy
    assert [float(layer.input_layernorm.weight[0]) for layer in short.model.layers] == [0.0, 3.0]
    assert [layer.self_attn.layer_idx for layer in short.model.layers] == [0, 1]
    assert name_after_removal("model.layers.3.mlp.up_proj", [1, 2]) == "model.layers.1.mlp.up_proj"
    assert name_after_removal("model.layers.2.mlp.up_proj", [1, 2]) is None
    assert name_after_removal("lm_head", [1, 2]) == "lm_head"
    assert Recipe("x", drop_layers=0.1).layers_dropped(30) == 3 and Recipe("x", drop_layers=0.01).layers_dropped(2) == 1
    with pytest.raises(ValueError):
        Recipe("x", compute="int8")  # int8 compute needs int8 weights


def test_compressed_checkpoint_round_trips_with_the_same_answers_and_bytes(tiny_checkpoint, tmp_path, test_data):
    model = _merged(tiny_checkpoint)
    digest = _write(model, ALL_INT8, tmp_path / "a" / "small", drop=[1])
    assert _write(model, ALL_INT8, tmp_path / "b" / "small", drop=[1]) == digest  # same input, same bytes
    assert (tmp_path / "a" / "small" / "llm" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "small" / "llm" / "model.safetensors").read_bytes()
    loaded = SemcomModel.from_pretrained(tmp_path / "a" / "small")
    assert loaded.hash == digest and loaded.adapter_dir is None
    llm = loaded.get_llm()
    assert llm.model.config.num_hidden_layers == 1 and len(llm.tokenizer) == llm.model.config.vocab_size < 2000
    assert isinstance(llm.model.lm_head, Int8Linear) and llm.model.lm_head.out_features == len(llm.tokenizer)
    ids = list(range(8))
    images = test_data.batch_images([test_data.image_ids[i] for i in ids])
    questions = [test_data.questions[i] for i in ids]
    with torch.no_grad():
        tokens, mask = loaded.image_tokens(images)
        first = loaded.answer(["vqa"] * 8, questions, tokens, mask)
        again = SemcomModel.from_pretrained(tmp_path / "b" / "small")
        assert again.answer(["vqa"] * 8, questions, *again.image_tokens(images)) == first
    # the transmitter's parts are stored as int8 rows, and read back to float
    from safetensors.torch import load_file
    assert any(k.endswith(".int8") for k in load_file(tmp_path / "a" / "small" / "vision" / "model.safetensors"))


def test_smoothing_keeps_the_float_model_computing_the_same(tiny_checkpoint):
    from semcom_cli.compression.calibrate import _forward, calibration_inputs
    from semcom_cli.compression.smooth import smooth_for_int8

    model = _merged(tiny_checkpoint)
    batches = calibration_inputs(model, count=8, batch=8)
    network = model.llm.model
    with torch.no_grad():
        before = [_forward(network, e, m).logits for e, m in batches]
        assert smooth_for_int8(network, batches) == 3 * network.config.num_hidden_layers
        after = [_forward(network, e, m).logits for e, m in batches]
    for a, b in zip(before, after):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


# refusals -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def compressed(tiny_checkpoint, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compressed") / "small"
    _write(_merged(tiny_checkpoint), ALL_INT8, folder)
    return folder


def test_compressed_checkpoint_runs_the_command_line_pipeline(compressed, sample_png):
    out = run_pipe(sample_png, "what shape is this?", checkpoint=compressed)
    assert out["checkpoint"] == "small" and isinstance(out["answer"], str)


def test_a_compressed_checkpoint_made_with_another_base_model_is_refused(compressed, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(compressed, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["base_model"]["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    rehash(other)
    with pytest.raises(SemcomError, match="trained on base model sha256 000000000000"):
        SemcomModel.from_pretrained(other).get_llm()


def test_damaged_compressed_llms_are_refused_in_one_line(compressed, tmp_path, semcom, sample_png):
    broken = tmp_path / "broken"
    shutil.copytree(compressed, broken)
    weights = broken / "llm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = semcom("encode", sample_png, "--task", "vqa", "-c", broken, "-o", tmp_path / "x.safetensors")
    assert_clean_failure(result, "do not match the manifest's hash")
    assert not (tmp_path / "x.safetensors").exists()
    rehash(broken)  # a consistent hash over a truncated file: read, then refused
    with pytest.raises(SemcomError, match="not a compressed LLM"):
        SemcomModel.from_pretrained(broken).get_llm()
    shutil.rmtree(broken / "llm")
    with pytest.raises(SemcomError, match="without its compressed LLM"):
        rehash(broken)
        SemcomModel.from_pretrained(broken)


@pytest.mark.parametrize("args, fragment", [
    (["--budget-mb", "0"], "--budget-mb: Input should be greater than 0"),
    (["--budget-mb", "-5"], "--budget-mb: Input should be greater than 0"),
    (["--budget-mb", "nan"], "--budget-mb: Input should be a finite number"),
    (["--budget-mb", "1e30"], "--budget-mb: Input should be less than or equal to"),
    (["--budget-mb", "500", "--min-accuracy", "1.5"], "--min-accuracy: Input should be less than or equal to 1"),
    (["--budget-mb", "500", "--seed", "-1"], "--seed: Input should be greater than or equal to 0"),
    (["--budget-mb", "500", "--recipes", "int8-dynamic,zip"], "unknown recipe 'zip'"),
    (["--budget-mb", "500", "--limit", "0"], "--limit: Input should be greater than or equal to 1"),
    (["--budget-mb", "500", "--recipes", " , "], "--recipes names no recipe"),
])
def test_impossible_parameters_are_refused_in_one_line(semcom, tiny_checkpoint, tmp_path, args, fragment):
    result = semcom("compress", "-c", tiny_checkpoint, "-o", tmp_path / "out", *args)
    assert_clean_failure(result, fragment)
    assert not (tmp_path / "out").exists()


def test_wrong_inputs_and_outputs_are_refused(semcom, tiny_checkpoint, compressed, tmp_path):
    not_checkpoint = tmp_path / "plain"
    not_checkpoint.mkdir()
    (not_checkpoint / "notes.txt").write_text("mine")
    assert_clean_failure(semcom("compress", "-c", tiny_checkpoint, "-o", not_checkpoint, "--budget-mb", "900"),
                         "holds other files, not a semcom checkpoint")
    assert (not_checkpoint / "notes.txt").read_text() == "mine"
    afile = tmp_path / "file"
    afile.write_text("x")
    assert_clean_failure(semcom("compress", "-c", tiny_checkpoint, "-o", afile, "--budget-mb", "900"),
                         "a file is there, not a folder")
    assert afile.read_text() == "x"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_clean_failure(semcom("compress", "-c", tiny_checkpoint, "-o", fifo, "--budget-mb", "900"),
                         "a FIFO, not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    # a checkpoint of the command's own kind is replaced only with --force
    assert_clean_failure(semcom("compress", "-c", tiny_checkpoint, "-o", compressed, "--budget-mb", "900"),
                         "a semcom checkpoint is already there; add --force")
    assert_clean_failure(semcom("compress", "-c", not_checkpoint, "-o", tmp_path / "o", "--budget-mb", "900"),
                         "not a semcom checkpoint")
    assert_clean_failure(semcom("compress", "-c", compressed, "-o", tmp_path / "o", "--budget-mb", "900",
                                "--recipes", "int8-dynamic"), "already compressed")
    assert_clean_failure(semcom("finetune", "--stage", "instruct", "-c", compressed, "-o", tmp_path / "o"),
                         "a compressed checkpoint; fine-tune the checkpoint it was made from")
    assert not (tmp_path / "o").exists()


# the search -------------------------------------------------------------------

def _row(name, mb, acc, qps):
    return {"name": name, "receiver_mb": mb, "peak_rss_mb": mb, "vqa_0db": acc, "vqa_10db": acc,
            "questions_per_s": qps}


def test_choose_keeps_the_fastest_within_budget_and_floor_and_pareto_marks_the_front():
    table = [_row("source", 500, 1.0, 10), _row("a", 200, 0.99, 20), _row("b", 100, 0.9, 40),
             _row("c", 300, 0.995, 15), _row("d", 250, 0.99, 18)]
    floor = {"vqa_0db": 0.985, "vqa_10db": 0.985}
    assert choose(table, 1000, floor)["name"] == "a"
    assert choose(table, 150, floor) is None
    assert choose(table, 150, {"vqa_0db": 0.5, "vqa_10db": 0.5})["name"] == "b"
    assert choose(table, 1000, {"vqa_0db": 1.0, "vqa_10db": 1.0}) is None  # the source is never chosen
    assert pareto(table) == ["source", "a", "b", "c"]  # d: a is smaller, as accurate and faster
    assert len({r.name for r in candidate_recipes()}) == len(candidate_recipes())


@pytest.fixture(scope="module")
def search(tiny_checkpoint, tmp_path_factory):
    """One measured search, ``compress`` with two recipes, in a folder that also holds a lookalike of
    compress's candidates folder and a stale one: (the command's result, its output, the folder, each
    measured checkpoint's figures as ``_measure`` returned them, by candidate name)."""
    from conftest import Semcom

    from semcom_cli.compression import search as searching

    folder = tmp_path_factory.mktemp("search")
    out = folder / "fit"
    # a folder that only looks like compress's candidates (here: a copy of someone's work) is not compress's
    lookalike = folder / ".fit-candidates"
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("mine")
    stale = folder / ".fit-candidates-4194304-abcd_123"  # a SIGKILLed compress's (no such process)
    (stale / "int8-dynamic").mkdir(parents=True)
    measured, measure = {}, searching._measure

    def recorded(checkpoint, *args):
        figures = measure(checkpoint, *args)
        measured["source" if Path(checkpoint) == Path(tiny_checkpoint) else Path(checkpoint).name] = figures
        return figures

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(searching, "_measure", recorded)
        result = Semcom()("compress", "-c", tiny_checkpoint, "-o", out, "--budget-mb", "100000", "--min-accuracy",
                          "0", "--recipes", "int8-dynamic,int8+vocab-4k", "--limit", "12", "--json")
    return result, out, folder, measured


def test_the_search_writes_the_fastest_fit_and_its_measures_reproduce(search):
    from semcom_cli.compression.measure import measure_checkpoint

    result, out, folder, measured = search
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    names = [r["name"] for r in doc["table"]]
    assert names == ["source", "int8-dynamic", "int8+vocab-4k"] and sorted(measured) == sorted(names)
    assert doc["chosen"] == max(doc["table"][1:], key=lambda r: r["questions_per_s"])["name"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["compression"]["recipe"]["name"] == doc["chosen"]
    assert manifest["metrics"]["compression"]["table"] == doc["table"]
    chosen = next(r for r in doc["table"] if r["name"] == doc["chosen"])
    again = measure_checkpoint(out, limit=12)  # a fresh load of the written checkpoint: the same answers
    for key in ("vqa_0db", "vqa_10db", "vqa_rephrased_10db", "text_bleu_10db", "receiver_mb"):
        assert again[key] == pytest.approx(chosen[key]), key
    assert chosen["receiver_mb"] < doc["table"][0]["receiver_mb"]
    assert [p.name for p in folder.glob(".fit-candidates*")] == [".fit-candidates"]  # its own and the stale gone
    assert (folder / ".fit-candidates" / "notes.txt").read_text() == "mine"


def test_a_budget_below_every_candidate_writes_nothing(semcom, tiny_checkpoint, tmp_path, search, monkeypatch):
    """Everything runs as it does for real but the measuring processes: their figures are those the search
    above measured (the same checkpoint, recipe, limit and seed); measuring is that test's part, what
    compress does when no figure fits the budget is this one's."""
    from semcom_cli.compression import search as searching

    measured, asked = search[3], []

    def measure(checkpoint, *args):
        asked.append("source" if Path(checkpoint) == Path(tiny_checkpoint) else Path(checkpoint).name)
        assert Path(checkpoint).is_dir()  # the candidate was written to be measured
        return dict(measured[asked[-1]])

    monkeypatch.setattr(searching, "_measure", measure)
    result = semcom("compress", "-c", tiny_checkpoint, "-o", tmp_path / "none", "--budget-mb", "1",
                    "--recipes", "int8-dynamic", "--limit", "12")
    assert_clean_failure(result, "no candidate fits a budget of 1 MB", "nothing written",
                         f"was {measured['int8-dynamic']['peak_rss_mb']:.0f} MB (int8-dynamic)")
    assert asked == ["source", "int8-dynamic"]
    assert list(tmp_path.iterdir()) == []


# comparing checkpoints side by side -------------------------------------------------

def test_evaluate_compares_checkpoints_side_by_side(semcom, tiny_checkpoint, compressed, tmp_path):
    out = tmp_path / "side.json"
    result = semcom("evaluate", "-c", f"{tiny_checkpoint},{compressed}", "--task", "vqa", "--snr", "0,10",
                    "--limit", "6", "-o", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    methods = sorted({p["method"] for p in doc["points"]})
    assert methods == ["semantic@small", "semantic@tiny-a"]
    assert {p["checkpoint_hash"] for p in doc["points"]} == set(doc["run"]["checkpoint_hash"].split(","))
    assert "semantic@small" in out.with_suffix(".csv").read_text()
    # the compressed checkpoint's points are those it gives alone
    alone = semcom("evaluate", "-c", compressed, "--task", "vqa", "--snr", "0,10", "--limit", "6", "--json")
    solo = {p["snr_db"]: p["metrics"] for p in json.loads(alone.stdout)["points"]}
    assert {p["snr_db"]: p["metrics"] for p in doc["points"] if p["checkpoint"] == "small"} == solo
    assert_clean_failure(semcom("evaluate", "-c", f"{tiny_checkpoint},{compressed}", "--resume", "-o", out),
                         "takes no --resume")
    assert_clean_failure(semcom("evaluate", "-c", f"{tiny_checkpoint},{tmp_path / 'nothing'}"),
                         "no such checkpoint folder")


# the settings, fuzzed ------------------------------------------------------------------------

_ANY = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                 st.text(max_size=12), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=2000, derandomize=True, database=None)
@given(budget_mb=_ANY, min_accuracy=_ANY, limit=_ANY, seed=_ANY)
def test_any_compress_settings_are_accepted_in_range_or_refused_in_one_line(budget_mb, min_accuracy, limit, seed):
    from semcom_cli.compression.search import compress_settings

    try:
        got = compress_settings(budget_mb=budget_mb, min_accuracy=min_accuracy, limit=limit, seed=seed)
    except SemcomError as err:
        assert "\n" not in str(err) and str(err).startswith("compress: ")
        return
    assert math.isfinite(got.budget_mb) and 0 < got.budget_mb <= 1e7
    assert got.min_accuracy is None or 0 <= got.min_accuracy <= 1
    assert 1 <= got.limit <= 100_000 and 0 <= got.seed <= 2**32 - 1
