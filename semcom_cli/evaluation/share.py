"""Measure multi-user sharing: channel uses and each user's accuracy, shared against separate.

For every group of a scenario (:mod:`semcom_cli.scenarios`) both schemes run on
the same images, questions and channel draws (:mod:`semcom_cli.link.sharing`):

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

from semcom_cli.channel import check_channel, check_snr, make_channel, seed_channel, send_repeated
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import check_seed
from semcom_cli.core.runtime import versions
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.evaluation import metrics
from semcom_cli.link.rate import check_budget
from semcom_cli.link.rate.allocation import allocate
from semcom_cli.link.rate.packets import packet_importance
from semcom_cli.link.rate.shared import share_copies
from semcom_cli.link.sharing import (
    DEFAULT_THRESHOLD,
    effective_snr,
    encode_parts,
    plan_sharing,
    receive_user,
    repeats_for,
    send_separately,
    send_to_user,
    user_seed,
)
from semcom_cli.link.sharing.links import receive_user_at_rate, send_frame_at_rate
from semcom_cli.link.sharing.scenarios import MAX_USERS, check_scenario, draw_groups
from semcom_cli.tasks import get_task

__all__ = ["SharePoint", "ShareSweep", "evaluate_share_point", "share_sweep", "FORMAT"]

FORMAT = "semcom-share-evaluate/1"


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
                         on_progress: Callable[[int, int], None] | None = None,
                         budget: int | None = None) -> dict:
    """Both schemes on ``groups`` groups of the point's scenario (``budget``: at a variable rate)."""
    reps = repeats_for(point.snr_db, model.snr_floor_db)
    channel = make_channel(point.channel, model.preset.channel.model_dump(), model.device)
    drawn = draw_groups(data, point.scenario, point.users, groups, seed, task)
    shared_tokens, separate_tokens, items = [], [], []
    uses = {"shared": 0, "separate": 0, "public": 0}
    savings = []
    for g, group in enumerate(drawn):
        tokens, mask = model.image_tokens(data.batch_images([u.image_id for u in group]))
        if budget is not None:
            count = _group_at_rate(model, tokens, mask, [u.instruction for u in group], task, threshold, budget,
                                   point, channel, seed, g, shared_tokens, separate_tokens)
            items += group
            for key in uses:
                uses[key] += count[key]
            savings.append(1.0 - count["shared"] / count["separate"])
            continue
        whole = model.encode(tokens, mask, "image")  # separate sending: every user's packet alone
        plan = plan_sharing(tokens, mask, threshold)
        packets = encode_parts(model, tokens, plan, "image")
        for u, item in enumerate(group):
            s = user_seed(seed, u, g)
            link = send_to_user(plan, u, packets, point.snr_db, channel, s,
                                plan.public_repeats([reps] * point.users), reps)
            shared_tokens.append(receive_user(model, plan, u, link, point.snr_db, "image"))
            y, h = send_separately(whole[u], point.snr_db, channel, s, reps)
            separate_tokens.append(model.receive(y[None], h.reshape(1), effective_snr(point.snr_db, reps),
                                                 mask[u : u + 1], "image")[0])
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
            mask = torch.ones(chunk.shape[:2], dtype=torch.long, device=chunk.device)
            n = chunk.shape[0]
            out += model.answer([task] * n, [it.instruction for it in items[start : start + n]], chunk, mask)
            done += n
            if on_progress:
                on_progress(done, total)
        answers[scheme] = out

    references = [it.reference for it in items]
    right = {s: [get_task(task).correct(a, r) for a, r in zip(answers[s], references)] for s in answers}
    scores = {s: metrics.proportion(right[s]) for s in right}
    diff = [a - b for a, b in zip(right["shared"], right["separate"])]
    return {
        "scenario": point.scenario, "users": point.users, "channel": point.channel, "snr_db": point.snr_db,
        "task": task, "groups": groups, "seed": seed, "threshold": threshold,
        "repeats": reps, "budget_per_user": budget,
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


def _group_at_rate(model, tokens, mask, questions, task, threshold, budget, point, channel, seed, g,
                   shared_tokens, separate_tokens) -> dict:
    """One group at a variable rate: the share set (public tokens once, :mod:`semcom_cli.link.rate.shared`)
    against each user's own packet, both at ``budget`` channel uses per user and by importance to
    each user's question; each user's channel seeded alike in both schemes."""

    m = model.symbols_per_token
    plan = plan_sharing(tokens, mask, threshold)
    game = packet_importance(model, task, tokens, questions, "importance")
    copies = share_copies(plan, game, budget, m, can_leave_out=True)
    packets = encode_parts(model, tokens, plan, "image", sent=copies)
    own = allocate(game.weights, budget, m, True, mask, game.worth)
    whole = model.encode(tokens, (own > 0).long(), "image")
    for u in range(plan.n_users):
        s = user_seed(seed, u, g)
        y_pub, g_pub, y_priv, g_priv = send_frame_at_rate(packets.public, packets.private[u], copies.public,
                                                          copies.private[u], point.snr_db, channel, s)
        shared_tokens.append(receive_user_at_rate(model, plan, u, (y_pub, g_pub, copies.public),
                                                  (y_priv, g_priv, copies.private[u]), point.snr_db, "image"))
        seed_channel(s)
        y, gain = send_repeated(channel, whole[u:u + 1], own[u:u + 1], point.snr_db)
        separate_tokens.append(model.receive_repeated(y, gain, point.snr_db, own[u:u + 1], "image")[0])
    return {"shared": copies.channel_uses(m), "separate": int(own.sum()) * m, "public": sum(copies.public) * m}


@dataclass(frozen=True)
class ShareSweep:
    """An ``evaluate --share`` run: scenarios × users × channels × SNRs, ``groups`` groups per point."""

    scenarios: tuple[str, ...]
    users: tuple[int, ...]
    channels: tuple[str, ...]
    snrs: tuple[float, ...]
    groups: int = 100
    seed: int = 0
    task: str = "vqa"
    threshold: float = DEFAULT_THRESHOLD
    batch_size: int = 64
    budget: int | None = None  # channel uses per user at a variable rate; None: fixed rate with repeats

    def check(self) -> "ShareSweep":
        """One line naming the first bad setting."""
        if get_task(self.task).modality != "image" or not get_task(self.task).trainable:
            raise SemcomError(f"--share evaluates the image tasks vqa and caption (got '{self.task}')")
        for s in self.scenarios:
            check_scenario(s)
        for n in self.users:
            if not 1 <= n <= MAX_USERS:
                raise SemcomError(f"--users takes numbers of users from 1 to {MAX_USERS} (got {n})")
        for c in self.channels:
            kind = make_channel(check_channel(c))
            if not kind.noisy or kind.per_symbol:
                raise SemcomError("--share compares schemes over a noisy block-fading channel: awgn, rayleigh or "
                                  "rician")
        if self.groups < 1:
            raise SemcomError(f"--limit: groups of users per point must be at least 1 (got {self.groups})")
        if self.batch_size < 1:
            raise SemcomError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if not 0.0 <= self.threshold < 2.0:
            raise SemcomError(f"--threshold must be in [0, 2) (got {self.threshold})")
        check_seed(self.seed, "--seed")
        for snr in self.snrs:
            check_snr(snr)
        if self.budget is not None and self.budget <= 0:  # whole copies are checked once the model is loaded
            raise SemcomError(f"--channel-uses must be a positive budget per user (got {self.budget})")
        return self

    @property
    def points(self) -> list[SharePoint]:
        return [SharePoint(s, n, c, snr) for s in self.scenarios for n in self.users for c in self.channels
                for snr in self.snrs]


def share_sweep(sweep: ShareSweep, model, data: EasyVQA,
                on_progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Every point of ``sweep`` on ``model``: the ``semcom-share-evaluate/1`` document."""
    sweep.check()
    if sweep.budget is not None:

        check_budget(sweep.budget, 1, model.symbols_per_token, can_leave_out=model.reads_captions("image"))
    run = {"checkpoint": model.name, "checkpoint_hash": model.hash, "preset": model.preset.name, "task": sweep.task,
           "budget_per_user": sweep.budget,
           "groups": sweep.groups, "seed": sweep.seed, "threshold": sweep.threshold,
           "versions": versions(), "snr_floor_db": model.snr_floor_db}
    records = []
    total = sum(2 * p.users * sweep.groups for p in sweep.points)
    finished = 0
    for point in sweep.points:
        base = finished
        progress = (lambda d, n: on_progress(base + d, total, point.key)) if on_progress else None
        records.append(evaluate_share_point(model, data, point, sweep.groups, sweep.seed, sweep.task,
                                            sweep.threshold, sweep.batch_size, progress, sweep.budget))
        finished += 2 * point.users * sweep.groups
        if on_progress:
            on_progress(finished, total, point.key)
    return {"format": FORMAT, "run": run, "points": records}
