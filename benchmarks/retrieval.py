"""Retrieval at the receiver against its targets, in one run.

    .venv/bin/python benchmarks/retrieval.py [-c checkpoints/semcom-rag] [--limit 100] [--snr -5,0,10]
                                             [--channel awgn,rayleigh] [-o docs/rag-bench.json]
                                             [--latency-only] [--report-only]

1. Latency: a 100,000-entry base (the corpus's held-out sentences embedded with MiniLM, padded
   with random unit vectors to 100,000: a flat index's search time depends on the count, not on the
   contents), its build (FAISS add), save and load times, and per single query: the FAISS search
   alone, MiniLM + search (the reading route), and the symbol route's search (100,000 codes of one
   packet length, the worst case: every entry of the packet's length).
2. Quality: ``semcom evaluate --task text --method semantic,rag,rag-reading`` over the channels and
   SNRs, three kinds of message (in the global base, in the user's local base only, in neither),
   with recall@k.
3. VQA at -5 dB with a local base of the user's 8 recent scenes as a prior on the caption codebook
   (500 test questions), against the same packets read without it.
Prints the targets table and writes everything to ``-o``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[len(times) // 2]


def latency(n: int = 100_000, repeats: int = 200) -> dict:
    import tempfile

    import numpy as np
    import torch

    from semcom_cli.config.preset import Backbone
    from semcom_cli.data.corpus import split_corpus
    from semcom_cli.models.embedding import embed_texts
    from semcom_cli.models.llm import backbone_identity
    from semcom_cli.retrieval import KnowledgeBase
    from semcom_cli.retrieval.kb import _faiss

    faiss = _faiss()
    _, _, tokenizer, _ = backbone_identity(Backbone())
    split = split_corpus(tokenizer, 24)
    real = split.global_base + [s for h in split.local for s in h] + split.neither
    real_vectors = embed_texts(real).numpy()
    rng = np.random.default_rng(0)
    filler = rng.standard_normal((n - len(real), real_vectors.shape[1])).astype(np.float32)
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    vectors = np.concatenate([real_vectors, filler])
    entries = real + [f"filler entry {i}" for i in range(n - len(real))]
    kb = KnowledgeBase("global")
    start = time.perf_counter()
    kb.add(entries, vectors)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        kb.save(Path(tmp) / "big.kb")
        save_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "big.kb").iterdir()) / 1e6
        start = time.perf_counter()
        kb = KnowledgeBase.load(Path(tmp) / "big.kb")
        load_s = time.perf_counter() - start
    query_vector = embed_texts([real[7]]).numpy()
    search_ms = _median_ms(lambda: kb.search(query_vector, 5), repeats)
    embed_search_ms = _median_ms(lambda: kb.query(["fires near Sydney forced people from their homes"], 5), repeats)
    hit = kb.search(query_vector, 1)[0][0][1] == real[7]
    # the symbol route: 100,000 codes of one length (18 tokens × 4 complex symbols = 144 floats)
    codes = rng.standard_normal((n, 144)).astype(np.float32)
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(144)
    index.add(codes)
    packet = np.ascontiguousarray(codes[123:124] + 0.5 * rng.standard_normal((1, 144)).astype(np.float32))
    symbol_ms = _median_ms(lambda: index.search(packet, 5), repeats)
    return {"entries": n, "real_entries": len(real), "build_s": round(build_s, 3), "save_s": round(save_s, 3),
            "load_s": round(load_s, 3), "size_mb": round(size_mb, 1), "search_ms": round(search_ms, 3),
            "embed_and_search_ms": round(embed_search_ms, 3), "symbol_search_ms": round(symbol_ms, 3),
            "self_found": hit, "threads": torch.get_num_threads(), "faiss": faiss.__version__}


def quality(checkpoint: str, snrs: list[float], channels: list[str], limit: int) -> dict:
    from semcom_cli.core.runtime import versions
    from semcom_cli.evaluation.rag import RagSettings, evaluate_rag
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(checkpoint)
    settings = RagSettings(snrs=snrs, channels=channels, methods=["semantic", "rag", "rag-reading"], limit=limit)
    result = evaluate_rag(model, settings)
    result["versions"] = versions()
    return result


def vqa_local(checkpoint: str, snrs: list[float], channels: list[str], limit: int) -> dict:
    from semcom_cli.data.easyvqa import EasyVQA
    from semcom_cli.evaluation.rag import evaluate_vqa_local
    from semcom_cli.system import SemcomModel

    model = SemcomModel.from_pretrained(checkpoint)
    result = evaluate_vqa_local(model, EasyVQA.load("test"), snrs, channels, limit=limit)
    result.update({"checkpoint": model.name, "checkpoint_hash": model.hash})
    return result


def _point(result: dict, method: str, kind: str, channel: str, snr: float) -> dict:
    for p in result["points"]:
        if (p["method"], p["kind"], p["channel"], p["snr_db"]) == (method, kind, channel, snr):
            return p["metrics"]
    raise KeyError((method, kind, channel, snr))


def report(bench: dict) -> list[str]:
    lines, missed = [], []
    lat = bench.get("latency")
    if lat:
        ok = lat["search_ms"] <= 5
        lines.append(f"retrieval latency, {lat['entries']:,} entries, one query: search {lat['search_ms']:.2f} ms, "
                     f"MiniLM + search {lat['embed_and_search_ms']:.2f} ms, symbol route {lat['symbol_search_ms']:.2f}"
                     f" ms (target ≤ 5 ms: {'met' if ok else 'MISSED'}); build {lat['build_s']:.2f} s, save "
                     f"{lat['save_s']:.2f} s, load {lat['load_s']:.2f} s, {lat['size_mb']} MB")
        if not ok:
            missed.append("latency")
    q = bench.get("quality")
    if q:
        k = q["settings"]["k"]
        for channel in q["settings"]["channels"]:
            for snr in q["settings"]["snrs"]:
                for kind in ("global", "local", "neither"):
                    base = _point(q, "semantic", kind, channel, snr)
                    row = [f"{channel} {snr:g} dB {kind:8s} semantic EM {100 * base['exact_match']['value']:5.1f} "
                           f"BLEU {base['bleu']['value']:5.1f}"]
                    for method in ("rag", "rag-reading"):
                        m = _point(q, method, kind, channel, snr)
                        row.append(f"{method} EM {100 * m['exact_match']['value']:5.1f} BLEU {m['bleu']['value']:5.1f}"
                                   f" R@{k} {100 * m[f'recall@{k}']['value']:5.1f}")
                    lines.append(" | ".join(row))
        for snr, target in ((0.0, "EM and BLEU"), (-5.0, "BLEU")):
            if snr not in q["settings"]["snrs"] or "awgn" not in q["settings"]["channels"]:
                continue
            for kind in ("global", "local"):
                base, rag = _point(q, "semantic", kind, "awgn", snr), _point(q, "rag", kind, "awgn", snr)
                gains = {"EM": 100 * (rag["exact_match"]["value"] - base["exact_match"]["value"]),
                         "BLEU": rag["bleu"]["value"] - base["bleu"]["value"]}
                wanted = ["EM", "BLEU"] if target == "EM and BLEU" else ["BLEU"]
                ok = all(gains[w] >= 20 for w in wanted)
                shown = ", ".join(f"{w} {gains[w]:+.1f}" for w in wanted)
                verdict = "met" if ok else "MISSED"
                lines.append(f"target awgn {snr:g} dB, in the {kind} base: {shown} (≥ +20: {verdict})")
                if not ok:
                    missed.append(f"{kind}@{snr:g}")
        for channel in q["settings"]["channels"]:
            for snr in q["settings"]["snrs"]:
                base, rag = _point(q, "semantic", "neither", channel, snr), _point(q, "rag", "neither", channel, snr)
                drop = base["bleu"]["value"] - rag["bleu"]["value"]
                ok = drop <= 1.0
                lines.append(f"target {channel} {snr:g} dB, in no base: BLEU {rag['bleu']['value']:.1f} vs "
                             f"{base['bleu']['value']:.1f} without retrieval "
                             f"(at most 1 lower: {'met' if ok else 'MISSED'})")
                if not ok:
                    missed.append(f"neither {channel}@{snr:g}")
    v = bench.get("vqa_local")
    if v:
        for p in v["points"]:
            where = "among" if p["kind"] == "local" else "not among"
            lines.append(f"VQA {p['channel']} {p['snr_db']:g} dB, scene {where}"
                         f" the user's {p['recent']} recent ones: {100 * p['rag']['accuracy']['value']:.1f} % with the "
                         f"prior, {100 * p['semantic']['accuracy']['value']:.1f} % without (n {p['n']})")
    for line in lines:
        print(line)
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--checkpoint", default="checkpoints/semcom-rag")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--snr", default="-5,0,10")
    parser.add_argument("--channel", default="awgn,rayleigh")
    parser.add_argument("-o", "--output", default="docs/rag-bench.json")
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.output)
    if args.report_only:
        return 1 if report(json.loads(out.read_text())) else 0
    bench = {"latency": latency()}
    if not args.latency_only:
        bench["quality"] = quality(args.checkpoint, [float(s) for s in args.snr.split(",")],
                                   args.channel.split(","), args.limit)
        bench["vqa_local"] = vqa_local(args.checkpoint, [-5.0], args.channel.split(","), 500)
    bench["command"] = " ".join(["benchmarks/retrieval.py"] + sys.argv[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(bench, indent=1) + "\n")
    return 1 if report(bench) else 0


if __name__ == "__main__":
    sys.exit(main())
