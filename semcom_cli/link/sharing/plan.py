"""Multi-user sharing: which tokens several users have in common, and the packets that result.

Every user's content becomes semantic tokens in the LLM's embedding space, one
packet of T tokens per user, and the channel code maps each token to its own
complex symbols. At each token position the users' tokens are grouped by
relative distance ``‖a − b‖ / max(‖a‖, ‖b‖)`` (complete linkage, so every two
tokens in a group are within the threshold of each other). A group of two or
more users becomes one *public* token: the group's medoid, sent once by
broadcast. Every other token is *private* and goes to its own user only. Public
tokens serving the same users are coded as one packet, each user's private
tokens as another (:func:`encode_parts`).

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

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import MAX_TOKENS

__all__ = ["PublicToken", "SharePlan", "plan_sharing", "relative_distances", "encode_parts", "SharedPackets",
           "public_segments", "DEFAULT_THRESHOLD"]

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
    from scipy.cluster.hierarchy import fcluster, linkage  # heavy: SciPy, clustering only
    from scipy.spatial.distance import squareform  # heavy: SciPy, clustering only

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

    Each part is its own packet for the channel code (:mod:`semcom_cli.models.codec`): the public
    tokens are coded jointly within each group that serves the same users (``public_segments``),
    each user's private tokens jointly. Every packet leaves the encoder at average power 1 per
    complex symbol (with ``power: token``, every token), so the shared transmission has the power
    of separate sending by construction and ``scale`` is 1; it stays in the files for older sets.
    """

    public: torch.Tensor
    private: list[torch.Tensor]
    scale: float = 1.0


def public_segments(plan: SharePlan) -> list[int]:
    """Packet id of each public slot: public tokens serving the same users are one packet, so a
    user who receives a packet needs every token of it (and the decoder sees the whole packet)."""
    ids: dict[tuple[int, ...], int] = {}
    return [ids.setdefault(tuple(sorted(p.users)), len(ids)) for p in plan.public]


def encode_parts(model, tokens: torch.Tensor, plan: SharePlan, modality: str, sent=None) -> SharedPackets:
    """The packets of ``plan``: tokens [U, T, D] (each user's semantic tokens) → the public packet
    (the groups' medoids, coded per group of users) and each user's private packet. ``sent``: at a
    variable rate, which tokens go out (copies > 0; ``public`` and ``private`` lists of counts); a
    token left out is coded as padding, its symbols zero."""
    m = model.symbols_per_token
    empty = tokens.new_zeros(0, m, 2)

    def packet(rows: list[torch.Tensor], segments: list[int] | None = None, counts: list[int] | None = None):
        if not rows:
            return empty
        if counts is None:
            on = torch.ones(1, len(rows), dtype=torch.long, device=tokens.device)
        else:
            on = (torch.tensor([counts], device=tokens.device) > 0).long()
        if not bool(on.any()):
            return tokens.new_zeros(len(rows), m, 2)
        seg = None if segments is None else torch.tensor([segments], device=tokens.device)
        return model.encode(torch.stack(rows)[None], on, modality, seg)[0]

    public = packet([tokens[p.source, p.index] for p in plan.public], public_segments(plan),
                    None if sent is None else sent.public)
    private = [packet([tokens[u, t] for t in plan.private_indices(u)], None,
                      None if sent is None else sent.private[u]) for u in range(plan.n_users)]
    return SharedPackets(public, private)
