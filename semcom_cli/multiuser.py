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
from pathlib import Path

import torch

from .errors import SemcomError
from .formats import SemanticFile, read_semantic, write_semantic
from .sharing import (SharedPackets, SharePlan, UserLink, receive_user, repeats_for, send_to_user,
                      user_seed)

__all__ = ["PUBLIC_NAME", "private_name", "received_public_name", "build_share_files", "write_share_set",
           "read_share_set", "transmit_share_set", "receive_share_user", "accounting"]

PUBLIC_NAME = "public.sem.safetensors"


def private_name(user: int) -> str:
    return f"user-{user}.sem.safetensors"


def received_public_name(user: int) -> str:
    return f"public.user-{user}.sem.safetensors"


def _share_id(packets: SharedPackets, plan: SharePlan) -> str:
    digest = hashlib.sha256(json.dumps(plan.to_json(), sort_keys=True).encode())
    for x in (packets.public, *packets.private):
        digest.update(x.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_share_files(packets: SharedPackets, plan: SharePlan, base_meta: dict, sources: list[str],
                      snr_floor_db: float) -> tuple[SemanticFile, list[SemanticFile]]:
    """The public file and one private file per user, all stage ``encode``."""
    share_id = _share_id(packets, plan)
    m = int(packets.public.shape[1])
    common = {**base_meta, "stage": "encode", "share_id": share_id, "share_plan": plan.to_json(),
              "power_scale": packets.scale, "snr_floor_db": snr_floor_db, "symbols_per_token": m}
    public = SemanticFile({"symbols": packets.public}, {
        **common, "role": "public", "users": sorted({u for p in plan.public for u in p.users}),
        "n_users": plan.n_users, "sources": sources, "source": PUBLIC_NAME,
        "n_tokens": int(packets.public.shape[0]), "channel_uses": int(packets.public.shape[0]) * m})
    private = [SemanticFile({"symbols": x}, {
        **common, "role": "private", "user": u, "source": sources[u], "token_indices": plan.private_indices(u),
        "n_tokens": int(x.shape[0]), "channel_uses": int(x.shape[0]) * m}) for u, x in enumerate(packets.private)]
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
    if public.meta.get("role") != "public":
        raise SemcomError(f"{pub_path}: not a public file (role {public.meta.get('role')!r})")
    private = []
    for u in range(int(public.meta.get("n_users", 0))):
        path = folder / private_name(u)
        if not path.is_file():
            raise SemcomError(f"{folder}: user {u}'s file {private_name(u)} is missing")
        sem = read_semantic(str(path), stage="encode")
        _check_pair(sem, public, str(path), str(pub_path))
        private.append(sem)
    return public, private


def _plan(sem: SemanticFile, source: str) -> SharePlan:
    if "share_plan" not in sem.meta:
        raise SemcomError(f"{source}: not part of a share set")
    return SharePlan.from_json(sem.meta["share_plan"])


def _check_pair(private: SemanticFile, public: SemanticFile, private_src: str, public_src: str) -> None:
    if public.meta.get("role") != "public":
        raise SemcomError(f"{public_src}: not a public file (role {public.meta.get('role')!r})")
    if private.meta.get("role") != "private" or "share_id" not in private.meta:
        raise SemcomError(f"{private_src}: not a user's private file of a share set")
    if private.meta["share_id"] != public.meta.get("share_id"):
        raise SemcomError(f"{public_src} belongs to share set {public.meta.get('share_id')}, but "
                          f"{private_src} was encoded with share set {private.meta['share_id']}")


def transmit_share_set(public: SemanticFile, private: list[SemanticFile], snrs: list[float], channels: list[str],
                       seed: int, rician_k: float = 3.0) -> tuple[list[SemanticFile], list[SemanticFile], dict]:
    """Broadcast the public part once and send each private part; per user, what it received.

    The public part is repeated for the worst SNR among the users it serves (see
    :mod:`semcom_cli.sharing`); returns (received public copies, received private parts, accounting).
    """
    plan = _plan(public, PUBLIC_NAME)
    n = plan.n_users
    if len(snrs) == 1:
        snrs = snrs * n
    if len(channels) == 1:
        channels = channels * n
    if len(snrs) != n or len(channels) != n:
        raise SemcomError(f"this share set has {n} users: give one SNR (and channel) for all, or one per user "
                          f"(got {len(snrs)} SNRs and {len(channels)} channels)")
    floor = float(public.meta["snr_floor_db"])
    private_repeats = [repeats_for(s, floor) for s in snrs]
    public_repeats = plan.public_repeats(private_repeats)
    packets = SharedPackets(public.tensors["symbols"], [p.tensors["symbols"] for p in private],
                            float(public.meta["power_scale"]))
    rx_public, rx_private = [], []
    for u in range(n):
        link = send_to_user(plan, u, packets, snrs[u], channels[u], user_seed(seed, u), public_repeats,
                            private_repeats[u], rician_k)
        meta = {"stage": "transmit", "channel": channels[u], "snr_db": snrs[u], "seed": seed, "user": u}
        gain = torch.view_as_real(link.gain.reshape(1))[0]
        rx_public.append(SemanticFile({"symbols": link.public, "gain": gain},
                                      {**public.meta, **meta, "repeats": public_repeats}))
        rx_private.append(SemanticFile({"symbols": link.private, "gain": gain},
                                       {**private[u].meta, **meta, "repeats": private_repeats[u]}))
    return rx_public, rx_private, accounting(plan, int(public.meta["symbols_per_token"]), private_repeats)


def accounting(plan: SharePlan, symbols_per_token: int, user_repeats: list[int]) -> dict:
    uses = plan.channel_uses(symbols_per_token, user_repeats)
    uses["saving"] = 1.0 - uses["shared"] / uses["separate"] if uses["separate"] else 0.0
    uses["public_repeats"] = plan.public_repeats(user_repeats)
    uses["private_repeats"] = user_repeats
    return uses


def receive_share_user(model, private: SemanticFile, public: SemanticFile | None, private_src: str,
                       public_src: str | None) -> torch.Tensor:
    """User u's semantic tokens [T, D] from its received private part and its copy of the broadcast."""
    plan = _plan(private, private_src)
    user = int(private.meta["user"])
    if public is None:
        if plan.public_slots(user):
            raise SemcomError(f"{private_src}: user {user} also needs its copy of the public file "
                              f"(--public {received_public_name(user)})")
        public_symbols = torch.zeros(0, private.tensors["symbols"].shape[1], 2)
        public_repeats = []
    else:
        public.expect("transmit", public_src)
        _check_pair(private, public, private_src, public_src)
        if int(public.meta.get("user", -1)) != user:
            raise SemcomError(f"{public_src} is user {public.meta.get('user')}'s copy of the public file, "
                              f"not user {user}'s")
        if public.tensors["symbols"].shape[0] != len(plan.public):
            raise SemcomError(f"{public_src}: {public.tensors['symbols'].shape[0]} public tokens, "
                              f"the share plan says {len(plan.public)}")
        public_symbols = public.tensors["symbols"]
        public_repeats = [int(r) for r in public.meta.get("repeats", [1] * len(plan.public))]
    if "gain" not in private.tensors:
        raise SemcomError(f"{private_src}: received file has no 'gain' tensor")
    link = UserLink(public_symbols, private.tensors["symbols"],
                    torch.view_as_complex(private.tensors["gain"].contiguous()),
                    public_repeats, int(private.meta.get("repeats", 1)), float(private.meta["power_scale"]))
    return receive_user(model, plan, user, link, float(private.meta["snr_db"]))
