"""Measure multi-user sharing: channel uses and each user's accuracy, shared against separate.

For every group of a scenario (:mod:`semcom_cli.scenarios`) both schemes run on
the same images, questions and channel draws (:mod:`semcom_cli.sharing`):

- ``shared``: the public part broadcast once, each user's private part on its link;
- ``separate``: every user's whole packet on its own link.

The record holds the total channel uses of each scheme, the saving
``1 − shared / separate`` (mean over groups, and the smallest group's), and each
scheme's task accuracy over all users with a 95 % interval, plus the paired
difference (shared − separate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import metrics
from .data import EasyVQA
from .evaluation import answer_correct
from .scenarios import draw_groups
from .sharing import (DEFAULT_THRESHOLD, effective_snr, encode_parts, plan_sharing, power_neutral, receive_user,
                      repeats_for, send_separately, send_to_user, user_seed)

__all__ = ["SharePoint", "evaluate_share_point"]


@dataclass(frozen=True)
class SharePoint:
    scenario: str
    users: int
    channel: str
    snr_db: float

    @property
    def key(self) -> str:
        return f"{self.scenario}|{self.users}|{self.channel}|{self.snr_db:g}"


@torch.no_grad()
def evaluate_share_point(model, data: EasyVQA, point: SharePoint, groups: int, seed: int = 0,
                         task: str = "vqa", threshold: float = DEFAULT_THRESHOLD, batch_size: int = 64,
                         neutral: bool = False, on_progress: Callable[[int, int], None] | None = None) -> dict:
    floor = model.preset.train.channel.snr_min
    k = model.preset.channel.rician_k
    reps = repeats_for(point.snr_db, floor)
    drawn = draw_groups(data, point.scenario, point.users, groups, seed, task)
    shared_tokens, separate_tokens, items = [], [], []
    uses = {"shared": 0, "separate": 0, "public": 0}
    savings = []
    for g, group in enumerate(drawn):
        tokens, mask = model.image_tokens(data.batch_images([u.image_id for u in group]))
        whole = model.encode(tokens, mask)  # one encoding serves both schemes
        plan = plan_sharing(tokens, mask, threshold)
        if neutral:
            plan = power_neutral(whole, plan)
        packets = encode_parts(whole, plan)
        for u, item in enumerate(group):
            s = user_seed(seed, u, g)
            link = send_to_user(plan, u, packets, point.snr_db, point.channel, s,
                                plan.public_repeats([reps] * point.users), reps, k)
            shared_tokens.append(receive_user(model, plan, u, link, point.snr_db))
            y, h = send_separately(whole[u], point.snr_db, point.channel, s, reps, k)
            separate_tokens.append(model.receive(y[None], h.reshape(1), effective_snr(point.snr_db, reps),
                                                 mask[u : u + 1])[0])
            items.append(item)
        count = plan.channel_uses(model.symbols_per_token, [reps] * point.users)
        for key in uses:
            uses[key] += count[key]
        savings.append(1.0 - count["shared"] / count["separate"])

    answers = {}
    total = 2 * len(items)
    done = 0
    for scheme, rows in (("shared", shared_tokens), ("separate", separate_tokens)):
        out: list[str] = []
        for start in range(0, len(rows), batch_size):
            chunk = torch.stack(rows[start : start + batch_size])
            mask = torch.ones(chunk.shape[:2], dtype=torch.long)
            n = chunk.shape[0]
            out += model.answer([task] * n, [it.instruction for it in items[start : start + n]], chunk, mask)
            done += n
            if on_progress:
                on_progress(done, total)
        answers[scheme] = out

    references = [it.reference for it in items]
    right = {s: [answer_correct(task, a, r) for a, r in zip(answers[s], references)] for s in answers}
    scores = {s: metrics.proportion(right[s]) for s in right}
    diff = [a - b for a, b in zip(right["shared"], right["separate"])]
    return {
        "scenario": point.scenario, "users": point.users, "channel": point.channel, "snr_db": point.snr_db,
        "task": task, "groups": groups, "seed": seed, "threshold": threshold, "power_neutral": neutral,
        "repeats": reps,
        "channel_uses": {"shared": uses["shared"] / groups, "separate": uses["separate"] / groups,
                         "public": uses["public"] / groups},
        "saving": {"mean": sum(savings) / len(savings), "min": min(savings), "max": max(savings)},
        "accuracy": {"shared": scores["shared"], "separate": scores["separate"],
                     "difference": metrics.mean(diff)},
        "users_changed": {"gained": sum(d > 0 for d in diff), "lost": sum(d < 0 for d in diff)},
        "examples": [{"image": it.image_id, "instruction": it.instruction, "reference": it.reference,
                      "shared": a, "separate": b}
                     for it, a, b in list(zip(items, answers["shared"], answers["separate"]))[:3]],
    }

