"""The benchmark harness: sweeps, results schema, resume, baselines' accounting, floors, 2-process merge."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import assert_clean_failure, run_one_and_two_processes

SWEEP = ["--method", "semantic,noiseless,digital,capacity", "--task", "vqa,text", "--snr", "0,20",
         "--channel-uses", "matched,256", "--limit", "8"]


def _run(semcom, checkpoint, out, *extra):
    r = semcom("evaluate", "-c", checkpoint, *SWEEP, "-o", out, *extra)
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_checkpoint):
    from typer.testing import CliRunner

    from semcom_cli.cli.app import app

    out = tmp_path_factory.mktemp("sweep") / "results.json"
    r = CliRunner().invoke(app, ["evaluate", "-c", str(tiny_checkpoint), *SWEEP, "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_every_combination_is_a_record_with_the_schema(sweep):
    doc = json.loads(sweep.read_text())
    assert doc["format"] == "semcom-evaluate/1"
    run = doc["run"]
    assert run["checkpoint_hash"] and run["preset"] == "tiny" and run["seeds"] == {"sample": 0, "channel": 0}
    assert {"torch", "sionna-no-rt", "sacrebleu", "torchmetrics"} <= set(run["versions"])
    keys = [(p["method"], p["task"], p["channel"], p["snr_db"], p["channel_uses"]) for p in doc["points"]]
    expected = ([("semantic", t, "awgn", s, None) for t in ("vqa", "text") for s in (0.0, 20.0)]
                + [("noiseless", t, "none", None, None) for t in ("vqa", "text")]
                + [(m, t, "awgn", s, u) for m in ("digital", "capacity") for t in ("vqa", "text")
                   for s in (0.0, 20.0) for u in (None, 256)])
    assert keys == expected
    for p in doc["points"]:
        names = {"vqa": {"accuracy"}, "text": {"exact_match", "bleu", "similarity"}}[p["task"]]
        assert set(p["metrics"]) == names
        for m in p["metrics"].values():
            assert m["n"] == 8 and m["ci95"][0] <= m["value"] <= m["ci95"][1]
        assert p["seed"] == 0 and p["channel_uses_mean"] > 0 and len(p["examples"]) == 3
        if p["method"] == "digital":
            assert 0.0 <= p["link"]["delivered"]["value"] <= p["link"]["fits"]["value"] <= 1.0
        if p["method"] == "capacity":  # what fits arrives; a picture that does not may still send its caption
            assert 0.0 <= p["link"]["fits"]["value"] <= p["link"]["delivered"]["value"] <= 1.0


def test_baselines_show_the_cliff(sweep):
    points = json.loads(sweep.read_text())["points"]

    def text(method, snr, uses):
        return next(p for p in points if p["method"] == method and p["task"] == "text"
                    and p["snr_db"] == snr and p["channel_uses"] == uses)

    # a sentence needs a few hundred bits: nothing fits the semantic pipeline's handful of channel uses
    assert text("digital", 20.0, None)["link"]["fits"]["value"] == 0.0
    assert text("capacity", 20.0, None)["metrics"]["exact_match"]["value"] == 0.0
    # 256 uses of 64-QAM at 20 dB carry every sentence intact
    assert text("digital", 20.0, 256)["metrics"]["exact_match"]["value"] == 1.0
    assert text("digital", 20.0, 256)["metrics"]["bleu"]["value"] == pytest.approx(100.0)
    # the digital scheme never beats the capacity bound
    for snr in (0.0, 20.0):
        d, c = text("digital", snr, 256), text("capacity", snr, 256)
        assert d["link"]["delivered"]["value"] <= c["link"]["delivered"]["value"]


def test_csv_and_plots_beside_the_json_and_redrawn_by_plot(semcom, sweep, tmp_path):
    rows = sweep.with_suffix(".csv").read_text().splitlines()
    doc = json.loads(sweep.read_text())
    assert len(rows) == 1 + sum(len(p["metrics"]) for p in doc["points"])
    assert rows[0].startswith("method,task,channel,snr_db,channel_uses")
    plots = sorted(sweep.parent.glob("results-*.png"))
    assert any(p.name == "results-vqa-accuracy-awgn-vs-snr.png" for p in plots)
    assert any(p.name == "results-text-bleu-awgn-vs-channel-uses.png" for p in plots)
    copy = tmp_path / "saved.json"
    shutil.copy(sweep, copy)
    r = semcom("evaluate", "--plot", copy)
    assert r.exit_code == 0, r.output
    assert sorted(p.name.replace("saved", "results") for p in tmp_path.glob("saved-*.png")) == [p.name for p in plots]
    assert (tmp_path / "saved.csv").read_text() == sweep.with_suffix(".csv").read_text()
    for p in tmp_path.glob("saved-*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_a_file_that_is_not_results(semcom, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"points": 3}')
    assert_clean_failure(semcom("evaluate", "--plot", bad), "not a semcom evaluate results file")
    assert_clean_failure(semcom("evaluate", "--plot", tmp_path / "none.json"), "no such results file")
    assert not list(tmp_path.glob("*.png"))


def test_resume_skips_finished_points_and_ends_as_an_uninterrupted_run(semcom, sweep, tiny_checkpoint,
                                                                       tmp_path, monkeypatch):
    import semcom_cli.evaluation.sweep as evaluation

    real = evaluation.evaluate_point
    calls = []

    def interrupted(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[2].key)
        return real(*args, **kwargs)

    out = tmp_path / "results.json"
    monkeypatch.setattr(evaluation, "evaluate_point", interrupted)
    r = semcom("evaluate", "-c", tiny_checkpoint, *SWEEP, "-o", out)
    assert r.exit_code == 130 and not out.exists()
    partial = json.loads((tmp_path / "results.json.partial").read_text())
    assert [d["key"] for d in partial["done"]] == calls

    resumed = []
    monkeypatch.setattr(evaluation, "evaluate_point",
                        lambda *a, **k: resumed.append(a[2].key) or real(*a, **k))
    r = semcom("evaluate", "-c", tiny_checkpoint, *SWEEP, "-o", out, "--resume")
    assert r.exit_code == 0, r.output
    assert "resuming: 3 of" in r.output
    assert not set(resumed) & set(calls) and len(resumed) == len(json.loads(sweep.read_text())["points"]) - 3
    assert json.loads(out.read_text()) == json.loads(sweep.read_text())
    assert not (tmp_path / "results.json.partial").exists()


def test_resume_refuses_other_settings(semcom, tiny_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    (tmp_path / "r.json.partial").write_text(json.dumps({"run": {"checkpoint_hash": "abc"}, "done": []}))
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "-n", "4", "-o", out, "--resume"),
                         "another checkpoint hash")
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--resume"), "--output")
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "-o", tmp_path / "s.json", "--resume"),
                         "no interrupted run")


def test_bad_sweep_values_fail_cleanly(semcom, tiny_checkpoint, tmp_path):
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--method", "telepathy"),
                         "--method: must be one of", "'telepathy'")
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--limit", "-1"), "--limit")
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--channel-uses", "0"), "positive")
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--channel-uses", "lots"), "positive integers")
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--method", "mlp"), "--mlp-checkpoint")
    assert_clean_failure(semcom("evaluate", "-c", tiny_checkpoint, "--method", "digital", "--mcs", "9qam"),
                         "unknown modulation")
    assert_clean_failure(semcom("evaluate", "--preset", "tiny"), "not an evaluation preset")
    assert_clean_failure(semcom("align", "--preset", "ci-bench", "-o", tmp_path / "x"), "evaluation preset")


# --- the digital baseline's bookkeeping -------------------------------------------------------

def test_link_bit_accounting_by_hand():
    from semcom_cli.channel.digital import LENGTH_BITS, link_for

    # 256 channel uses of 16-QAM rate 1/2: 1024 coded bits, 512 information bits,
    # 16 of them the length field: (512 - 16) / 8 = 62 payload bytes
    link = link_for(256, 10.0, "16qam-1/2")
    assert (link.coded_bits, link.info_bits, link.payload_bytes) == (1024, 512, 62)
    assert LENGTH_BITS == 16 and link.segments() == [(512, 256)]
    # 4096 uses of 256-QAM rate 5/6: 27,306 information bits, over 8,448 → four code blocks of 1,024 symbols
    big = link_for(4096, 30.0, "256qam-5/6")
    assert big.info_bits == 27306 and [s for _, s in big.segments()] == [1024] * 4
    assert sum(k for k, _ in big.segments()) == 27306
    # 4 uses of QPSK 1/3 leave 2 information bits: no 5G LDPC block is that short
    assert link_for(4, 0.0, "qpsk-1/3").payload_bytes == 0


def test_capacity_bits_by_hand():
    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.channel.digital import capacity_bits

    assert capacity_bits([16] * 3, 10.0, make_channel("awgn")).tolist() == pytest.approx([16 * math.log2(11)] * 3)
    seed_channel(0)
    fading = capacity_bits([16] * 4000, 10.0, make_channel("rayleigh"))
    # Jensen: the mean over Rayleigh draws is below the AWGN capacity
    assert fading.mean() < 16 * math.log2(11) and fading.min() >= 0
    # per-symbol fading averages over its draws: the same mean, a far smaller spread than block fading
    seed_channel(0)
    diverse = capacity_bits([16] * 4000, 10.0, make_channel("rayleigh-iid"))
    assert float(diverse.mean()) == pytest.approx(float(fading.mean()), rel=0.03)
    assert float(diverse.std()) < 0.5 * float(fading.std())
    # a packet counts only its own uses
    seed_channel(0)
    mixed = capacity_bits([1, 64], 10.0, make_channel("rayleigh-iid"))
    assert float(mixed[0]) < float(mixed[1])


def test_link_adaptation_climbs_with_snr():
    from semcom_cli.channel.digital import MCS_TABLE, choose_mcs

    order = list(MCS_TABLE)
    chosen = [order.index(choose_mcs(s)) for s in (-10, 0, 5, 10, 15, 20, 30)]
    assert chosen == sorted(chosen) and chosen[0] == 0 and chosen[-1] == len(order) - 1


def test_payloads_arrive_when_they_fit_and_the_snr_allows():
    from semcom_cli.channel import make_channel, seed_channel
    from semcom_cli.channel.digital import link_for, send_payloads

    seed_channel(0)
    link = link_for(256, 20.0, "16qam-1/2")
    payloads = [bytes(range(62)), bytes(63), None, b"hello"]
    assert send_payloads(payloads, link, 20.0, make_channel("awgn")) == [bytes(range(62)), None, None, b"hello"]
    assert send_payloads(payloads, link, -10.0, make_channel("awgn")) == [None] * 4


# --- metrics -----------------------------------------------------------------------------

def test_metric_intervals():
    from semcom_cli.evaluation import metrics

    p = metrics.proportion([1.0] * 8 + [0.0] * 2)
    assert p["value"] == 0.8 and p["ci95"] == pytest.approx([0.4902, 0.9433], abs=1e-4)  # Wilson, by hand
    assert metrics.proportion([1.0] * 5)["ci95"][1] == 1.0
    m = metrics.mean([1.0, 2.0, 3.0])
    assert m["value"] == 2.0 and m["ci95"] == pytest.approx([2 - 1.96 / math.sqrt(3), 2 + 1.96 / math.sqrt(3)], abs=1e-3)


def test_text_metrics_from_the_libraries():
    from semcom_cli.evaluation import task_metrics

    refs = ["what color is the shape?", "is there a red circle?"]
    same = task_metrics("text", refs, refs)
    assert same["exact_match"]["value"] == 1.0 and same["bleu"]["value"] == pytest.approx(100.0)
    assert same["similarity"]["value"] == pytest.approx(1.0, abs=1e-5)
    close = task_metrics("text", ["what colour is the shape?", "is there a red circle"], refs)
    lost = task_metrics("text", ["", ""], refs)
    assert lost["similarity"]["value"] == 0.0 and lost["bleu"]["value"] == 0.0
    assert 0.7 < close["similarity"]["value"] < 1.0 and 0 < close["bleu"]["value"] < 100


# --- floors (the CI gate) ------------------------------------------------------------------

def _plan(tmp_path, floor: float) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(f"""kind: evaluate
name: gate
methods: [semantic, capacity]
tasks: [text]
snrs: [20]
channel_uses: [512]
limit: 6
floors:
  - {{method: capacity, task: text, channel: awgn, snr_db: 20, channel_uses: 512, metric: exact_match, min: {floor}}}
""")
    return path


def test_floors_pass_and_fail(semcom, tiny_checkpoint, tmp_path):
    r = semcom("evaluate", "--preset", _plan(tmp_path, 0.99), "-c", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    r = semcom("evaluate", "--preset", _plan(tmp_path, 1.01), "-c", tiny_checkpoint)
    assert r.exit_code == 1
    assert "semcom: below floor: floor capacity text awgn 20 dB exact_match: 1 is below 1.01" in r.stderr


def test_ci_bench_preset_is_valid():
    from semcom_cli.evaluation.plan import load_eval_plan

    plan = load_eval_plan("ci-bench")
    assert plan.floors and {"semantic", "digital", "noiseless"} <= set(plan.methods)


# --- two processes ----------------------------------------------------------------------------

def test_two_processes_merge_into_the_single_process_report(tiny_checkpoint, tmp_path):
    args = ["evaluate", "-c", str(tiny_checkpoint), "--task", "vqa,caption", "--snr", "0",
            "--method", "semantic,digital", "--limit", "20", "--batch-size", "4"]
    run_one_and_two_processes(args, tmp_path / "one.json", tmp_path / "two.json")
    a, b = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert a["run"]["processes"] == 1 and b["run"]["processes"] == 2
    assert a["points"] == b["points"]
