"""Share sets on disk: one public file and one private file per user, and their checks.

A share set is a folder written by ``semcom encode --share``::

    public.sem.safetensors      role "public": the tokens several users share, sent once;
                                metadata: the users it serves, per token which users
    user-<u>.sem.safetensors    role "private": user u's own tokens

Every file of a set carries the set's ``share_id`` (a hash of all its symbols and
its plan) and the share plan, so a private file is only ever combined with the
public file it was made with. ``semcom transmit`` on the folder writes, per user,
``user-<u>.sem.safetensors`` (its private part as received) and
``public.user-<u>.sem.safetensors`` (its copy of the broadcast).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from semcom_cli.channel import Channel, gain_from_real, gain_to_real
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import check_snr_range
from semcom_cli.core.outputs import OutputKind
from semcom_cli.io.semantic import Header, SemanticFile, encode_header, looks_semantic, read_semantic, write_semantic
from semcom_cli.link.sharing import (
    SharedPackets,
    SharePlan,
    UserLink,
    receive_user,
    repeats_for,
    send_to_user,
    user_seed,
)
from semcom_cli.link.sharing.links import receive_user_at_rate, send_frame_at_rate

__all__ = ["PUBLIC_NAME", "private_name", "received_public_name", "build_share_files", "write_share_set",
           "read_share_set", "transmit_share_set", "receive_share_user", "accounting"]

PUBLIC_NAME = "public.sem.safetensors"


def private_name(user: int) -> str:
    return f"user-{user}.sem.safetensors"


def _is_share_set(folder: Path) -> bool:
    """A folder holding semantic files and nothing else (a sent or a received share set)."""
    files = list(folder.iterdir())
    return bool(files) and all(f.is_file() and f.name.endswith(".sem.safetensors") and looks_semantic(f)
                               for f in files)


SHARE_SET_OUTPUT = OutputKind("share set", _is_share_set, folder=True)


def received_public_name(user: int) -> str:
    return f"public.user-{user}.sem.safetensors"


def _share_id(packets: SharedPackets, plan: SharePlan) -> str:
    digest = hashlib.sha256(json.dumps(plan.to_json(), sort_keys=True).encode())
    for x in (packets.public, *packets.private):
        digest.update(x.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_share_files(packets: SharedPackets, plan: SharePlan, task, model, sources: list[str],
                      copies=None, rate: dict | None = None) -> tuple[SemanticFile, list[SemanticFile]]:
    """The public file and one private file per user, all stage ``encode``. ``copies``
    (:class:`semcom_cli.link.rate.shared.ShareCopies`): a variable-rate set, each file's copies per token."""
    common = {"share_id": _share_id(packets, plan), "share_plan": plan.to_json(), "power_scale": packets.scale,
              "snr_floor_db": float(model.snr_floor_db)}
    users = sorted({u for p in plan.public for u in p.users})
    public_rate = {} if copies is None else {"copies": copies.public, "rate": rate}
    public = SemanticFile({"symbols": packets.public}, encode_header(
        task, model, PUBLIC_NAME, packets.public, role="public", users=users, n_users=plan.n_users,
        sources=sources, **common, **public_rate))
    private = [SemanticFile({"symbols": x}, encode_header(
        task, model, sources[u], x, role="private", user=u, token_indices=plan.private_indices(u), **common,
        **({} if copies is None else {"copies": copies.private[u]})))
        for u, x in enumerate(packets.private)]
    return public, private


def write_share_set(folder: Path, public: SemanticFile, private: list[SemanticFile]) -> list[Path]:
    paths = [folder / PUBLIC_NAME] + [folder / private_name(u) for u in range(len(private))]
    for path, sem in zip(paths, [public, *private]):
        write_semantic(path, sem)  # each file atomically: never a half-written one
    return paths


def read_share_set(folder: Path) -> tuple[SemanticFile, list[SemanticFile]]:
    """The encoded set in ``folder``, checked to be whole and to belong together."""
    if not folder.exists():
        raise SemcomError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise SemcomError(f"{folder}: not a folder")
    pub_path = folder / PUBLIC_NAME
    if not pub_path.is_file():
        raise SemcomError(f"{folder}: no {PUBLIC_NAME} here (make the set with 'semcom encode --share')")
    public = read_semantic(str(pub_path), stage="encode")
    if public.header.role != "public":
        raise SemcomError(f"{pub_path}: not a public file (role {public.header.role!r})")
    _plan(public.header, str(pub_path))
    private = []
    for u in range(public.header.n_users or 0):
        path = folder / private_name(u)
        if not path.is_file():
            raise SemcomError(f"{folder}: user {u}'s file {private_name(u)} is missing")
        sem = read_semantic(str(path), stage="encode")
        _check_pair(sem.header, public.header, str(path), str(pub_path))
        if sem.header.user != u:
            raise SemcomError(f"{path}: holds user {sem.header.user}'s part, not user {u}'s")
        _plan(sem.header, str(path))
        if (sem.header.copies is None) != (public.header.copies is None):
            raise SemcomError(f"{path}: its rate (copies per token) does not match {PUBLIC_NAME}'s")
        private.append(sem)
    return public, private


def _plan(header: Header, source: str) -> SharePlan:
    """The file's share plan, checked against the file: its role, user and number of tokens."""
    if header.share_plan is None or header.share_id is None or header.power_scale is None:
        raise SemcomError(f"{source}: not part of a share set")
    try:
        plan = SharePlan.from_json(header.share_plan)
    except SemcomError as err:
        raise SemcomError(f"{source}: {err}") from None
    if header.role == "public":
        fits = header.n_users == plan.n_users and header.n_tokens == len(plan.public)
    else:
        fits = (header.user is not None and 0 <= header.user < plan.n_users
                and header.n_tokens == len(plan.private_indices(header.user)))
    floor = header.snr_floor_db
    if not fits or not (header.power_scale > 0 and math.isfinite(header.power_scale)) or floor is None:
        raise SemcomError(f"{source}: its share plan does not fit the file (users, tokens, power scale or floor)")
    check_snr_range(floor)
    return plan


def _check_pair(private: Header, public: Header, private_src: str, public_src: str) -> None:
    if public.role != "public":
        raise SemcomError(f"{public_src}: not a public file (role {public.role!r})")
    if private.role != "private" or private.share_id is None:
        raise SemcomError(f"{private_src}: not a user's private file of a share set")
    if private.share_id != public.share_id:
        raise SemcomError(f"{public_src} belongs to share set {public.share_id}, but "
                          f"{private_src} was encoded with share set {private.share_id}")


def transmit_share_set(public: SemanticFile, private: list[SemanticFile], snrs: list[float],
                       channels: list[Channel], seed: int) -> tuple[list[SemanticFile], list[SemanticFile], dict]:
    """Broadcast the public part once and send each private part; per user, what it received.

    ``snrs`` and ``channels``: one for every user, or one per user. The public part is repeated
    for the worst SNR among the users it serves (see :mod:`semcom_cli.link.sharing`); returns
    (received public copies, received private parts, accounting).
    """
    plan = _plan(public.header, PUBLIC_NAME)
    n = plan.n_users
    if len(snrs) not in (1, n) or len(channels) not in (1, n):
        raise SemcomError(f"this share set has {n} users: give one SNR and one channel for all, or one per user "
                          f"(got {len(snrs)} SNRs and {len(channels)} channels)")
    snrs = snrs * n if len(snrs) == 1 else snrs
    channels = channels * n if len(channels) == 1 else channels
    for c in channels:  # a user's frame sees one gain (its share of the broadcast and its private part)
        if c.per_symbol:
            raise SemcomError(f"share sets are sent over block-fading channels; '{c.name}' fades per symbol")
    if public.header.copies is not None:
        return _transmit_at_rate(plan, public, private, snrs, channels, seed)
    private_repeats = [repeats_for(s, public.header.snr_floor_db) for s in snrs]
    public_repeats = plan.public_repeats(private_repeats)
    packets = SharedPackets(public.tensors["symbols"], [p.tensors["symbols"] for p in private],
                            public.header.power_scale)
    rx_public, rx_private = [], []
    for u in range(n):
        link = send_to_user(plan, u, packets, snrs[u], channels[u], user_seed(seed, u), public_repeats,
                            private_repeats[u])
        fields = {"channel": channels[u].name, "snr_db": snrs[u], "seed": seed, "user": u, **channels[u].params()}
        gain = gain_to_real(link.gain)
        rx_public.append(SemanticFile({"symbols": link.public, "gain": gain},
                                      public.header.received(**fields, repeats=public_repeats)))
        rx_private.append(SemanticFile({"symbols": link.private, "gain": gain},
                                       private[u].header.received(**fields, repeats=private_repeats[u])))
    return rx_public, rx_private, accounting(plan, public.header.symbols_per_token, private_repeats)


def _transmit_at_rate(plan: SharePlan, public: SemanticFile, private: list[SemanticFile], snrs: list[float],
                      channels: list[Channel], seed: int) -> tuple[list[SemanticFile], list[SemanticFile], dict]:
    """A variable-rate set: each user's frame (the whole broadcast, then its private part) sent with
    each token's copies in one block, combined at the user (:func:`semcom_cli.channel.send_repeated`)."""
    rx_public, rx_private = [], []
    for u in range(plan.n_users):
        y_pub, g_pub, y_priv, g_priv = send_frame_at_rate(
            public.tensors["symbols"], private[u].tensors["symbols"], public.header.copies, private[u].header.copies,
            snrs[u], channels[u], user_seed(seed, u))
        fields = {"channel": channels[u].name, "snr_db": snrs[u], "seed": seed, "user": u, **channels[u].params()}
        rx_public.append(SemanticFile({"symbols": y_pub, "gain": gain_to_real(g_pub)},
                                      public.header.received(**fields)))
        rx_private.append(SemanticFile({"symbols": y_priv, "gain": gain_to_real(g_priv)},
                                       private[u].header.received(**fields)))
    m = public.header.symbols_per_token
    shared = public.header.channel_uses + sum(p.header.channel_uses for p in private)
    budget = (public.header.rate or {}).get("budget")
    separate = budget * plan.n_users if isinstance(budget, int) else shared
    uses = {"public": public.header.channel_uses, "private": shared - public.header.channel_uses,
            "shared": shared, "separate": separate, "saving": 1.0 - shared / separate if separate else 0.0,
            "public_copies": public.header.copies, "private_copies": [p.header.copies for p in private],
            "symbols_per_token": m}
    return rx_public, rx_private, uses


def accounting(plan: SharePlan, symbols_per_token: int, user_repeats: list[int]) -> dict:
    uses = plan.channel_uses(symbols_per_token, user_repeats)
    uses["saving"] = 1.0 - uses["shared"] / uses["separate"] if uses["separate"] else 0.0
    uses["public_repeats"] = plan.public_repeats(user_repeats)
    uses["private_repeats"] = user_repeats
    return uses


def _check_users_copy(private: Header, public: SemanticFile, private_src: str, public_src: str) -> None:
    """A received public file that is this user's copy of this set's broadcast."""
    public.expect("transmit", public_src)
    _check_pair(private, public.header, private_src, public_src)
    if public.header.user != private.user:
        raise SemcomError(f"{public_src} is user {public.header.user}'s copy of the public file, "
                          f"not user {private.user}'s")


def _public_part(plan: SharePlan, private: Header, public: SemanticFile | None, private_src: str,
                 public_src: str | None, m: int) -> tuple[torch.Tensor, list[int]]:
    """The user's copy of the broadcast, checked to belong to it: (symbols [P, m, 2], repeats per slot)."""
    user = private.user
    if public is None:
        if plan.public_slots(user):
            raise SemcomError(f"{private_src}: user {user} also needs its copy of the public file "
                              f"(--public {received_public_name(user)})")
        return torch.zeros(0, m, 2), []
    _check_users_copy(private, public, private_src, public_src)
    if public.tensors["symbols"].shape[0] != len(plan.public):
        raise SemcomError(f"{public_src}: {public.tensors['symbols'].shape[0]} public tokens, "
                          f"the share plan says {len(plan.public)}")
    repeats = public.header.repeats if public.header.repeats is not None else [1] * len(plan.public)
    if not isinstance(repeats, list) or len(repeats) != len(plan.public) or min(repeats, default=1) < 1:
        raise SemcomError(f"{public_src}: its repeats do not fit the share plan")
    return public.tensors["symbols"], [int(r) for r in repeats]


def receive_share_user(model, private: SemanticFile, public: SemanticFile | None, private_src: str,
                       public_src: str | None) -> torch.Tensor:
    """User u's semantic tokens [T, D] from its received private part and its copy of the broadcast."""
    header = private.header
    plan = _plan(header, private_src)
    if header.copies is not None:
        return _receive_at_rate(model, plan, private, public, private_src, public_src)
    symbols, public_repeats = _public_part(plan, header, public, private_src, public_src,
                                           private.tensors["symbols"].shape[1])
    repeats = header.repeats if header.repeats is not None else 1
    if not isinstance(repeats, int) or repeats < 1:
        raise SemcomError(f"{private_src}: its repeats must be a whole number ≥ 1")
    link = UserLink(symbols, private.tensors["symbols"], gain_from_real(private.tensors["gain"])[0],
                    public_repeats, repeats, float(header.power_scale))
    return receive_user(model, plan, header.user, link, float(header.snr_db), header.modality)


def _receive_at_rate(model, plan: SharePlan, private: SemanticFile, public: SemanticFile | None, private_src: str,
                     public_src: str | None) -> torch.Tensor:
    """A variable-rate set's user: its token positions gathered from the broadcast and its private
    part (combined copies, a gain per symbol), decoded as one packet; tokens left out restored."""
    header, user = private.header, private.header.user
    slots = plan.public_slots(user)
    received_public = (torch.zeros(0, header.symbols_per_token, 2), torch.zeros(0, header.symbols_per_token), [])
    if slots and public is None:
        raise SemcomError(f"{private_src}: user {user} also needs its copy of the public file "
                          f"(--public {received_public_name(user)})")
    if public is not None:
        _check_users_copy(header, public, private_src, public_src)
        if public.header.copies is None or len(public.header.copies) != len(plan.public):
            raise SemcomError(f"{public_src}: its copies per token do not fit the share plan")
        received_public = (public.tensors["symbols"], gain_from_real(public.tensors["gain"])[0], public.header.copies)
    copies = [public.header.copies[s] for s in slots.values()] + list(header.copies) if slots else header.copies
    if not model.reads_captions(header.modality) and min(copies, default=1) == 0:
        raise SemcomError(f"{private_src}: leaves tokens out, which checkpoint {model.name} cannot restore "
                          f"for {header.modality} packets")
    gain = gain_from_real(private.tensors["gain"])[0]
    try:
        return receive_user_at_rate(model, plan, user, received_public,
                                    (private.tensors["symbols"], gain, header.copies), float(header.snr_db),
                                    header.modality)
    except SemcomError as err:
        raise SemcomError(f"{private_src}: {err}") from None
