"""The KAN-LLM-channel pipeline: transmitter parts, the channel, receiver parts.

``SemcomModel`` holds the trainable parts (vision encoder, projector, channel
encoder and decoder) and, loaded on demand, the LLM with its LoRA adapter. Its
methods are the stages: ``image_tokens`` / ``text_tokens`` → ``encode`` →
:func:`send` (the channel) → ``receive`` → ``answer``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .backbone import LLM, load_backbone, load_lora
from .channel import apply_channel, effective_snr_db, mmse_equalize
from .codec import ChannelDecoder, ChannelEncoder
from .config import Preset
from .errors import SemcomError
from .instruct import generate_answers
from .projector import build_projector
from .vision import VisionEncoder

__all__ = ["SemcomModel", "send", "to_complex", "to_real"]


def to_complex(z: torch.Tensor) -> torch.Tensor:
    """[..., 2] reals → [...] complex64."""
    return torch.view_as_complex(z.float().contiguous())


def to_real(x: torch.Tensor) -> torch.Tensor:
    """[...] complex → [..., 2] reals."""
    return torch.view_as_real(x.to(torch.complex64)).clone()


def send(
    symbols: torch.Tensor,
    snr_db: torch.Tensor | float,
    channel: str,
    rician_k: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Send packets through the channel. symbols: [B, T, m, 2] → (y [B, T, m, 2], h [B] complex)."""
    b = symbols.shape[0]
    y, h = apply_channel(to_complex(symbols).reshape(b, -1), snr_db, channel, rician_k)
    return to_real(y).reshape(symbols.shape), h


class SemcomModel(nn.Module):
    """The trainable parts of one checkpoint, plus its LLM when needed."""

    def __init__(self, preset: Preset, embed_dim: int):
        super().__init__()
        self.preset = preset
        self.embed_dim = embed_dim
        p, c = preset.projector, preset.codec
        with torch.random.fork_rng():  # the initial weights follow the preset's seed alone
            torch.manual_seed(preset.seed)
            self.vision = VisionEncoder(preset.vision.channels, preset.vision.feature_dim, p.n_tokens)
            self.projector = build_projector(p.kind, in_dim=preset.vision.feature_dim, embed_dim=embed_dim,
                                             grid=p.grid, spline_order=p.spline_order)
            codec_args = dict(embed_dim=embed_dim, symbols_per_token=c.symbols_per_token, hidden=c.hidden,
                              grid=c.grid, spline_order=c.spline_order)
            self.channel_encoder = ChannelEncoder(**codec_args)
            self.channel_decoder = ChannelDecoder(**codec_args, context_heads=c.context_heads)
        self.llm: LLM | None = None
        self.adapter_dir: Path | None = None
        self.name = "untrained"
        self.hash = ""
        self.base_model_sha256: str | None = None

    # parts saved in a checkpoint, each as <name>/config.json + model.safetensors
    PARTS = ("vision", "projector", "channel_encoder", "channel_decoder")

    @property
    def symbols_per_token(self) -> int:
        return self.preset.codec.symbols_per_token

    def get_llm(self, status=None) -> LLM:
        if self.llm is None:
            llm = load_backbone(self.preset.backbone, self.preset.seed, status=status)
            if self.base_model_sha256 and llm.sha256 != self.base_model_sha256:
                raise SemcomError(
                    f"checkpoint {self.name} was trained on base model sha256 {self.base_model_sha256[:12]}…, "
                    f"but the preset's backbone is {llm.sha256[:12]}… ({llm.model_id})"
                )
            if llm.embed_dim != self.embed_dim:
                raise SemcomError(f"checkpoint {self.name} expects an LLM with embedding size "
                                  f"{self.embed_dim}, the backbone has {llm.embed_dim}")
            if self.adapter_dir is not None:
                load_lora(llm, self.adapter_dir)
            self.llm = llm
        return self.llm

    # transmitter ---------------------------------------------------------

    def image_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, 64, 64] → semantic tokens [B, T, D] and mask [B, T]."""
        tokens = self.projector(self.vision(images))
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.long)

    def text_token_ids(self, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """sentences → LLM token ids [B, T] and mask [B, T] (right-padded, at most max_text_tokens)."""
        llm = self.get_llm()
        limit = self.preset.data.max_text_tokens
        ids = [llm.tokenizer(s, add_special_tokens=False)["input_ids"][:limit] for s in sentences]
        if any(len(i) == 0 for i in ids):
            raise SemcomError("cannot send an empty sentence")
        length = max(len(i) for i in ids)
        padded = torch.full((len(ids), length), llm.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(ids), length, dtype=torch.long)
        for row, i in enumerate(ids):
            padded[row, : len(i)] = torch.tensor(i)
            mask[row, : len(i)] = 1
        return padded, mask

    def text_tokens(self, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """sentences → the LLM's token embeddings [B, T, D] and mask [B, T] (right-padded)."""
        ids, mask = self.text_token_ids(sentences)
        with torch.no_grad():
            return self.get_llm().embed(ids), mask

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """semantic tokens [B, T, D] → channel symbols [B, T, m, 2], power 1 per complex symbol."""
        return self.channel_encoder(tokens, mask)

    # receiver ------------------------------------------------------------

    def receive(self, y: torch.Tensor, h: torch.Tensor, snr_db: torch.Tensor | float,
                mask: torch.Tensor) -> torch.Tensor:
        """Equalise and decode received symbols [B, T, m, 2] → semantic tokens [B, T, D]."""
        return self.decode(*self.equalize(y, h, snr_db), mask)

    @staticmethod
    def equalize(y: torch.Tensor, h: torch.Tensor, snr_db: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """Received symbols [B, T, m, 2] → equalised symbols [B, T, m, 2] and effective SNR [B] (dB)."""
        b = y.shape[0]
        snr = torch.as_tensor(snr_db, dtype=torch.float32).expand(b)
        x_hat = mmse_equalize(to_complex(y).reshape(b, -1), h, snr)
        return to_real(x_hat).reshape(y.shape), effective_snr_db(h, snr)

    def decode(self, x_hat: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Equalised symbols [B, T, m, 2] at effective SNR [B] or [B, T] (dB) → semantic tokens [B, T, D]."""
        tokens = self.channel_decoder(x_hat, snr_db, mask)
        return tokens * mask[..., None].to(tokens.dtype)

    def answer(self, tasks: list[str], instructions: list[str | None], tokens: torch.Tensor,
               mask: torch.Tensor, max_new_tokens: int | None = None) -> list[str]:
        llm = self.get_llm()
        if max_new_tokens is None:
            max_new_tokens = self.preset.data.max_text_tokens + 4 if "text" in tasks else 8
        return generate_answers(llm, tasks, instructions, tokens, mask, max_new_tokens)
