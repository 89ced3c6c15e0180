"""A checkpoint's manifest updated by several commands at once (``rate-table --write``, benchmarks recording
their figures): each change is kept, none lost to a writer that read the manifest before another wrote it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

WRITER = """
import sys, time
from semcom_cli.io.checkpoint import record_metrics
time.sleep(float(sys.argv[3]))
record_metrics(sys.argv[1], {sys.argv[2]: {"measured": sys.argv[2]}}, merge=True)
"""


def test_concurrent_metric_records_are_all_kept_and_the_hash_stays(tiny_checkpoint, tmp_path):
    folder = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, folder)
    before = json.loads((folder / "manifest.json").read_text())["hash"]
    names = [f"bench{i}" for i in range(8)]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), name, "0.5"]) for name in names]
    assert [w.wait(120) for w in writers] == [0] * len(names)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {n: manifest["metrics"][n] for n in names} == {n: {"measured": n} for n in names}
    assert manifest["hash"] == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in tiny_checkpoint.iterdir())
