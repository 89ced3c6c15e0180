"""No child process outlives its command: SIGTERM unwinds like Ctrl-C, each child's whole process group is
ended on the way out, and a child dies with semcom even when semcom is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# A command in miniature: a child that starts a grandchild, both sleeping; the pids and process group are
# printed, then the parent waits (as compress waits on its measuring child).
PARENT = textwrap.dedent("""
    import sys, time
    from semcom_cli.core.processes import child_process, handle_sigterm
    handle_sigterm()
    marker = sys.argv[1]
    try:
        with child_process(["sh", "-c", "sleep 300 & echo $!; sleep 300"], stdout=-1, text=True) as child:
            grandchild = child.stdout.readline().strip()
            print(child.pid, grandchild, flush=True)
            child.wait()
    except KeyboardInterrupt as err:
        open(marker, "w").write(type(err).__name__)  # the cleanup path ran
        raise SystemExit(143)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has ended; only its parent has yet to collect it
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _start(tmp_path: Path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "cleaned")], stdout=subprocess.PIPE,
                              text=True)
    child, grandchild = map(int, parent.stdout.readline().split())
    assert _alive(child) and _alive(grandchild)
    assert os.getpgid(child) == child != os.getpgid(parent.pid)  # the child leads a group of its own
    return parent, child, grandchild


def _gone(pids, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_end_the_childs_whole_group(how, tmp_path):
    parent, child, grandchild = _start(tmp_path)
    parent.send_signal(how)
    assert parent.wait(15) == 143
    assert (tmp_path / "cleaned").read_text() == ("Terminated" if how == signal.SIGTERM else "KeyboardInterrupt")
    assert _gone([child, grandchild])
    assert _group_members(child) == []


def test_a_child_dies_with_its_parent_even_when_the_parent_is_killed(tmp_path):
    parent, child, grandchild = _start(tmp_path)
    parent.kill()  # SIGKILL: no cleanup can run in the parent
    parent.wait(15)
    assert _gone([child])  # the kernel ends the direct child (PR_SET_PDEATHSIG)
    os.killpg(child, signal.SIGKILL) if _group_members(child) else None  # the grandchild: not the kernel's job
    assert not (tmp_path / "cleaned").exists()


def test_run_child_returns_the_output_and_leaves_nothing_running():
    from semcom_cli.core.processes import run_child

    done = run_child(["sh", "-c", "sleep 300 & echo $!; echo out; echo err >&2"])
    lingering = int(done.stdout.split()[0])
    assert done.returncode == 0 and done.stdout.split()[1] == "out" and done.stderr.strip() == "err"
    assert _gone([lingering])  # a background child of the child goes with it
