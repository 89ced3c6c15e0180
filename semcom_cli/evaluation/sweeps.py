"""The sweeps ``semcom evaluate`` runs, by name: which one a request asks for, and the options each takes.

``points`` is :func:`semcom_cli.evaluation.sweep.run_sweep` (method × task × channel × SNR × channel uses on
easy-vqa items; presets, floors, resume, comparisons); ``share`` is :func:`semcom_cli.evaluation.share.share_sweep`
(multi-user sharing); ``rag`` is :func:`semcom_cli.evaluation.rag.evaluate_rag` (text, or VQA with the user's
recent scenes, without and with knowledge bases); ``reconstruct`` is
:func:`semcom_cli.evaluation.reconstruct_sweep.reconstruct_sweep` (MLLM-SC's scenes). One command keeps one set
of flags for all four (presets, scripts and the CI gate call it as they always have); which options a sweep
takes is declared here once, so an option given to the wrong sweep is refused in one line that says where it
belongs.
"""

from __future__ import annotations

from dataclasses import dataclass

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry

__all__ = ["SweepKind", "SWEEPS", "pick_sweep", "check_options"]

_EVERY = ("--task", "--snr", "--channel", "--limit", "--seed", "--batch-size", "--checkpoint", "--output", "--json")


@dataclass(frozen=True)
class SweepKind:
    """How a request asks for the sweep (a flag and its value; empty: the default sweep), what it measures,
    and the options it reads."""

    asked_by: str
    summary: str
    takes: frozenset[str]


SWEEPS: Registry[SweepKind] = Registry("sweep")
SWEEPS.register("rag", SweepKind("--method rag", "text (or VQA) without and with knowledge bases",
                                 frozenset({*_EVERY, "--method", "--device", "--k", "--corpus-users"})))
SWEEPS.register("reconstruct", SweepKind(
    "--task reconstruct", "scenes through the guide, the codec or the digital baseline, and the decoders",
    frozenset({*_EVERY, "--method", "--channel-uses", "--image-codec", "--mcs", "--roi-share", "--background",
               "--vqa", "--decoder", "--steps"})))
SWEEPS.register("share", SweepKind(
    "--share", "multi-user sharing: public + private against separate sending",
    frozenset({*_EVERY, "--device", "--channel-uses", "--share", "--users", "--scenario", "--threshold"})))
SWEEPS.register("points", SweepKind(
    "", "methods × tasks × channels × SNRs × channel uses on easy-vqa, with presets, floors and resume",
    frozenset({*_EVERY, "--method", "--device", "--channel-uses", "--target-accuracy", "--image-codec", "--mcs",
               "--preset", "--mlp-checkpoint", "--resume", "--plot"})))


def pick_sweep(tasks: list[str], methods: list[str], share: bool) -> str:
    """The sweep a request asks for: retrieval methods first, then the reconstruct task, then sharing."""
    if "rag" in methods:
        return "rag"
    if "reconstruct" in tasks:
        return "reconstruct"
    return "share" if share else "points"


def check_options(name: str, given: list[str]) -> None:
    """Refuse, in one line, the options in ``given`` that sweep ``name`` does not take: "X is for …" when
    one other sweep takes them all, else "X does not apply to …" with what the sweep takes."""
    sweep = SWEEPS.lookup(name)
    refused = [flag for flag in given if flag not in sweep.takes]
    if not refused:
        return
    owners = {other for other, kind in SWEEPS.items() if other != name and all(f in kind.takes for f in refused)}
    owner = SWEEPS[next(iter(owners))] if len(owners) == 1 else None
    flags = ", ".join(refused)
    if owner is not None and owner.asked_by and not any(owner.asked_by.split()[0] == f for f in refused):
        raise SemcomError(f"{flags} {'is' if len(refused) == 1 else 'are'} for {owner.asked_by}")
    where = sweep.asked_by or "this sweep"
    raise SemcomError(f"{flags} {'does' if len(refused) == 1 else 'do'} not apply to {where} "
                      f"(it takes {', '.join(sorted(sweep.takes))})")
