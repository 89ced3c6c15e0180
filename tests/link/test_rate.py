"""Importance-aware, SNR-adaptive rate (issue 15): allocation, the repeated-copies link, Shapley
importance, the rate table and ``auto``, variable-rate files through the CLI, and their refusals."""

import json
import math

import pytest
import torch
from conftest import assert_clean_failure, tiny_model

from semcom_cli.channel import make_channel, seed_channel, send_repeated
from semcom_cli.core.errors import SemcomError
from semcom_cli.link.rate import RateTable, allocate, check_budget, token_copies
from semcom_cli.link.rate.importance import shapley_weights

# allocation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [4, 8, 12, 16, 36, 64])
def test_allocations_sum_to_the_budget(budget):
    weights = torch.tensor([[0.7, 0.1, 0.15, 0.05], [0.25] * 4, [0.0, 0.0, 1.0, 0.0]])
    copies = allocate(weights, budget, 4, can_leave_out=True)
    assert copies.dtype == torch.long and bool((copies >= 0).all())
    assert copies.sum(1).tolist() == [budget // 4] * 3


def test_uniform_weights_go_round_robin_and_importance_first():
    assert token_copies(torch.full((4,), 0.25), 2).tolist() == [1, 1, 0, 0]
    assert token_copies(torch.full((4,), 0.25), 6).tolist() == [2, 2, 1, 1]
    # a colour question: the two colour slots get every copy, the shape slots none
    assert token_copies(torch.tensor([0.5, 0.0, 0.5, 0.0]), 4).tolist() == [2, 0, 2, 0]
    # each copy halves what is left to gain: a minor token is sent once the major one has two copies
    assert token_copies(torch.tensor([0.6, 0.4, 0.0, 0.0]), 3).tolist() == [2, 1, 0, 0]


def _caption_worth() -> torch.Tensor:
    """The worth of each subset (bit masks) of " red triangle" tiled over 4 slots: colour in slots 0
    and 2, shape in 1 and 3; knowing the colour is worth 0.3, the shape 0.2, both 1."""
    def v(s):
        colour, shape = bool(s & 0b0101), bool(s & 0b1010)
        return 1.0 if colour and shape else 0.3 * colour + 0.2 * shape
    return torch.tensor([v(s) for s in range(16)], dtype=torch.float64)


def test_the_worth_table_sends_each_word_before_repeating_one():
    from semcom_cli.link.rate.allocation import sufficient_set

    worth = _caption_worth()
    weights = (worth @ shapley_weights(4)).float()  # colour slots 0.325 each, shape slots 0.175
    assert weights[0] > weights[1]
    # by weights alone two copies both go to the colour (slots 0 and 2) and the shape is never sent
    assert token_copies(weights, 2).tolist() == [1, 0, 1, 0]
    assert token_copies(weights, 2, worth=worth).tolist() == [1, 1, 0, 0]
    assert sufficient_set(worth, weights, most=1).tolist() == [1, 0, 0, 0]  # one copy: the better word
    assert token_copies(weights, 4, worth=worth).tolist() == [1, 1, 1, 1]
    assert token_copies(weights, 5, worth=worth).sum() == 5
    # a packet whose worth was not measured (NaN) falls back to the weights
    assert token_copies(weights, 2, worth=torch.full((16,), math.nan)).tolist() == [1, 0, 1, 0]


def test_sentences_send_every_token_at_least_once():
    weights = torch.tensor([[0.9, 0.05, 0.05, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # three real tokens, one padding
    copies = allocate(weights, 20, 4, can_leave_out=False, mask=mask)
    assert copies.tolist() == [[3, 1, 1, 0]]


@pytest.mark.parametrize("budget,leave_out,fragment", [
    (3, True, "below one use per token"), (0, True, "below one use per token"),
    (-8, True, "below one use per token"), (12, False, "below one use per token"),
    (10, True, "not a whole number of token copies"), (1 << 20, True, "above the limit"),
])
def test_impossible_budgets_are_refused(budget, leave_out, fragment):
    with pytest.raises(SemcomError, match=fragment):
        check_budget(budget, 4, 4, can_leave_out=leave_out)


# the link -----------------------------------------------------------------------------------------

def test_copies_are_sent_at_power_one_and_combined_exactly():
    """Every copy is a power-1 symbol; after maximum-ratio combining y = g·x + n with g = √r and
    noise of variance N0 (the copies' noise averaged), and a left-out token has g = 0."""
    x = torch.randn(4000, 3, 2, 2)
    x = x / x.pow(2).sum(-1).mean().sqrt()
    copies = torch.tensor([[4, 1, 0]]).expand(4000, 3)
    seed_channel(3)
    y, g = send_repeated(make_channel("awgn"), x, copies, 0.0)  # N0 = 1
    assert torch.allclose(g.abs()[:, 0], torch.full((4000, 2), 2.0))
    assert torch.allclose(g.abs()[:, 1], torch.ones(4000, 2)) and bool((g[:, 2] == 0).all())
    noise = y - g.abs()[..., None] * x
    for token in (0, 1):
        assert abs(float(noise[:, token].pow(2).sum(-1).mean()) - 1.0) < 0.05
    assert bool((y[:, 2] == 0).all())
    y0, g0 = send_repeated(make_channel("none"), x[:2], copies[:2], 0.0)
    assert torch.allclose(y0[:, 0], 2.0 * x[:2, 0], atol=1e-5)


def test_block_fading_copies_share_one_gain():
    x = torch.ones(2, 2, 1, 2) / math.sqrt(2)
    seed_channel(0)
    _, g = send_repeated(make_channel("rayleigh"), x, torch.tensor([[2, 1], [2, 1]]), 10.0)
    # one gain per packet: |g|² of a token sent twice is twice that of a token sent once
    assert torch.allclose(g.abs()[:, 0].pow(2), 2 * g.abs()[:, 1].pow(2), rtol=1e-4)


# importance ---------------------------------------------------------------------------------------

def test_shapley_coefficients_split_a_game_fairly():
    coef = shapley_weights(3).double()
    # worth of a subset S (bit mask): 1 if it holds token 0 or token 2 (two tokens saying the same thing)
    worth = torch.tensor([float(bool(s & 0b101)) for s in range(8)], dtype=torch.float64)
    values = worth @ coef
    assert torch.allclose(values, torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64))
    assert math.isclose(float(values.sum()), float(worth[7] - worth[0]))  # efficiency


def test_importance_weights_are_a_distribution(train_data):
    from semcom_cli.link.rate import token_importance

    model, _ = tiny_model()
    images = train_data.batch_images(train_data.captioned_ids[:3])
    with torch.no_grad():
        tokens, _ = model.image_tokens(images)
    weights = token_importance(model, "vqa", tokens, ["what color is the shape?", None, "is there a circle?"])
    assert weights.shape == (3, 2)
    assert torch.allclose(weights.sum(1), torch.ones(3), atol=1e-5) and bool((weights >= 0).all())
    assert weights[1].tolist() == [0.5, 0.5]  # no question: uniform


def test_share_set_copies_count_a_public_token_once_and_weigh_it_by_its_neediest_user():
    from semcom_cli.link.rate.importance import Importance
    from semcom_cli.link.rate.shared import share_copies
    from semcom_cli.link.sharing import PublicToken, SharePlan

    # two users, 4 slots; the shape slots 1 and 3 are public (both users see a triangle)
    plan = SharePlan((4, 4), (PublicToken(1, (0, 1), 0), PublicToken(3, (0, 1), 0)), 0.35)
    colour = torch.tensor([float(bool(s & 0b0101)) for s in range(16)], dtype=torch.float64)
    shape = torch.tensor([float(bool(s & 0b1010)) for s in range(16)], dtype=torch.float64)
    game = Importance(torch.tensor([[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5]]), torch.stack([colour, shape]))
    copies = share_copies(plan, game, 8, 4, can_leave_out=True)  # 2 copies per user, 4 for the set
    assert copies.channel_uses(4) == 16
    # user 0 asked the colour: its private colour slots; user 1 the shape: the public shape slots,
    # which user 0's zero weight does not hold back (a public token weighs its neediest user's)
    assert copies.public == [1, 1] and copies.private == [[1, 1], [0, 0]]
    assert copies.user_copies(plan, 0) == [1, 1, 1, 1] and copies.user_copies(plan, 1) == [0, 1, 0, 1]
    with pytest.raises(SemcomError, match="below one use per token"):
        share_copies(plan, game, 2, 4, can_leave_out=True)


# the rate table -----------------------------------------------------------------------------------

def _table():
    return RateTable("vqa", "awgn", [-5.0, 0.0, 15.0], [8, 16, 32, 64],
                     {"uniform": [[0.5, 0.8, 0.93, 0.97], [0.9, 0.985, 1.0, None], [0.97, 1.0, None, None]],
                      "importance": [[0.6, 0.9, 0.99, None], [0.985, 1.0, None, None], [1.0, None, None, None]]},
                     200, 0)


def test_auto_picks_the_smallest_budget_that_reaches_the_target():
    table = _table()
    assert table.choose(0.0, 0.98, "uniform") == (16, 0.985, True)
    assert table.choose(3.0, 0.98, "importance") == (8, 0.985, True)   # 3 dB reads the 0 dB row
    assert table.choose(-5.0, 0.95, "uniform") == (64, 0.97, True)
    assert table.choose(-5.0, 0.999, "uniform") == (64, 0.97, False)  # not reachable: the best measured
    assert table.choose(-20.0, 0.5, "uniform") == (64, None, False)   # below the table: its largest budget
    assert RateTable.from_json(table.to_json()) == table


@pytest.mark.parametrize("damage", [{"snrs": []}, {"budgets": [8, "16", 32, 64]},
                                    {"accuracy": {"uniform": [[0.5]]}}, {"snrs": [float("nan"), 0.0, 15.0]}])
def test_a_damaged_rate_table_is_refused(damage):
    with pytest.raises(SemcomError, match="damaged"):
        RateTable.from_json({**_table().to_json(), **damage})


# files and the CLI --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rated_checkpoint(tmp_path_factory, tiny_checkpoint, train_data):
    """The tiny checkpoint after a few rate-stage steps, with a small rate table in its manifest."""
    from semcom_cli.evaluation.rate_table import measure_rate_table
    from semcom_cli.system import SemcomModel
    from semcom_cli.system.checkpoint import read_manifest, record_metrics
    from semcom_cli.training.stages import run_stage

    model = SemcomModel.from_pretrained(tiny_checkpoint, {"train.rate.steps": 4, "train.rate.batch_size": 8})
    history = read_manifest(tiny_checkpoint)["training"]["stages"]
    summary = run_stage("rate", model, model.get_llm(), train_data)
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-rate"
    model.save_pretrained(folder, training={"stages": history + [summary]})
    model = SemcomModel.from_pretrained(folder)
    table = measure_rate_table(model, train_data, snrs=[0.0, 10.0], budgets=[2, 4, 8], limit=6)
    record_metrics(folder, {"rate_table": {**table.to_json(), "checkpoint_hash": model.hash}}, merge=True)
    return folder


def test_rate_stage_is_recorded(rated_checkpoint):
    from semcom_cli.system.checkpoint import read_manifest

    manifest = read_manifest(rated_checkpoint)
    assert [s["stage"] for s in manifest["training"]["stages"]][-1] == "rate"
    assert manifest["metrics"]["rate_table"]["budgets"] == [2, 4, 8]


@pytest.mark.parametrize("flags,uses,copies", [
    (["--channel-uses", "2"], 2, None),
    (["--channel-uses", "8", "--question", "what color is the shape?"], 8, None),
    (["--channel-uses", "auto", "--snr-feedback", "12", "--question", "is there a circle?"], None, None),
])
def test_a_variable_rate_file_round_trips(semcom, rated_checkpoint, sample_png, tmp_path, flags, uses, copies):
    enc, rx = tmp_path / "enc.safetensors", tmp_path / "rx.safetensors"
    r = semcom("encode", sample_png, "--task", "vqa", "-o", enc, "-c", rated_checkpoint, *flags)
    assert r.exit_code == 0, r.output
    header = json.loads(semcom("info", enc, "--json").stdout)
    assert header["channel_uses"] == 2 * sum(header["copies"])  # tiny: 2 symbols per token
    if uses is not None:
        assert header["channel_uses"] == uses
    else:  # auto read the table: the smallest budget reaching 95 % at 10 dB (the row at or below 12 dB)
        manifest = json.loads((rated_checkpoint / "manifest.json").read_text())
        table = RateTable.from_json(manifest["metrics"]["rate_table"])
        assert header["channel_uses"] == table.choose(12.0, 0.95, "importance")[0]
        assert header["rate"]["policy"] == "auto" and header["rate"]["snr_feedback"] == 12.0
    r = semcom("transmit", enc, "--channel", "rayleigh", "--snr", "3", "--seed", "2", "-o", rx)
    assert r.exit_code == 0, r.output
    info = json.loads(semcom("info", rx, "--json").stdout)
    assert info["tensors"]["gain"] == [2, 2, 2]  # combined copies: a gain per symbol
    r = semcom("decode", rx, "--question", "what shape is in the image?", "-c", rated_checkpoint, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["copies"] == header["copies"] and out["channel_uses"] == header["channel_uses"]


def test_same_seed_same_variable_rate_bytes(semcom, rated_checkpoint, sample_png, tmp_path):
    outs = []
    for name in ("a", "b"):
        enc, rx = tmp_path / f"{name}.enc", tmp_path / f"{name}.rx"
        assert semcom("encode", sample_png, "--task", "vqa", "-o", enc, "-c", rated_checkpoint, "--channel-uses",
                      "6", "--question", "what color is the shape?").exit_code == 0
        assert semcom("transmit", enc, "--snr", "0", "--seed", "5", "-o", rx).exit_code == 0
        outs.append(rx.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize("flags,fragment", [
    (["--channel-uses", "1"], "below one use per token"),
    (["--channel-uses", "3"], "not a whole number of token copies"),
    (["--channel-uses", "many"], "whole number or 'auto'"),
    (["--channel-uses", "auto"], "--snr-feedback"),
    (["--channel-uses", "auto", "--snr-feedback", "nan"], "finite"),
    (["--channel-uses", "auto", "--snr-feedback", "inf"], "finite"),
    (["--channel-uses", "8", "--snr-feedback", "3"], "auto only"),
    (["--question", "what color is the shape?"], "give --channel-uses"),
    (["--channel-uses", "auto", "--snr-feedback", "3", "--target-accuracy", "1.5"], "(0, 1]"),
])
def test_bad_rate_flags_get_one_line(semcom, rated_checkpoint, sample_png, tmp_path, flags, fragment):
    out = tmp_path / "enc.safetensors"
    r = semcom("encode", sample_png, "--task", "vqa", "-o", out, "-c", rated_checkpoint, *flags)
    assert_clean_failure(r, fragment)
    assert not out.exists()


def test_question_on_the_text_task_is_refused(semcom, rated_checkpoint, tmp_path):
    out = tmp_path / "enc.safetensors"
    r = semcom("encode", "--task", "text", "--text", "is there a red shape?", "-o", out, "-c", rated_checkpoint,
               "--channel-uses", "24", "--question", "what color?")
    assert_clean_failure(r, "--question is for the vqa task")
    assert not out.exists()


def test_auto_without_a_rate_table_is_refused(semcom, tiny_checkpoint, sample_png, tmp_path):
    out = tmp_path / "enc.safetensors"
    r = semcom("encode", sample_png, "--task", "vqa", "-o", out, "-c", tiny_checkpoint, "--channel-uses", "auto",
               "--snr-feedback", "5")
    assert_clean_failure(r, "no rate table", "semcom rate-table")
    assert not out.exists()


def test_a_forged_copies_header_is_refused(semcom, rated_checkpoint, sample_png, tmp_path):
    from semcom_cli.io.semantic import read_semantic, write_semantic

    enc = tmp_path / "enc.safetensors"
    assert semcom("encode", sample_png, "--task", "vqa", "-o", enc, "-c", rated_checkpoint,
                  "--channel-uses", "4").exit_code == 0
    sem = read_semantic(str(enc))
    for copies, fragment in (([1, 1, 1], "do not fit"), ([0, 0], "do not fit"), ([40000, 1], "beyond the limit"),
                             ([2, 1], "not the copies sent")):
        forged = tmp_path / "forged.safetensors"
        sem.header = sem.header.model_copy(update={"copies": copies})
        write_semantic(forged, sem)
        assert_clean_failure(semcom("transmit", forged, "--snr", "3", "-o", tmp_path / "rx"), fragment)
        assert not (tmp_path / "rx").exists()


def test_evaluate_compares_uniform_and_importance_at_equal_uses(semcom, rated_checkpoint, tmp_path):
    out = tmp_path / "rate.json"
    r = semcom("evaluate", "-c", rated_checkpoint, "--method", "uniform,importance", "--channel-uses", "2,4,auto",
               "--snr", "0,10", "--limit", "6", "-o", out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    points = {(p["method"], p["snr_db"], p["channel_uses"]): p for p in doc["points"]}
    assert len(points) == 12
    for (method, snr, uses), p in points.items():
        if uses != "auto":
            assert p["channel_uses_mean"] == uses
        else:
            assert p["channel_uses_mean"] == p["link"]["auto_budget"]
    assert (tmp_path / "rate-vqa-accuracy-awgn-rate.png").is_file()


def test_evaluate_measures_the_question_free_content_method(semcom, rated_checkpoint, tmp_path):
    out = tmp_path / "content.json"
    r = semcom("evaluate", "-c", rated_checkpoint, "--method", "uniform,content", "--channel-uses", "2,auto",
               "--snr", "5", "--limit", "6", "-o", out)
    assert r.exit_code == 0, r.output
    points = {(p["method"], p["channel_uses"]): p for p in json.loads(out.read_text())["points"]}
    assert set(points) == {("uniform", 2), ("uniform", "auto"), ("content", 2), ("content", "auto")}
    manifest = json.loads((rated_checkpoint / "manifest.json").read_text())
    assert "content" in manifest["metrics"]["rate_table"]["accuracy"]  # measured with the table
    assert points[("content", "auto")]["channel_uses_mean"] == RateTable.from_json(
        manifest["metrics"]["rate_table"]).choose(5.0, 0.95, "content")[0]


def test_without_a_question_encode_weighs_the_content(semcom, rated_checkpoint, sample_png, tmp_path):
    enc = tmp_path / "enc.safetensors"
    assert semcom("encode", sample_png, "--task", "vqa", "-o", enc, "-c", rated_checkpoint,
                  "--channel-uses", "2").exit_code == 0
    header = json.loads(semcom("info", enc, "--json").stdout)
    assert header["rate"]["method"] == "content" and sum(header["copies"]) == 1


# share sets at a variable rate --------------------------------------------------------------------

def _share_images(tmp_path, ids=(0, 0, 5)):
    from pathlib import Path

    import easy_vqa

    paths = easy_vqa.get_test_image_paths()
    out = []
    for k, i in enumerate(ids):
        p = tmp_path / f"u{k}.png"
        p.write_bytes(Path(paths[i]).read_bytes())
        out.append(p)
    return out


def test_a_share_set_at_a_rate_round_trips_within_its_budget(semcom, rated_checkpoint, tmp_path):
    images = _share_images(tmp_path)
    enc, rx = tmp_path / "enc", tmp_path / "rx"
    r = semcom("encode", *images, "--task", "vqa", "--share", "--threshold", "0", "--channel-uses", "4",
               "-q", "what color is the shape?", "-o", enc, "-c", rated_checkpoint)
    assert r.exit_code == 0, r.output
    public = json.loads(semcom("info", enc / "public.sem.safetensors", "--json").stdout)
    private = [json.loads(semcom("info", enc / f"user-{u}.sem.safetensors", "--json").stdout) for u in range(3)]
    spent = public["channel_uses"] + sum(p["channel_uses"] for p in private)
    assert spent == 3 * 4 and public["rate"]["method"] == "importance" and public["rate"]["budget"] == 4
    assert public["channel_uses"] == 2 * sum(public["copies"])  # tiny: 2 symbols per token
    r = semcom("transmit", enc, "--snr", "0,5,10", "--channel", "rayleigh", "--seed", "3", "-o", rx)
    assert r.exit_code == 0, r.output
    for u in range(3):
        r = semcom("decode", rx / f"user-{u}.sem.safetensors", "--public", rx / f"public.user-{u}.sem.safetensors",
                   "-q", "what color is the shape?", "-c", rated_checkpoint, "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["user"] == u
    again = tmp_path / "rx2"
    r = semcom("transmit", enc, "--snr", "0,5,10", "--channel", "rayleigh", "--seed", "3", "-o", again)
    assert r.exit_code == 0
    assert all((rx / f.name).read_bytes() == f.read_bytes() for f in again.iterdir())


@pytest.mark.parametrize("flags,fragment", [
    (["--channel-uses", "auto", "--snr-feedback", "3"], "not auto"),
    (["--channel-uses", "4", "-q", "what color?", "-q", "what shape?"], "one --question per user"),
    (["--channel-uses", "3"], "not a whole number of token copies"),
])
def test_bad_share_rate_flags_get_one_line(semcom, rated_checkpoint, tmp_path, flags, fragment):
    images = _share_images(tmp_path)
    out = tmp_path / "enc"
    r = semcom("encode", *images, "--task", "vqa", "--share", "-o", out, "-c", rated_checkpoint, *flags)
    assert_clean_failure(r, fragment)
    assert not out.exists() or not any(out.iterdir())


def test_evaluate_share_at_a_rate_spends_the_same_budget_both_ways(semcom, rated_checkpoint, tmp_path):
    out = tmp_path / "share.json"
    r = semcom("evaluate", "--share", "-c", rated_checkpoint, "--scenario", "same-scene", "--users", "2",
               "--snr", "0", "--channel-uses", "4", "--limit", "2", "-o", out)
    assert r.exit_code == 0, r.output
    point = json.loads(out.read_text())["points"][0]
    assert point["budget_per_user"] == 4
    assert point["channel_uses"]["shared"] == point["channel_uses"]["separate"] == 2 * 4
