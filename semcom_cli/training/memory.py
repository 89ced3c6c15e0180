"""The memory a training run needs, estimated before anything is allocated, against what the machine has.

A stage's run holds its networks four times over (the weights, their gradients and AdamW's two moments,
float32), its data pool, and one batch's activations (what autograd keeps for the backward pass, plus the
forward's temporaries and the activations' gradients during it). Each stage states its own figures from
its settings (:meth:`MemoryNeed`); :func:`check_memory` refuses, in one line, a run whose estimate exceeds
the memory available now (``MemAvailable`` in ``/proc/meminfo``, or the free pages ``sysconf`` reports),
so a batch of 10⁸ is a message, not a 1.2 TB allocation that fails with a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from semcom_cli.core.errors import SemcomError

__all__ = ["MemoryNeed", "available_bytes", "check_memory", "preset_stage_need", "ACTIVATION_OVERHEAD",
           "BYTES_PER_PARAMETER"]

BYTES_PER_PARAMETER = 16     # float32 weights, gradients and AdamW's two moments
ACTIVATION_OVERHEAD = 1.5    # autograd's saved tensors (measured) → the step's peak: temporaries, their gradients


@dataclass(frozen=True)
class MemoryNeed:
    """A run's estimate, in bytes: its networks' parameters, one sample's saved activations, the batch size
    and what does not grow with the batch (the data pool, tables)."""

    parameters: int
    per_sample: float
    batch: int
    fixed: int = 0

    @property
    def total(self) -> int:
        return int(BYTES_PER_PARAMETER * self.parameters + ACTIVATION_OVERHEAD * self.per_sample * self.batch
                   + self.fixed)


def available_bytes() -> int | None:
    """The memory a new allocation may take now, or None where the system does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def check_memory(what: str, need: MemoryNeed, available: int | None = None) -> int:
    """Refuse in one line a run of ``what`` whose estimate exceeds the available memory; returns the
    estimate. ``available``: the bytes to compare with (default: what the system reports now)."""
    available = available_bytes() if available is None else available
    total = need.total
    if available is not None and total > available:
        raise SemcomError(f"{what}: a batch of {need.batch:,} needs about {_size(total)} of memory "
                          f"({_size(available)} available); lower --batch-size")
    return total


LLM_SHAPES = {"smollm2": (30, 576)}  # (layers, hidden) of the shipped backbone
LLM_STAGES = ("instruct", "retrieval")  # the stages whose loss runs through the LLM (LoRA)


def preset_stage_need(model, stage: str, cfg) -> MemoryNeed:
    """The estimate of a model stage (``align``, ``finetune --stage channel|instruct|…``) of a
    :class:`~semcom_cli.system.SemcomModel` ``model`` with its preset's ``train.<stage>`` settings ``cfg``: its
    trainable parts' parameters; per sample, the vision encoder's feature maps of a 64×64 picture (forward and
    backward) and, in the stages that train through the LLM, its hidden states at every layer over the
    prompt (about 24 values per layer and position kept for the backward pass)."""
    preset = model.preset
    parameters = sum(p.numel() for p in model.parameters())
    per_sample = 2 * 4 * 64 * 64 * sum(preset.vision.channels)
    if stage in LLM_STAGES:
        backbone = preset.backbone
        if backbone.source == "tiny":
            layers, hidden = backbone.tiny.num_hidden_layers, backbone.tiny.hidden_size
        else:
            layers, hidden = LLM_SHAPES.get(backbone.source, (32, 1024))
        positions = preset.projector.n_tokens * 4 + preset.data.max_text_tokens + 64
        per_sample += 24 * 4 * layers * hidden * positions
    return MemoryNeed(parameters, per_sample, cfg.batch_size)
