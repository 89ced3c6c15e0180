"""Training: the stage registry (every stage by name; the reconstruct and federated parts add theirs), the
model stages (align, channel, instruct, rate, corpus, retrieval), the loop they share, and partial runs."""

from semcom_cli.training.partial import load_partial, save_partial
from semcom_cli.training.stages import STAGES, Stage, run_stage, train_align, train_channel, train_instruct, train_rate
from semcom_cli.training.trainer import Checkpointing, ResumeState, StepHook, Trainer

__all__ = ["STAGES", "Stage", "run_stage", "train_align", "train_channel", "train_instruct", "train_rate", "Trainer",
           "ResumeState", "Checkpointing", "StepHook", "save_partial", "load_partial"]
