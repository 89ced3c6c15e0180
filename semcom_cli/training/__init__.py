"""Training: the four stages (align, channel, instruct, rate), the loop they share, and partial runs."""

from semcom_cli.training.partial import load_partial, save_partial
from semcom_cli.training.stages import run_stage, train_align, train_channel, train_instruct, train_rate
from semcom_cli.training.trainer import Checkpointing, ResumeState, StepHook, Trainer

__all__ = ["run_stage", "train_align", "train_channel", "train_instruct", "train_rate", "Trainer", "ResumeState",
           "Checkpointing", "StepHook", "save_partial", "load_partial"]
