"""The guide's thresholds, measured on validation queries and scenes; and how honest it is on test ones.

- :func:`calibrate_reading`: how sure a field must be, and how likely a word unread, before a
  query counts as not read — set so that at most ``false_unknown`` of the validation split's
  queries (in calibration wordings no other split uses) are called unknown. Only known queries
  set them: the unreadable ones are left for the measure.
- :func:`calibrate_not_found`: the presence check's probability under which a referent is not in
  the picture — the ``present_miss`` quantile of what it gives referents validation scenes do hold,
  per kind of referent (the fields it names) where at least 100 of a kind are present, else overall.
- :func:`measure_honesty`: on the test split (its own wordings, the held-out unreadable words), the
  share of unreadable and absent-object queries that end unknown or not found, and of queries
  naming a present object that wrongly do.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import torch

from semcom_cli.data.scenes import Referent, absent_queries, referring_queries, scene_at
from semcom_cli.data.scenes.readings import LabelledQuery, known_queries, outside_queries
from semcom_cli.reconstruct.guidance.guide import FOUND, Guide, GuideThresholds, referent_kind
from semcom_cli.reconstruct.guidance.presence import presence_examples, scene_picture
from semcom_cli.reconstruct.guidance.referent import ReadingThresholds

__all__ = ["calibrate_reading", "calibrate_not_found", "calibrate_guide", "measure_honesty"]

BATCH = 64
MIN_KIND_PRESENT = 100  # present referents of a kind needed for a threshold of its own


@torch.no_grad()
def calibrate_reading(parser, reader, queries: list[LabelledQuery], false_unknown: float = 0.01) -> dict:
    """Thresholds from known validation queries: each of the two tests may call at most half of
    ``false_unknown`` of them unknown; never looser than 0.5 (a word more likely unread than not
    is unread, a field less likely right than not is unsure)."""
    unread, confidence = [], []
    for start in range(0, len(queries), 128):
        chunk = queries[start : start + 128]
        texts = [" ".join(q.text.split()) for q in chunk]
        # thresholds that call nothing unknown, to see each query's raw scores
        for r in parser.read(texts, *reader.read(texts), ReadingThresholds(field_confidence=0.0, unused_word=1.0)):
            unread.append(r.unread_probability)
            said = [r.confidence[f] for f in r.referent.to_json()]
            confidence.append(min(said, default=1.0))
    unused_word = max(0.5, float(np.quantile(unread, 1 - false_unknown / 2)))
    field_confidence = min(0.5, float(np.quantile(confidence, false_unknown / 2)))
    return {"unused_word": round(min(unused_word, 0.999), 4), "field_confidence": round(field_confidence, 4),
            "n": len(queries)}


@torch.no_grad()
def calibrate_not_found(guide: Guide, split: str = "val", scenes: int = 300, present_miss: float = 0.01) -> dict:
    """The presence threshold from referents the scenes hold (the true referent given: the image network's
    and the presence check's own behaviour), with the share of referents they do not hold that fall
    under it, for the record."""
    pictures, which, maps, refs, held = presence_examples(guide.mark, split, scenes, seed=1)
    check = guide.check
    p = torch.cat([check.agreement(check(pictures[which[i : i + 256]], maps[i : i + 256].float()), refs[i : i + 256])
                   for i in range(0, len(held), 256)]).numpy()
    holds = held.numpy() > 0.5
    kinds = np.array([referent_kind(Referent.from_indices(r)) for r in refs.tolist()])
    threshold = float(np.quantile(p[holds], present_miss))
    # per kind of referent where enough present ones say where its lowest share lies: a colour the check reads
    # near-perfectly gets a threshold of its own, not the one a shape's harder reading forces
    by_kind = {k: float(np.quantile(p[holds & (kinds == k)], present_miss)) for k in sorted(set(kinds))
               if (holds & (kinds == k)).sum() >= MIN_KIND_PRESENT}
    limits = np.array([by_kind.get(k, threshold) for k in kinds])
    return {"not_found_below": float(f"{threshold:.3g}"), "not_found_by_kind": {k: float(f"{v:.3g}") for k, v in
                                                                                by_kind.items()},
            "present_n": int(holds.sum()), "absent_n": int((~holds).sum()),
            "absent_below": round(float(np.mean(p[~holds] < limits[~holds])), 4)}


def calibrate_guide(guide: Guide, scenes: int = 300, false_unknown: float = 0.01, present_miss: float = 0.005
                    ) -> tuple[GuideThresholds, dict]:
    """Both thresholds on the validation split → (thresholds, what was measured). The 2 % of present
    referents the guide may stop is shared out: ``false_unknown`` to the reading, ``present_miss`` per
    kind to the presence check (at 1 % per kind the two summed to 2.3 % on the test split)."""
    reading = calibrate_reading(guide.parser, guide.reader, known_queries("val", scenes), false_unknown)
    found = calibrate_not_found(guide, "val", scenes, present_miss)
    thresholds = GuideThresholds(field_confidence=reading["field_confidence"], unused_word=reading["unused_word"],
                                 not_found_below=found["not_found_below"],
                                 not_found_by_kind=found["not_found_by_kind"])
    return thresholds, {"split": "val", "scenes": scenes, "false_unknown_target": false_unknown,
                        "present_miss_target": present_miss,
                        "reading_n": reading["n"], **{k: v for k, v in found.items() if not k.startswith("not_found")}}


@torch.no_grad()
def measure_honesty(guide: Guide, scenes: int = 300, outside: int = 600, seed: int = 0) -> dict:
    """On the test split: unreadable queries (held-out words), queries naming what the scene does not
    hold, and queries naming what it holds (the test wordings), each on a test scene, through the
    whole guide → the share of each that ends unknown or not found, overall and per class."""
    rng = random.Random(f"honesty:{seed}")
    cases: list[tuple[torch.Tensor, str, str]] = []  # (image, query, class)
    unreadable = outside_queries("held_out", outside, seed=seed + 1000)
    for index in range(scenes):
        scene = scene_at("test", index)
        image = scene_picture(scene)
        for q in referring_queries(scene, "test", seed=rng.randrange(1 << 30), per_kind=1)[:2]:
            cases.append((image, q.text, "present"))
        absent = absent_queries(scene, "test", seed=rng.randrange(1 << 30), per_kind=1)
        for q in rng.sample(absent, min(1, len(absent))):  # one of a kind drawn at random
            cases.append((image, q.text, f"absent {q.kind}"))
    for k, q in enumerate(unreadable):
        cases.append((scene_picture(scene_at("test", k % scenes)), q.text, q.kind))
    stopped: dict[str, list[bool]] = defaultdict(list)
    examples: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(cases), BATCH):
        chunk = cases[start : start + BATCH]
        _, findings = guide.find(torch.stack([c[0] for c in chunk]), [c[1] for c in chunk])
        for (_, text, kind), f in zip(chunk, findings):
            stop = f.status != FOUND
            stopped[kind].append(stop)
            if stop == (kind == "present") and len(examples[kind]) < 5:  # the mistakes, for the record
                examples[kind].append(f"{text!r} → {f.status} ({f.reading.referent.describe()})")
    present = stopped.pop("present")
    others = [s for v in stopped.values() for s in v]
    return {"present_stopped": float(np.mean(present)), "present_n": len(present),
            "unreadable_or_absent_stopped": float(np.mean(others)), "unreadable_or_absent_n": len(others),
            "per_class": {k: {"stopped": round(float(np.mean(v)), 4), "n": len(v)} for k, v in sorted(stopped.items())},
            "mistakes": dict(examples), "split": "test", "seed": seed}
