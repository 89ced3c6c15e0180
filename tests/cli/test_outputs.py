"""The one output rule, for every command that writes: a device, a FIFO or another kind's output is never
touched; the command's own kind is replaced only with --force. Every refusal comes before any work."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from conftest import assert_clean_failure

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "files"


def _commands(checkpoint: Path, png: Path) -> dict:
    """argv (with OUT for the output) of each command, by the kind of output it writes."""
    return {
        "encode": (["encode", png, "--task", "vqa", "-o", "OUT", "-c", checkpoint], "file"),
        "transmit": (["transmit", GOLDEN / "vqa.sem", "--snr", "5", "-o", "OUT"], "file"),
        "decode": (["decode", GOLDEN / "awgn.rx", "-q", "what shape is in the image?", "-o", "OUT"], "file"),
        "evaluate": (["evaluate", "-c", checkpoint, "-n", "2", "-o", "OUT"], "file"),
        "transmit a share set": (["transmit", GOLDEN / "share", "--snr", "5", "-o", "OUT"], "folder"),
        "finetune": (["finetune", "--stage", "instruct", "-c", checkpoint, "-o", "OUT"], "folder"),
        "compress": (["compress", "-c", checkpoint, "-o", "OUT", "--budget-mb", "900"], "folder"),
        "align": (["align", "-o", "OUT", "--steps", "1"], "folder"),
    }


def _argv(args: list, out: Path, *extra: str) -> list:
    return [out if a == "OUT" else a for a in args] + list(extra)


def _character_device(path: Path) -> Path:
    """A character device made in the test's own folder (the null device's numbers); where making one
    is not allowed, a link to the system's null device (still only ever looked at, never written)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        path.symlink_to("/dev/null")
    return path


def _digest(path: Path) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.mark.parametrize("command", list(_commands(Path("c"), Path("p"))))
def test_devices_fifos_and_other_kinds_outputs_are_never_touched(command, semcom, tiny_checkpoint, sample_png,
                                                                tmp_path):
    args, shape = _commands(tiny_checkpoint, sample_png)[command]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    device = _character_device(tmp_path / "device")
    for special, test in ((fifo, stat.S_ISFIFO), (device, stat.S_ISCHR)):
        assert_clean_failure(semcom(*_argv(args, special, "--force")), "not a regular file")
        assert test(os.stat(special).st_mode), f"{special} was replaced"
    # another kind's output: a folder holding a user's notes, a user's file
    other = tmp_path / "other"
    if shape == "folder":
        other.mkdir()
        (other / "notes.txt").write_text("mine")
    else:
        other.write_text("mine\n")
    before = _digest(other)
    assert_clean_failure(semcom(*_argv(args, other, "--force")), "semcom replaces only its own output")
    assert _digest(other) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device", "fifo", "other"]  # no staging left


def test_an_output_of_the_commands_own_kind_is_replaced_only_with_force(semcom, tmp_path):
    out = tmp_path / "rx.sem"
    assert semcom("transmit", GOLDEN / "vqa.sem", "--snr", "5", "-o", out).exit_code == 0
    first = out.read_bytes()
    assert_clean_failure(semcom("transmit", GOLDEN / "vqa.sem", "--snr", "9", "-o", out),
                         "a semantic file is already there; add --force")
    assert out.read_bytes() == first
    assert semcom("transmit", GOLDEN / "vqa.sem", "--snr", "9", "-o", out, "--force").exit_code == 0
    assert out.read_bytes() != first
    # through a symbolic link the file it names is written, and the link stays a link
    link = tmp_path / "link.sem"
    link.symlink_to(out)
    assert semcom("transmit", GOLDEN / "vqa.sem", "--snr", "1", "-o", link, "--force").exit_code == 0
    assert link.is_symlink() and out.read_bytes() != first


def test_an_empty_folder_is_a_new_output_and_a_share_set_is_replaced_with_force(semcom, tmp_path):
    out = tmp_path / "rx"
    out.mkdir()
    assert semcom("transmit", GOLDEN / "share", "--snr", "5", "-o", out).exit_code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written and all(n.endswith(".sem.safetensors") for n in written)
    assert_clean_failure(semcom("transmit", GOLDEN / "share", "--snr", "5", "-o", out),
                         "a share set is already there; add --force")
    assert semcom("transmit", GOLDEN / "share", "--snr", "1", "-o", out, "--force").exit_code == 0


def test_the_writer_itself_refuses_what_is_not_a_regular_file(tmp_path):
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.files import atomic_write_bytes

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SemcomError, match="a FIFO, not a regular file"):
        atomic_write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(SemcomError, match="a folder, not a regular file"):
        atomic_write_bytes(tmp_path, b"x")
    atomic_write_bytes(tmp_path / "new", b"x")
    assert (tmp_path / "new").read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "new"]


def _results(folder: Path, **point) -> Path:
    import json

    record = {"method": "semantic", "task": "vqa", "channel": "awgn", "snr_db": 0.0, "channel_uses": None,
              "channel_uses_mean": 4.0, "seed": 0, "metrics": {"accuracy": {"value": 0.5, "n": 2, "ci95": [0.1, 0.9]}},
              **point}
    path = folder / "r.json"
    run = {"checkpoint": "ck", "checkpoint_hash": "h", "preset": "p"}
    path.write_text(json.dumps({"format": "semcom-evaluate/1", "run": run, "points": [record]}))
    return path


def test_a_results_files_csv_and_plots_follow_the_same_rule(semcom, tmp_path):
    results = _results(tmp_path)
    assert semcom("evaluate", "--plot", results).exit_code == 0  # its own CSV and plots: redrawn
    plots = sorted(tmp_path.glob("r-*.png"))
    assert plots and (tmp_path / "r.csv").is_file()
    # a file of another kind where a plot or the CSV goes is left alone
    plots[0].write_text("my notes, not a picture\n")
    assert_clean_failure(semcom("evaluate", "--plot", results), "is another kind of file, not a picture (PNG)")
    assert plots[0].read_text() == "my notes, not a picture\n"
    plots[0].unlink()
    (tmp_path / "r.csv").write_bytes(b"\x00\x01binary")
    assert_clean_failure(semcom("evaluate", "--plot", results), "not a CSV table")
    assert (tmp_path / "r.csv").read_bytes() == b"\x00\x01binary"
    # before a sweep: the results file's companions are claimed with it
    (tmp_path / "r.csv").unlink()
    fifo = tmp_path / "s-accuracy.png"
    os.mkfifo(fifo)
    assert_clean_failure(semcom("evaluate", "-n", "2", "-o", tmp_path / "s.json"), "a FIFO, not a regular file")
    assert not (tmp_path / "s.json").exists() and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_symbolic_link_is_never_replaced_as_a_folder_output(semcom, tiny_checkpoint, tmp_path):
    real = tmp_path / "rx"
    assert semcom("transmit", GOLDEN / "share", "--snr", "5", "-o", real).exit_code == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    assert_clean_failure(semcom("transmit", GOLDEN / "share", "--snr", "5", "-o", link, "--force"),
                         "a symbolic link; give the folder it names")
    assert link.is_symlink() and sorted(p.name for p in real.iterdir())


def test_two_commands_writing_one_output_at_once_are_refused_not_interleaved(semcom, tmp_path):
    """An output is taken for the whole of the command writing it: a second command writing the same path
    meanwhile (two trainings or sweeps to one -o, sharing its partial run) is refused in one line."""
    import subprocess
    import sys

    from semcom_cli.core.outputs import claim_for_run, release_claims

    out = tmp_path / "rx.sem"
    argv = [sys.executable, "-c", "from semcom_cli.cli.app import main; main()", "transmit", str(GOLDEN / "vqa.sem"),
            "--snr", "5", "-o", str(out)]
    claim_for_run(tmp_path / "." / "rx.sem")  # another spelling of the same path
    try:
        busy = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and "another semcom command is writing it now" in busy.stderr, busy.stderr
        assert not out.exists()
    finally:
        release_claims()
    free = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert free.returncode == 0, free.stderr
    assert semcom("transmit", GOLDEN / "vqa.sem", "--snr", "5", "-o", out, "--force").exit_code == 0  # released
