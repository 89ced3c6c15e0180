"""Multi-user sharing: which tokens several users have in common, and the packets that result.

Every user's content becomes semantic tokens in the LLM's embedding space, one
packet of T tokens per user, and the channel code maps each token to its own
complex symbols. At each token position the users' tokens are grouped by
relative distance ``‖a − b‖ / max(‖a‖, ‖b‖)`` (complete linkage, so every two
tokens in a group are within the threshold of each other). A group of two or
more users becomes one *public* token: the group's medoid, encoded once and
broadcast. Every other token is *private* and goes to its own user only.

Why this works on easy-vqa: the trained tokens factorise by attribute (on the
shipped checkpoint tokens 0 and 2 carry the colour, 1 and 3 the shape; README,
"Multi-user sharing"), so users whose scenes share an attribute share tokens,
and a user asking about a scene another user also receives shares all of them.
Text tokens are the LLM's own word embeddings; they are shared only when equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SemcomError
from ..limits import MAX_TOKENS

__all__ = ["PublicToken", "SharePlan", "plan_sharing", "relative_distances", "encode_parts", "SharedPackets",
           "power_neutral", "DEFAULT_THRESHOLD"]

# Calibrated on easy-vqa *train* images with the shipped checkpoint (README): tokens of one
# attribute value lie at 0.05-0.2 of each other, of different values at 0.8 and more.
DEFAULT_THRESHOLD = 0.35
MAX_SHARE_USERS = 8


@dataclass(frozen=True)
class PublicToken:
    index: int              # token position in each served user's packet
    users: tuple[int, ...]  # the users it serves (two or more)
    source: int             # the user whose token is sent (the group's medoid)


@dataclass(frozen=True)
class SharePlan:
    """Which token of which user goes public (once) and which goes private."""

    n_tokens: tuple[int, ...]        # packet length per user
    public: tuple[PublicToken, ...]  # in file order
    threshold: float

    @property
    def n_users(self) -> int:
        return len(self.n_tokens)

    def public_slots(self, user: int) -> dict[int, int]:
        """token index → slot in the public file, for the public tokens serving ``user``."""
        return {p.index: slot for slot, p in enumerate(self.public) if user in p.users}

    def private_indices(self, user: int) -> list[int]:
        shared = self.public_slots(user)
        return [t for t in range(self.n_tokens[user]) if t not in shared]

    def to_json(self) -> dict:
        return {"n_tokens": list(self.n_tokens), "threshold": self.threshold,
                "public": [{"index": p.index, "users": list(p.users), "source": p.source} for p in self.public]}

    @classmethod
    def from_json(cls, data: dict) -> "SharePlan":
        try:
            public = tuple(PublicToken(int(p["index"]), tuple(int(u) for u in p["users"]), int(p["source"]))
                           for p in data["public"])
            plan = cls(tuple(int(n) for n in data["n_tokens"]), public, float(data["threshold"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise SemcomError("the share plan in the file's metadata is damaged") from None
        return plan.check()

    def check(self) -> "SharePlan":
        """A plan a share set could have been made with: 1 to 8 users, each public token at a position
        every user it serves has, served to two or more distinct users, one of them its source."""
        ok = 1 <= self.n_users <= MAX_SHARE_USERS and all(0 <= n <= MAX_TOKENS for n in self.n_tokens)
        for p in self.public:
            users = set(p.users)
            ok = ok and len(users) == len(p.users) >= 2 and p.source in users
            ok = ok and all(0 <= u < self.n_users and 0 <= p.index < self.n_tokens[u] for u in users)
        slots = [(p.index, u) for p in self.public for u in p.users]  # a user's position is public once at most
        if not ok or len(set(slots)) != len(slots):
            raise SemcomError("the share plan in the file's metadata is damaged")
        return self

    def public_repeats(self, user_repeats: list[int] | None = None) -> list[int]:
        """Copies of each public token: as many as the worst of the users it serves needs."""
        reps = user_repeats or [1] * self.n_users
        return [max(reps[u] for u in p.users) for p in self.public]

    def channel_uses(self, symbols_per_token: int, user_repeats: list[int] | None = None) -> dict[str, int]:
        """Channel uses of the shared scheme (public once + each private part) and of sending
        every user its whole packet separately; ``user_repeats``: copies each user's link needs.
        A public token costs its worst user's copies once, never more than its users' own
        copies together, so sharing never costs more than separate transmission."""
        reps = user_repeats or [1] * self.n_users
        public = sum(self.public_repeats(reps)) * symbols_per_token
        private = [len(self.private_indices(u)) * symbols_per_token * reps[u] for u in range(self.n_users)]
        separate = [self.n_tokens[u] * symbols_per_token * reps[u] for u in range(self.n_users)]
        return {"public": public, "private": sum(private), "shared": public + sum(private),
                "separate": sum(separate)}


def relative_distances(vectors: torch.Tensor) -> torch.Tensor:
    """[N, D] → [N, N] of ‖a − b‖ / max(‖a‖, ‖b‖) (0 between equal vectors)."""
    v = vectors.detach().double()
    norms = v.norm(dim=-1)
    scale = torch.maximum(norms[:, None], norms[None, :]).clamp_min(1e-12)
    return torch.cdist(v, v) / scale


def _groups(distances: torch.Tensor, threshold: float) -> list[list[int]]:
    """Complete-linkage groups whose members are all within ``threshold`` of each other."""
    n = distances.shape[0]
    if n == 1:
        return [[0]]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    d = distances.detach().cpu().numpy().copy()
    np.fill_diagonal(d, 0.0)
    labels = fcluster(linkage(squareform((d + d.T) / 2, checks=False), method="complete"),
                      t=threshold + 1e-6, criterion="distance")  # equal tokens: float noise
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return sorted(groups.values())


def plan_sharing(tokens: torch.Tensor, mask: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> SharePlan:
    """tokens [U, T, D], mask [U, T] (1 = a real token) → the share plan."""
    if not 0.0 <= threshold < 2.0:
        raise SemcomError(f"share threshold must be in [0, 2) (got {threshold})")
    n_tokens = tuple(int(n) for n in mask.sum(1).tolist())
    public = []
    for t in range(tokens.shape[1]):
        users = [u for u in range(tokens.shape[0]) if mask[u, t]]
        if len(users) < 2:
            continue
        d = relative_distances(tokens[users, t])
        for group in _groups(d, threshold):
            if len(group) < 2:
                continue
            sub = d[group][:, group]
            medoid = group[int(torch.argmin(sub.sum(1)))]  # the token nearest the others
            public.append(PublicToken(t, tuple(users[g] for g in group), users[medoid]))
    return SharePlan(n_tokens, tuple(public), threshold)


@dataclass
class SharedPackets:
    """Channel symbols of the public part [P, m, 2] and of each user's private part [Q_u, m, 2].

    Every token keeps the share of power the codec gave it in its user's whole packet; one
    factor for the whole shared transmission brings its average power (public and private
    parts together) to 1 per complex symbol, as each separate packet has. The receiver
    multiplies by ``scale`` (one real number, sent with the plan) to get the symbols back
    at the codec's scale, so the channel decoder works as trained, at the true SNR.
    """

    public: torch.Tensor
    private: list[torch.Tensor]
    scale: float


def encode_parts(whole: torch.Tensor, plan: SharePlan) -> SharedPackets:
    """Split each user's whole-packet symbols [U, T, m, 2] (``model.encode``, each packet at
    power 1) into the public and private packets of ``plan``."""
    empty = whole.new_zeros(0, whole.shape[2], 2)

    def stack(rows: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(rows) if rows else empty

    public = stack([whole[p.source, p.index] for p in plan.public])
    private = [stack([whole[u, t] for t in plan.private_indices(u)]) for u in range(plan.n_users)]
    power = torch.cat([public.flatten(0, 1), *(x.flatten(0, 1) for x in private)]).pow(2).sum(-1).mean()
    scale = float(power.clamp_min(1e-12).sqrt())
    return SharedPackets(public / scale, [x / scale for x in private], scale)


def power_neutral(whole: torch.Tensor, plan: SharePlan, tolerance: float = 0.01) -> SharePlan:
    """Drop public tokens, weakest first, until the shared transmission needs no more average
    power than the codec gave its tokens (so no token is sent below its separate-sending power).

    Sharing low-power tokens (on the shipped checkpoint: the shape tokens) leaves the
    high-power ones to fill the transmission, and the power constraint then lowers them all;
    this policy gives up those savings instead of accuracy. ``whole``: as for :func:`encode_parts`.
    """
    energy = whole.pow(2).sum(-1).sum(-1)  # [U, T] per token
    m = whole.shape[2]
    public = list(plan.public)

    def mean_power(kept: list[PublicToken]) -> float:
        shared = {(u, p.index) for p in kept for u in p.users}
        private = [float(energy[u, t]) for u in range(plan.n_users) for t in range(plan.n_tokens[u])
                   if (u, t) not in shared]
        total = sum(private) + sum(float(energy[p.source, p.index]) for p in kept)
        return total / ((len(private) + len(kept)) * m)

    while public and mean_power(public) > 1.0 + tolerance:
        public.remove(min(public, key=lambda p: float(energy[p.source, p.index])))
    return SharePlan(plan.n_tokens, tuple(public), plan.threshold)
