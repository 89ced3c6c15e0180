"""A share set at a variable rate: each user's budget, public tokens sent once for all their users.

Every user brings a budget of ``channel_uses`` (as if sent alone); the set spends at most the sum.
The units of the allocation are what actually goes over the air: each public token (sent once,
heard by all its users) and each user's private tokens. First every user's *sufficient set* (the
tokens its question, or its content, needs: :func:`semcom_cli.link.rate.allocation.sufficient_set`) is
sent once; a public token covers all its users at once, which is where sharing saves. The copies
left over go one at a time to the unit with the largest ``w · 2^-(r+1)``, a public token weighing
the largest of its users' importances (the user who needs it most decides). What
sharing saves therefore buys more copies for everyone, at the same total channel uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semcom_cli.link.rate.allocation import check_budget, sufficient_set
from semcom_cli.link.rate.importance import Importance
from semcom_cli.link.sharing import SharePlan

__all__ = ["ShareCopies", "share_copies"]


@dataclass(frozen=True)
class ShareCopies:
    public: list[int]          # copies of each public slot (plan order)
    private: list[list[int]]   # copies of each user's private tokens (plan.private_indices order)

    def channel_uses(self, symbols_per_token: int) -> int:
        return symbols_per_token * (sum(self.public) + sum(sum(p) for p in self.private))

    def user_copies(self, plan: SharePlan, user: int) -> list[int]:
        """Copies of each of the user's token positions, public ones included."""
        out = [0] * plan.n_tokens[user]
        for index, slot in plan.public_slots(user).items():
            out[index] = self.public[slot]
        for index, c in zip(plan.private_indices(user), self.private[user]):
            out[index] = c
        return out


def _units(plan: SharePlan) -> list[list[tuple[int, int]]]:
    """The (user, token) positions each unit serves: public slots first, then private tokens; in
    token order so that equal weights take turns as the single-packet uniform order does."""
    units = [[(u, p.index) for u in p.users] for p in plan.public]
    units += [[(u, t)] for u in range(plan.n_users) for t in plan.private_indices(u)]
    return units


def share_copies(plan: SharePlan, game: Importance, channel_uses: int, symbols_per_token: int,
                 can_leave_out: bool) -> ShareCopies:
    """Copies per public slot and per private token for a budget of ``channel_uses`` per user, from
    each user's importance game (weights [U, T], worth [U, 2^T]; NaN: not measured)."""
    n_units_public = len(plan.public)
    units = _units(plan)
    order = sorted(range(len(units)), key=lambda k: (min(t for _, t in units[k]), k))
    unit_of = {pos: k for k, positions in enumerate(units) for pos in positions}
    per_user = [check_budget(channel_uses, plan.n_tokens[u], symbols_per_token, can_leave_out)
                for u in range(plan.n_users)]
    r = torch.zeros(len(units), dtype=torch.long)
    for u in range(plan.n_users):
        n = plan.n_tokens[u]
        if not can_leave_out:
            first = torch.ones(n, dtype=torch.long)
        elif bool(torch.isfinite(game.worth[u]).all()) and game.worth.shape[-1] == 1 << n:
            first = sufficient_set(game.worth[u], game.weights[u, :n], per_user[u])
        else:
            first = torch.zeros(n, dtype=torch.long)
        for t in torch.nonzero(first).flatten().tolist():
            r[unit_of[(u, t)]] = 1
    weight = torch.tensor([max(float(game.weights[u, t]) for u, t in positions) for positions in units],
                          dtype=torch.double)
    for _ in range(sum(per_user) - int(r.sum())):
        gain = weight * torch.pow(0.5, r.double() + 1)
        best = max(order, key=lambda k: float(gain[k]))  # max keeps the first of equals in token order
        r[best] += 1
    public = r[:n_units_public].tolist()
    private, k = [], n_units_public
    for u in range(plan.n_users):
        q = len(plan.private_indices(u))
        private.append(r[k:k + q].tolist())
        k += q
    return ShareCopies(public, private)
