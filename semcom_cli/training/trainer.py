"""The optimiser loop every stage shares, and the state it resumes from.

``Trainer`` holds AdamW on a schedule (cosine, or one-cycle with a warm-up), optional gradient
clipping, the loss log and the stage's own generator; it can snapshot all of that (and the global
generators, and the weights of the modules it is given) after any step as a :class:`ResumeState`,
and continue from one to the same weights as a run that never stopped. Every stage trains through
it: the model stages (:mod:`.stages`), the reconstruct line's guide, codec and generative decoder.
Under ``torchrun`` every process takes its share of each batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from semcom_cli.channel import channel_rng_state, set_channel_rng_state
from semcom_cli.core.distributed import Shard, current_shard
from semcom_cli.core.errors import SemcomError

__all__ = ["Trainer", "Optimisation", "ResumeState", "Checkpointing", "StepHook", "optimizer_state",
           "load_optimizer_state", "final_loss"]

StepHook = Callable[[int, int, float], None]  # (step, total, loss)


def optimizer_state(opt: torch.optim.Optimizer, prefix: str = "") -> tuple[dict[str, torch.Tensor], list]:
    """An optimizer's moments as named tensors (``{prefix}{index}.{key}``) and its param groups (JSON;
    nothing pickled)."""
    saved = opt.state_dict()
    tensors = {f"{prefix}{index}.{key}": torch.as_tensor(value).detach().clone()
               for index, moments in saved["state"].items() for key, value in moments.items()}
    return tensors, saved["param_groups"]


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], param_groups: list,
                         prefix: str = "") -> int:
    """Load what :func:`optimizer_state` saved (tensors without ``prefix`` are ignored); returns how many
    parameters had moments."""
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            index, key = name[len(prefix):].split(".", 1)
            moments.setdefault(int(index), {})[key] = value
    opt.load_state_dict({"state": moments, "param_groups": param_groups})
    return len(moments)


def final_loss(losses: list[float]) -> float | None:
    """A run's final loss: the mean of its last tenth of steps."""
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    return sum(tail) / len(tail) if tail else None


@dataclass
class ResumeState:
    """Everything a stage needs to continue after ``step`` steps exactly as if it had not
    stopped: optimizer moments, schedule, loss log and every random generator it draws from."""

    step: int
    tensors: dict[str, torch.Tensor]  # optimizer moments, torch generator states
    meta: dict[str, Any]  # JSON: param groups, scheduler, loss log, Python/NumPy generator states


@dataclass
class Checkpointing:
    """Save a ResumeState through ``on_save`` every ``every`` steps; start from ``resume``."""

    every: int = 0
    on_save: Callable[[ResumeState], None] | None = None
    resume: ResumeState | None = None


@dataclass(frozen=True)
class Optimisation:
    """How a stage steps: AdamW's weight decay, the learning-rate schedule (``cosine`` from ``lr`` down,
    ``one-cycle`` rising over the first ``warmup`` share of the steps, or ``constant``) and gradient-norm
    clipping."""

    schedule: str = "cosine"
    weight_decay: float = 0.01  # AdamW's own default
    warmup: float = 0.05
    clip: float | None = None

    def build(self, params: list, lr: float, steps: int):
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)
        if self.schedule == "one-cycle":
            # OneCycleLR divides by (warm-up steps - 1): a warm-up of exactly one step (20 steps at 5 %) would
            # stop the run with a ZeroDivisionError, so it warms up over two
            warmup = 2 / steps if abs(self.warmup * steps - 1) < 1e-9 else self.warmup
            return opt, torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=warmup)
        if self.schedule == "constant":
            return opt, torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))


class Trainer:
    """AdamW on a schedule, the loss log every stage keeps, and the stage's own generator ``rng`` (None
    for a stage that draws each step from its seed and step); it can snapshot all of that (and the
    global generators, and the weights of ``modules``) after any step. ``cfg`` gives ``steps`` and ``lr``.

    ``shared_batches``: under ``torchrun`` the processes share each batch (:meth:`rows`) and their
    gradients are summed; a stage that does not split its batches trains the same step in every process.
    ``channel_generators``: the channel's generators travel in the snapshot (the stages that send
    through the channel; the image stages draw their noise from their own seeded generators)."""

    def __init__(self, params, cfg, rng: random.Random | None, on_step: StepHook | None,
                 checkpointing: Checkpointing | None = None, optimisation: Optimisation = Optimisation(),
                 modules: dict[str, torch.nn.Module] | None = None, shared_batches: bool = True,
                 channel_generators: bool = True):
        self.params = list(params)
        self.optimisation, self.modules = optimisation, modules or {}
        self.channel_generators = channel_generators
        self.opt, self.sched = optimisation.build(self.params, cfg.lr, cfg.steps)
        self.total, self.on_step, self.losses, self.rng = cfg.steps, on_step, [], rng
        self.checkpointing = checkpointing or Checkpointing()
        # Under torchrun every process draws the same batch and computes the loss on its share
        # (rows()), normalised by the whole batch; gradients and losses are summed across processes,
        # so every process takes the single-process step.
        self.shard = current_shard() if shared_batches else Shard.single()
        self.device = self.params[0].device if self.params else torch.device("cpu")
        if self.checkpointing.resume is not None:
            try:
                self._restore(self.checkpointing.resume)
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError):
                raise SemcomError("the partial run's resume state is damaged; start the stage afresh") from None

    @property
    def start(self) -> int:
        """The first step still to run (0, or where a resumed run stopped)."""
        return len(self.losses)

    def rows(self, batch: int) -> torch.Tensor:
        """The rows of a batch of ``batch`` samples whose loss this process computes."""
        device = self.params[0].device if self.params else None
        return torch.tensor(self.shard.take(list(range(batch))), dtype=torch.long, device=device)

    def step(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss``. A non-finite loss, or weights the step left non-finite, stop the
        run in one line (:class:`SemcomError`) before anything is saved: no partial run or checkpoint of a
        diverged model is written."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        value = loss.detach().clone()
        if self.shard.world > 1:
            # each share's loss is normalised by the whole batch: the sums are the whole batch's
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
            dist.all_reduce(value)
        if not bool(torch.isfinite(value)):
            self._diverged(f"the loss is {value.item()}")
        if self.optimisation.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.optimisation.clip)
        self.opt.step()
        if self.params and not bool(torch.stack([torch.isfinite(p).all() for p in self.params]).all()):  # one sync
            self._diverged("the weights are no longer finite")
        self.sched.step()
        self.losses.append(value.item())
        if self.on_step:
            self.on_step(len(self.losses), self.total, self.losses[-1])
        every, on_save = self.checkpointing.every, self.checkpointing.on_save
        if every and on_save and len(self.losses) % every == 0 and len(self.losses) < self.total:
            on_save(self.snapshot())

    def _diverged(self, what: str) -> None:
        lr = self.opt.param_groups[0]["lr"] if self.opt.param_groups else None
        raise SemcomError(f"training diverged at step {len(self.losses) + 1} of {self.total}: {what}"
                          + (f" (learning rate {lr:.3g}; try a lower --lr)" if lr is not None else "")
                          + "; nothing was saved from this step")

    def snapshot(self) -> ResumeState:
        tensors, param_groups = optimizer_state(self.opt, "optimizer.")
        tensors["rng.torch"] = torch.get_rng_state()
        channel = channel_rng_state(self.device) if self.channel_generators else None
        if channel is not None:
            tensors["rng.channel_torch"] = channel["torch"]
        for name, module in self.modules.items():
            tensors |= {f"module.{name}.{k}": v.detach().cpu().clone() for k, v in module.state_dict().items()}
        schedule = {k: v for k, v in self.sched.state_dict().items() if not callable(v)}
        meta = {"param_groups": param_groups, "scheduler": schedule, "losses": list(self.losses),
                "rng_python": _json_rng(self.rng.getstate()) if self.rng is not None else None,
                **({"rng_channel_python": _json_rng(channel["python"]), "rng_channel_numpy": channel["numpy"]}
                   if channel is not None else {})}
        return ResumeState(len(self.losses), tensors, meta)

    def _restore(self, state: ResumeState) -> None:
        saved = len({name.split(".")[1] for name in state.tensors if name.startswith("optimizer.")})
        if saved not in (0, len(self.params)):
            raise SemcomError(f"the saved run trained {saved} tensors, this stage trains {len(self.params)}")
        for name, module in self.modules.items():
            prefix = f"module.{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in state.tensors.items() if k.startswith(prefix)})
        load_optimizer_state(self.opt, state.tensors, state.meta["param_groups"], "optimizer.")
        self.sched.load_state_dict(state.meta["scheduler"])
        self.losses = list(state.meta["losses"])
        if self.rng is not None:
            self.rng.setstate(_rng_from_json(state.meta["rng_python"]))
        torch.set_rng_state(state.tensors["rng.torch"])
        if self.channel_generators:
            set_channel_rng_state({"torch": state.tensors["rng.channel_torch"],
                                   "python": _rng_from_json(state.meta["rng_channel_python"]),
                                   "numpy": state.meta["rng_channel_numpy"]}, self.device)


def _json_rng(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
