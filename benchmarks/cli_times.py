"""What one `semcom` command costs from a shell: each command run as a fresh process several times, the
median and the fastest wall-clock time printed as a table and written as JSON.

    .venv/bin/python benchmarks/cli_times.py [--repeat 5] [-o runs/cli-times.json]

Help texts import no torch; a command that loads a model pays for torch and the checkpoint on every
call (the figure a shell pipeline sees per stage).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(work: Path, semcom: str, image: str) -> list[tuple[str, list[str]]]:
    enc, rx = work / "x.sem", work / "x.rx"
    return [
        ("semcom --help", [semcom, "--help"]),
        ("semcom encode --help", [semcom, "encode", "--help"]),
        ("semcom list", [semcom, "list", "--json"]),
        ("semcom info CHECKPOINT", [semcom, "info", str(ROOT / "checkpoints" / "semcom-smollm2"), "--json"]),
        ("semcom encode IMAGE --task vqa", [semcom, "encode", image, "--task", "vqa", "-o", str(enc)]),
        ("semcom transmit FILE --snr 5", [semcom, "transmit", str(enc), "--snr", "5", "-o", str(rx)]),
        ("semcom decode FILE --question Q", [semcom, "decode", str(rx), "--question", "what color is the shape?"]),
    ]


def main() -> None:
    import easy_vqa

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    semcom = shutil.which("semcom", path=str(Path(sys.executable).parent)) or "semcom"
    image = easy_vqa.get_test_image_paths()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in _commands(Path(tmp), semcom, image):
            seconds = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                seconds.append(time.perf_counter() - began)
                if done.returncode != 0:
                    sys.exit(f"{name}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
            rows.append({"command": name, "median_s": round(statistics.median(seconds), 3),
                         "fastest_s": round(min(seconds), 3), "runs": args.repeat})
            print(f"{name:38s} median {rows[-1]['median_s']:6.2f} s   fastest {rows[-1]['fastest_s']:6.2f} s",
                  flush=True)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"repeat": args.repeat, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
