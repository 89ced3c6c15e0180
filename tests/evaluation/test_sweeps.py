"""Which sweep ``semcom evaluate`` runs, and the options each takes: declared once in the library, refused in one
line where they do not belong."""

from __future__ import annotations

import pytest
from conftest import assert_clean_failure

from semcom_cli.core.errors import SemcomError
from semcom_cli.evaluation.sweeps import SWEEPS, check_options, pick_sweep


def test_a_request_picks_its_sweep():
    assert pick_sweep(["vqa"], ["semantic"], False) == "points"
    assert pick_sweep(["text"], ["semantic", "rag"], False) == "rag"
    assert pick_sweep(["reconstruct"], [], False) == "reconstruct"
    assert pick_sweep(["vqa"], [], True) == "share"
    assert set(SWEEPS) == {"points", "share", "rag", "reconstruct"}


def test_every_sweep_takes_the_common_options_and_its_own():
    for name in SWEEPS:
        check_options(name, ["--task", "--snr", "--channel", "--limit", "--seed", "--output", "--json"])
    check_options("share", ["--users", "--scenario", "--threshold"])
    check_options("reconstruct", ["--roi-share", "--decoder", "--steps", "--vqa"])
    check_options("rag", ["--k", "--corpus-users"])
    check_options("points", ["--preset", "--resume", "--plot", "--mlp-checkpoint", "--target-accuracy"])


@pytest.mark.parametrize("sweep, given, words", [
    ("points", ["--roi-share"], "--roi-share is for --task reconstruct"),
    ("points", ["--k", "--corpus-users"], "--k, --corpus-users are for --method rag"),
    ("reconstruct", ["--share"], "--share does not apply to --task reconstruct (it takes"),
    ("share", ["--method", "--preset"], "--method, --preset do not apply to --share"),
    ("rag", ["--plot", "--roi-share"], "--plot, --roi-share do not apply to --method rag"),
])
def test_an_option_of_another_sweep_is_one_line_saying_where_it_belongs(sweep, given, words):
    with pytest.raises(SemcomError) as refused:
        check_options(sweep, given)
    assert str(refused.value).startswith(words) and "\n" not in str(refused.value)


def test_evaluate_refuses_before_loading_anything(semcom, tmp_path):
    out = tmp_path / "r.json"
    assert_clean_failure(semcom("evaluate", "--task", "vqa", "--threshold", "0.3", "-o", out), "--threshold is for --share")
    assert_clean_failure(semcom("evaluate", "--share", "--resume", "-o", out), "--resume does not apply to --share")
    assert_clean_failure(semcom("evaluate", "--task", "reconstruct", "--users", "2"), "--users is for --share")
    assert not out.exists()
