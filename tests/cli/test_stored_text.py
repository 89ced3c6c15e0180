"""Stored text (header fields, manifests) is shown on the terminal, never obeyed by it."""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "files"


def test_info_shows_terminal_escapes_in_header_fields_as_text(semcom, tmp_path):
    from semcom_cli.io.semantic import SemanticFile, read_semantic

    sem = read_semantic(str(GOLDEN / "vqa.sem"))
    hostile = "scene\x1b]0;owned\x07\x1b[2J\u202e.png"  # retitle, clear the screen, reverse the line
    path = tmp_path / "hostile.sem"
    path.write_bytes(SemanticFile(sem.tensors, sem.header.model_copy(update={"source": hostile})).to_bytes())
    result = semcom("info", path)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    flat = result.stdout.replace("\n", "").replace("│", "").replace(" ", "")
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202e.png" in flat


def test_a_results_files_names_are_shown_escaped(semcom, tmp_path):
    import json

    record = {"method": "evil\x1b[31mRED\x1b]0;title\x07\u202e", "task": "vqa", "channel": "awgn", "snr_db": 0.0,
              "channel_uses": None, "channel_uses_mean": 4.0, "seed": 0,
              "metrics": {"accuracy": {"value": 0.5, "n": 2, "ci95": [0.1, 0.9]}}}
    path = tmp_path / "e.json"
    run = {"checkpoint": "ck\x1b[2J", "checkpoint_hash": "h", "preset": "p"}
    path.write_text(json.dumps({"format": "semcom-evaluate/1", "run": run,
                                "points": [record]}))
    result = semcom("evaluate", "--plot", path)
    shown = result.stdout + result.stderr
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown, shown
    assert "\\x1b[2J" in shown
