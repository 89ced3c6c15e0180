"""Multi-user sharing over the air: each user's frame, repeats below the codec's floor, reception.

User u's frame is its share of the public broadcast plus its private packet, with
one block-fading gain for the frame; public and private symbols see the same
channel, independent noise per user. A part sent below the SNR the codec was
trained down to is repeated ``r`` times and the copies averaged (noise variance
N0 / r); each public token is repeated for the worst of its users. The unit noise
of user u's own T token positions is drawn first, in token order, from a generator
seeded by (seed, user); separate transmission draws the same, so the two schemes
are compared on the same channel draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from semcom_cli.channel import Channel, equalize_symbols, seed_channel, send_repeated
from semcom_cli.core.errors import SemcomError
from semcom_cli.link.sharing.plan import SharedPackets, SharePlan

__all__ = ["effective_snr", "repeats_for", "user_seed", "UserLink", "send_to_user", "send_separately",
           "receive_user", "send_frame_at_rate", "receive_user_at_rate"]


def repeats_for(snr_db: float, floor_db: float) -> int:
    """Copies needed for a link at ``snr_db`` to reach the codec's trained floor by averaging."""
    if snr_db >= floor_db:
        return 1
    return int(math.ceil(10.0 ** ((floor_db - snr_db) / 10.0) - 1e-9))


def user_seed(seed: int, user: int, group: int = 0) -> int:
    return int(np.random.SeedSequence([int(seed), int(group), int(user)]).generate_state(1)[0])


@dataclass
class UserLink:
    """What one user received: its copy of the public part, its private part, the frame's gain."""

    public: torch.Tensor    # [P, m, 2]
    private: torch.Tensor   # [Q, m, 2]
    gain: torch.Tensor      # complex scalar
    public_repeats: list[int]  # per public slot
    private_repeats: int
    scale: float = 1.0


def _draws(channel: Channel, seed: int, n_tokens: int, n_extra: int, m: int):
    """One frame's gain, then the unit noise of the user's own token positions and of the extra slots."""
    seed_channel(seed)
    h = channel.gains(1)[0]
    noise = channel.unit_noise((n_tokens + n_extra) * m).reshape(n_tokens + n_extra, m)
    return h, noise[:n_tokens], noise[n_tokens:]


def send_to_user(plan: SharePlan, user: int, packets: SharedPackets, snr_db: float, channel: Channel, seed: int,
                 public_repeats: list[int], private_repeats: int) -> UserLink:
    """User ``user``'s frame: the whole public broadcast (as this user receives it) and its private part."""
    public, private = packets.public, packets.private[user]
    m = public.shape[1] if public.shape[0] else private.shape[1]
    mine = plan.public_slots(user)
    others = [s for s in range(len(plan.public)) if s not in mine.values()]
    h, own, extra = _draws(channel, seed, plan.n_tokens[user], len(others), m)
    public_noise = torch.zeros(len(plan.public), m, dtype=torch.complex64, device=own.device)
    for index, slot in mine.items():
        public_noise[slot] = own[index]
    for k, slot in enumerate(others):
        public_noise[slot] = extra[k]
    private_noise = own[plan.private_indices(user)]
    return UserLink(channel.through(public, h, public_noise, snr_db, public_repeats),
                    channel.through(private, h, private_noise, snr_db, private_repeats),
                    h, public_repeats, private_repeats, packets.scale)


def send_separately(symbols: torch.Tensor, snr_db: float, channel: Channel, seed: int,
                    repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole packet [T, m, 2] on the user's own link, with the same draws as :func:`send_to_user`."""
    h, own, _ = _draws(channel, seed, symbols.shape[0], 0, symbols.shape[1])
    return channel.through(symbols, h, own, snr_db, repeats), h


def effective_snr(snr_db: float, repeats: int = 1, scale: float = 1.0) -> float:
    """SNR of a part after averaging ``repeats`` copies and restoring its ``scale``."""
    return snr_db + 10.0 * math.log10(repeats) - 20.0 * math.log10(scale)


@torch.no_grad()
def receive_user(model, plan: SharePlan, user: int, link: UserLink, snr_db: float, modality: str) -> torch.Tensor:
    """Decode user ``user``'s tokens [T, D]: its public slots from the broadcast, the rest from its
    private part, each at its own effective SNR. These are whole packets (every public packet serving
    the user, and its private one), decoded together as one frame."""
    t = plan.n_tokens[user]
    symbols = torch.zeros(t, model.symbols_per_token, 2, device=model.device)
    snrs = torch.zeros(t, device=model.device)
    h = link.gain.reshape(1).to(model.device)
    slots = plan.public_slots(user)
    if slots:  # each public token on its own: each has its own number of copies
        idx = sorted(slots)
        rx = link.public[[slots[i] for i in idx]][:, None]
        snr = torch.tensor([effective_snr(snr_db, link.public_repeats[slots[i]], link.scale) for i in idx])
        x_hat, snrs[idx] = equalize_symbols(rx.to(model.device) * link.scale, h.expand(len(idx)), snr)
        symbols[idx] = x_hat[:, 0]
    rest = plan.private_indices(user)
    if rest:
        if link.private.shape[0] != len(rest):
            raise SemcomError(f"user {user}'s private part has {link.private.shape[0]} tokens, "
                              f"the share plan says {len(rest)}")
        x_hat, snr = equalize_symbols(link.private[None].to(model.device) * link.scale, h,
                                      effective_snr(snr_db, link.private_repeats, link.scale))
        symbols[rest], snrs[rest] = x_hat[0], snr
    # the whole packet is decoded at once (a context decoder looks across its tokens), each token
    # at its own effective SNR
    return model.decode(symbols[None], snrs[None], torch.ones(1, t, dtype=torch.long, device=model.device),
                        modality)[0]


def send_frame_at_rate(public: torch.Tensor, private: torch.Tensor, public_copies: list[int],
                       private_copies: list[int], snr_db: float, channel: Channel, seed: int):
    """A variable-rate set's frame to one user: the whole broadcast [P, m, 2] then its private part
    [Q, m, 2], each token sent its copies in one block (one gain for a block-fading kind) and
    combined → (y_public, g_public, y_private, g_private), y real [·, m, 2], g complex [·, m]."""
    seed_channel(seed)
    x = torch.cat([public, private])[None].to(channel.device)
    copies = torch.tensor([list(public_copies) + list(private_copies)], device=channel.device)
    y, g = send_repeated(channel, x, copies, snr_db)
    n = public.shape[0]
    return y[0, :n], g[0, :n], y[0, n:], g[0, n:]


@torch.no_grad()
def receive_user_at_rate(model, plan: SharePlan, user: int, public: tuple, private: tuple, snr_db: float,
                         modality: str) -> torch.Tensor:
    """User ``user``'s tokens [T, D] from a variable-rate set: ``public`` and ``private`` are
    (y [·, m, 2], g [·, m] complex, copies) as received; its positions are gathered from both and
    decoded as one packet, every token at its own combined SNR, tokens left out restored."""
    t, m = plan.n_tokens[user], model.symbols_per_token
    y = torch.zeros(t, m, 2)
    g = torch.zeros(t, m, dtype=torch.complex64)
    copies = torch.zeros(t, dtype=torch.long)
    for index, slot in plan.public_slots(user).items():
        y[index], g[index], copies[index] = public[0][slot].cpu(), public[1][slot].cpu(), int(public[2][slot])
    for k, index in enumerate(plan.private_indices(user)):
        y[index], g[index], copies[index] = private[0][k].cpu(), private[1][k].cpu(), int(private[2][k])
    if int(copies.sum()) == 0:
        raise SemcomError(f"nothing of user {user}'s packet was sent (every token has 0 copies)")
    return model.receive_repeated(y[None], g[None], snr_db, copies[None], modality)[0]
