"""The model parts, each a module: vision encoder, projector (KAN or MLP), channel codec, caption codebook,
the LLM backbone with its instruction inputs and LoRA, the MiniLM sentence embedder, int8 state and the
compressed LLM. None of them knows a preset: :mod:`semcom_cli.system` assembles them from one."""

from semcom_cli.models.llm import LLM, load_backbone

__all__ = ["LLM", "load_backbone"]
