"""Hardening of ``finetune --stage federated`` (issue 34): no process outlives the command (SIGTERM on a
deployment run, Ctrl-C on a simulation run), Ray listens on the loopback interface only, and any
federated setting is accepted or refused in one line. The rogue SuperNodes are in test_federated.py's
deployment run (one run serves both)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcom_cli.core.errors import SemcomError
from semcom_cli.federated.processes import RUN_MARKER, marked_processes

FUZZ = settings(max_examples=int(os.environ.get("SEMCOM_FUZZ_EXAMPLES", "200")), deadline=3000,
                derandomize=not os.environ.get("SEMCOM_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

COMMAND = [sys.executable, "-c", "from semcom_cli.cli.app import main; main()"]


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.Popen([*COMMAND, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # a session of its own, as a shell gives a job


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def _wait_for(predicate, timeout: float, what: str, command: subprocess.Popen):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if command.poll() is not None:
            _, err = command.communicate()
            pytest.fail(f"the command ended before {what}: {command.returncode} {err.decode()[-2000:]}")
        time.sleep(0.2)
    command.kill()
    pytest.fail(f"no {what} within {timeout:.0f} s")


def _alive(pids) -> list[int]:
    left = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.NoSuchProcess:
            pass
    return left


def _run_folder(processes: list[psutil.Process]) -> str | None:
    for p in processes:
        try:
            marker = p.environ().get(RUN_MARKER)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker:
            return marker
    return None


def test_sigterm_on_a_deployment_run_leaves_no_process_no_folder_and_no_output(tiny_checkpoint, tmp_path):
    output = tmp_path / "fed"
    command = _start(["finetune", "--stage", "federated", "--engine", "deployment", "-c", str(tiny_checkpoint),
                      "-o", str(output), "--clients", "2", "--rounds", "2", "--steps", "1", "--batch-size", "4"])
    # mid-run: the ServerApp (the process that writes the output) is up and the SuperNodes with it
    _wait_for(lambda: any("flwr-serverapp" in _cmdline(p) for p in _descendants(command.pid)), 120,
              "ServerApp", command)
    seen = _descendants(command.pid)
    folder = _run_folder(seen)
    assert folder and Path(folder).is_dir()
    assert len(marked_processes(folder)) >= 4  # SuperLink, two SuperNodes, SuperExec, ServerApp, …
    command.send_signal(signal.SIGTERM)
    try:
        _, err = command.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        command.kill()
        pytest.fail("the command did not end within 60 s of SIGTERM")
    assert command.returncode not in (0, None), command.returncode
    assert b"Traceback" not in err, err.decode()[-2000:]
    assert _alive(p.pid for p in seen) == []
    assert marked_processes(folder) == []
    assert not Path(folder).exists()
    time.sleep(5)  # nothing of the run is left to write the output afterwards
    assert not output.exists() and not Path(str(output) + ".partial").exists()
    assert not any(p.name.startswith(f".{output.name}-") for p in tmp_path.iterdir())  # no staged folder


@pytest.mark.parametrize("how, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_on_a_simulation_run_ends_it_promptly_and_ray_listens_on_loopback_only(
        tiny_checkpoint, tmp_path, how, code):
    output = tmp_path / "sim"
    command = _start(["finetune", "--stage", "federated", "-c", str(tiny_checkpoint), "-o", str(output),
                      "--clients", "2", "--rounds", "20", "--steps", "2", "--batch-size", "4"])

    def ray_running():
        procs = _descendants(command.pid)
        names = " ".join(_cmdline(p) for p in procs)
        return procs if "raylet" in names and "ray::" in names else None

    _wait_for(ray_running, 120, "Ray workers", command)
    time.sleep(3)  # the round under way: devices are training
    seen = [command.pid] + [p.pid for p in _descendants(command.pid)]
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in seen]
    assert listening, "Ray's servers were not found"
    for c in listening:
        assert c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), c
    command.send_signal(how)
    started = time.time()
    try:
        _, err = command.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        command.kill()
        pytest.fail(f"the command did not end within 60 s of {how.name}")
    assert command.returncode == code, (command.returncode, err.decode()[-2000:])
    assert time.time() - started < 60
    assert b"Traceback" not in err, err.decode()[-2000:]
    time.sleep(1)
    assert _alive(seen[1:]) == []  # Ray's GCS, raylet and workers ended with the command
    assert not output.exists()


# --- any federated setting: accepted, or refused in one line --------------------------------------

numbers = st.one_of(st.none(), st.integers(-2**40, 2**40), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.text(max_size=6))
FEDERATED_FIELDS = ["clients", "rounds", "local_steps", "batch_size", "per_client", "main_style", "plain_share",
                    "data_seed", "lr_front", "lr_back", "lr_lora", "train_lora", "keep_moments", "caption_weight",
                    "llm_batch", "snr_min", "snr_max", "channels", "strategy", "proximal_mu", "server_momentum",
                    "save_every", "u_shaped", "secure_aggregation", "dp_noise", "dp_clip", "dp_delta", "no_such_field"]


def _one_line(err: SemcomError) -> None:
    text = str(err)
    assert text and "\n" not in text and "\r" not in text and len(text) <= 300, text


@FUZZ
@given(clients=st.one_of(st.none(), st.integers(-5, 100)), rounds=st.one_of(st.none(), st.integers(-5, 20_000)),
       steps=st.one_of(st.none(), st.integers(-5, 20_000)), batch_size=st.one_of(st.none(), st.integers(-5, 5000)),
       save_every=st.one_of(st.none(), st.integers(-5, 50)),
       lr=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       engine=st.one_of(st.sampled_from(["simulation", "deployment"]), st.text(max_size=10)),
       device=st.one_of(st.none(), st.sampled_from(["cpu", "cuda", "mps", ""]), st.text(max_size=5)),
       settings_=st.dictionaries(st.sampled_from(FEDERATED_FIELDS),
                                 st.one_of(numbers, st.sampled_from(["fedavg", "fedprox", "fedavgm", "x"]),
                                           st.lists(st.sampled_from(["awgn", "rayleigh", "rician", "none"]),
                                                    max_size=3)), max_size=5))
def test_any_federated_setting_is_accepted_or_refused_in_one_line(clients, rounds, steps, batch_size, save_every,
                                                                  lr, engine, device, settings_):
    """The command's flags and any ``train.federated`` override go through the checks the command applies
    before anything runs (the flags, then the preset's FederatedTrain), without training."""
    from semcom_cli.cli.federated import federated_overrides
    from semcom_cli.config.preset import apply_overrides, load_preset
    from semcom_cli.federated.app import FederatedJob

    preset = load_preset("tiny")
    try:
        overrides = federated_overrides(clients, rounds, engine, steps, batch_size, lr, save_every, device)
        overrides.update({f"train.federated.{k}": v for k, v in settings_.items()})
        cfg = apply_overrides(preset, overrides).train.federated
        job = FederatedJob("in", "out", overrides, engine=engine)
    except SemcomError as err:
        _one_line(err)
        return
    assert 1 <= cfg.clients <= 64 and cfg.rounds >= 1 and cfg.local_steps >= 1
    assert FederatedJob.from_run_config(job.run_config()).run_fields() == job.run_fields()


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["checkpoint", "output", "overrides", "resume", "engine",
                                               "reply_timeout", "nodes", "extra"]),
                              st.one_of(numbers, st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)),
                                                          max_size=3),
                                        st.dictionaries(st.text(max_size=20), numbers, max_size=2)),
                              max_size=8),
       raw=st.one_of(st.none(), st.text(max_size=30), st.binary(max_size=30)))
def test_any_job_in_the_run_config_is_read_or_refused_in_one_line(fields, raw):
    """What ``flwr run -c job=...`` hands the ServerApp (the deployment engine's only input)."""
    import base64
    import json

    from semcom_cli.federated.app import FederatedJob

    configs = [{"job": base64.b64encode(json.dumps(fields).encode()).decode()}, {"job": raw}, {}]
    for config in configs:
        try:
            job = FederatedJob.from_run_config(config)
        except SemcomError as err:
            _one_line(err)
            continue
        assert isinstance(job.checkpoint, str) and isinstance(job.output, str)


# --- an existing output: the one replace rule --------------------------------------------------------


def test_an_existing_output_is_replaced_only_when_it_is_a_checkpoint_and_force_is_given(tiny_checkpoint, tmp_path):
    """Another kind of folder, a file or a FIFO is refused as it is; a checkpoint needs --force (checked
    before anything runs: here the run would fail on its first step, --rounds 0 is refused after)."""
    from semcom_cli.cli.federated import federated_stage

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, copy)
    for path, fragment in ((other, "holds other files"), (fifo, "FIFO"), (copy, "--force")):
        with pytest.raises(SemcomError, match=fragment):
            federated_stage(path, tiny_checkpoint, 2, 1, "simulation", 1, 4, None, None, False, None)
    assert (other / "notes.txt").read_text() == "mine" and fifo.exists()
    # with --force the checkpoint passes the output check: what stops it now is the settings (no run)
    with pytest.raises(SemcomError, match="rounds"):
        federated_stage(copy, tiny_checkpoint, 2, 0, "simulation", 1, 4, None, None, False, None, force=True)
    assert (copy / "manifest.json").is_file()
