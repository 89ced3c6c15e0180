"""What one `semcom` command costs from a shell: each command run as a fresh process several times, the
median and the fastest wall-clock time printed as a table and written as JSON.

    .venv/bin/python benchmarks/cli_times.py [--repeat 5] [-o runs/cli-times.json]
                                             [--auto-budget-ms 300] [--auto-runs 10] [--auto-only]

Help texts import no torch; a command that loads a model pays for torch and the checkpoint on every
call (the figure a shell pipeline sees per stage).

Then ``semcom decode --decoder auto --budget-ms B --json`` on one received scene (an importance packet
with its first object's mask as the map, 512 channel uses, AWGN at 0 and 6 dB), each run a fresh
process: the decode time it reports (its clock starts once the model is loaded and warmed up) against
the budget, the load time apart, and the wall clock of the whole call. Printed: per SNR the largest decode_ms / budget of the runs.
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


def auto_budget(work: Path, semcom: str, budget_ms: float, runs: int) -> dict:
    """``runs`` fresh-process auto decodes under ``budget_ms`` at 0 and 6 dB: their reported times."""
    from PIL import Image

    from semcom_cli.data.scenes import scene_at

    image, heat, packet = work / "scene.png", work / "map.png", work / "scene.sem"
    scene = scene_at("test", 0)
    Image.fromarray(scene.image).save(image)
    Image.fromarray(scene.masks[0].astype("uint8") * 255).save(heat)  # its first object as the importance map
    subprocess.run([semcom, "encode", str(image), "--task", "reconstruct", "--map", str(heat), "-o", str(packet)],
                   check=True, capture_output=True)
    out = {"budget_ms": budget_ms, "runs": runs, "snr": {}}
    for snr in (0, 6):
        received = work / f"r{snr}.sem"
        subprocess.run([semcom, "transmit", str(packet), "--snr", str(snr), "-o", str(received)], check=True,
                       capture_output=True)
        rows = []
        for k in range(runs):
            began = time.perf_counter()
            done = subprocess.run([semcom, "decode", str(received), "--decoder", "auto", "--budget-ms",
                                   str(budget_ms), "--json", "-o", str(work / f"a{snr}-{k}.png")],
                                  capture_output=True, text=True, check=False)
            wall = time.perf_counter() - began
            if done.returncode != 0:
                sys.exit(f"decode --decoder auto: exit {done.returncode}: {done.stderr.strip()[-300:]}")
            result = json.loads(done.stdout)
            rows.append({"wall_s": round(wall, 3), "load_ms": result["load_ms"], "decode_ms": result["decode_ms"],
                         "used": result["decoder"]["used"], "steps_run": result["decoder"]["steps_run"]})
        worst = max(r["decode_ms"] for r in rows) / budget_ms
        out["snr"][str(snr)] = {"rows": rows, "largest_decode_over_budget": round(worst, 3)}
        print(f"auto --budget-ms {budget_ms:g} at {snr} dB, {runs} fresh processes: decode_ms "
              f"{min(r['decode_ms'] for r in rows):.0f}–{max(r['decode_ms'] for r in rows):.0f} "
              f"(largest / budget {worst:.2f}), load_ms median {statistics.median(r['load_ms'] for r in rows):.0f}, "
              f"wall median {statistics.median(r['wall_s'] for r in rows):.2f} s; used "
              f"{sorted({r['used'] for r in rows})}", flush=True)
    return out


def main() -> None:
    import easy_vqa

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-o", "--output", type=Path, default=None)
    parser.add_argument("--auto-budget-ms", type=float, default=300.0)
    parser.add_argument("--auto-runs", type=int, default=10)
    parser.add_argument("--auto-only", action="store_true", help="only the fresh-process auto decodes")
    args = parser.parse_args()
    semcom = shutil.which("semcom", path=str(Path(sys.executable).parent)) or "semcom"
    image = easy_vqa.get_test_image_paths()[0]
    rows, auto = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in [] if args.auto_only else _commands(Path(tmp), semcom, image):
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
        if args.auto_runs:
            auto = auto_budget(Path(tmp), semcom, args.auto_budget_ms, args.auto_runs)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"repeat": args.repeat, "rows": rows, "auto_budget": auto}, indent=2)
                               + "\n")


if __name__ == "__main__":
    main()
