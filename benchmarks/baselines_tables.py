"""The README's results tables from the `make bench-baselines` sweeps: per task and channel, the main metric of
each method against the SNR (the digital baseline by its best codec at each point).

    .venv/bin/python benchmarks/baselines_tables.py runs/baselines
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# task → (metric, how it is shown, scale, decimals)
MAIN = {"vqa": ("accuracy", "accuracy %", 100, 1), "caption": ("accuracy", "accuracy %", 100, 1),
        "text": ("bleu", "BLEU", 1, 1), "reconstruct": ("roi_psnr_db", "ROI PSNR dB", 1, 1)}
ORDER = ("semantic", "importance", "uniform", "separation", "digital", "capacity")


def _row_name(p: dict) -> str:
    return (p["method"] + (", best codec" if p["method"] == "digital" and p.get("codec") else "")
            + ("" if p["channel_uses"] in (None, 512) else f" ({p['channel_uses']} uses)"))


def tables(doc: dict) -> str:
    out = []
    points = doc["points"]
    best = {(b["task"], b["channel"], b["snr_db"], b["channel_uses"]): b for b in doc.get("best_codec", [])}
    for task in dict.fromkeys(p["task"] for p in points):
        metric, shown, scale, decimals = MAIN[task]
        for channel in dict.fromkeys(p["channel"] for p in points if p["channel"] != "none"):
            here = [p for p in points if p["task"] == task and p["channel"] == channel and metric in p["metrics"]]
            snrs = sorted({p["snr_db"] for p in here})
            rows: dict[str, dict] = {}
            for p in here:
                name = _row_name(p)
                if p["method"] == "digital":
                    b = best.get((task, channel, p["snr_db"], p["channel_uses"]))
                    if b and p.get("codec") not in (None, b["codec"]):
                        continue
                    cell = f"{scale * p['metrics'][metric]['value']:.{decimals}f}"
                    if b and len(b["tied"]) < 6:
                        cell += f" {b['codec']}"
                else:
                    cell = f"{scale * p['metrics'][metric]['value']:.{decimals}f}"
                rows.setdefault(name, {})[p["snr_db"]] = cell
            noiseless = [p for p in points if p["task"] == task and p["method"] == "noiseless"]
            n = next(iter(here[0]["metrics"].values()))["n"] if here else 0
            title = f"**{task}, {channel}** ({shown}, n = {n}"
            title += f"; noiseless {scale * noiseless[0]['metrics'][metric]['value']:.{decimals}f})" if noiseless else ")"
            out.append(title)
            out.append("")
            out.append("| method | " + " | ".join(f"{s:g} dB" for s in snrs) + " |")
            out.append("| --- | " + " | ".join("---:" for _ in snrs) + " |")
            for name in sorted(rows, key=lambda r: (ORDER.index(r.split()[0].strip(",")) if r.split()[0].strip(",") in ORDER else 99, r)):
                out.append(f"| {name} | " + " | ".join(rows[name].get(s, "") for s in snrs) + " |")
            out.append("")
    return "\n".join(out)


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/baselines")
    for name in ("images", "text", "reconstruct", "codecs"):
        path = folder / f"{name}.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            print(f"<!-- {path}: checkpoint {doc['run']['checkpoint']} {doc['run']['checkpoint_hash'][:8]}… -->\n")
            print(tables(doc))


if __name__ == "__main__":
    main()
