"""Training: the three stages (align, channel, instruct), the loop they share, and partial runs."""

from .partial import load_partial, save_partial
from .stages import run_stage, train_align, train_channel, train_instruct
from .trainer import Checkpointing, ResumeState, StepHook, Trainer

__all__ = ["run_stage", "train_align", "train_channel", "train_instruct", "Trainer", "ResumeState",
           "Checkpointing", "StepHook", "save_partial", "load_partial"]
