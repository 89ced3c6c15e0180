"""The models: vision encoder, projector (KAN or MLP), channel codec, the LLM backbone with its
instruction inputs, and the SemcomModel that holds them (checkpoint folders: ``from_pretrained`` /
``save_pretrained``)."""

from .llm import LLM, load_backbone
from .semcom import SemcomModel

__all__ = ["LLM", "load_backbone", "SemcomModel"]
