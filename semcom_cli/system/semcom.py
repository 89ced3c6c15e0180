"""The SemcomModel: the trained parts of one checkpoint, and its LLM loaded on demand.

Its methods are the pipeline's steps, in the README's order: ``image_tokens`` /
``text_tokens`` (modality encoder + projector) → ``encode`` (channel encoder) → the
channel (:mod:`semcom_cli.channel`) → ``receive`` (equaliser + channel decoder) →
``answer`` (the LLM with its LoRA adapter, following the task's instruction).

``from_pretrained(folder)`` rebuilds a model from a checkpoint folder and
``save_pretrained(folder)`` writes one (:mod:`.checkpoint`: the format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from semcom_cli.channel import equalize_symbols
from semcom_cli.config.preset import Preset
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.runtime import resolve_device
from semcom_cli.link.rate import RateTable
from semcom_cli.models.codebook import caption_embeddings, read_packets
from semcom_cli.models.codec import ChannelDecoder, ChannelEncoder
from semcom_cli.models.compressed import load_compressed_llm
from semcom_cli.models.llm import LLM, backbone_identity, load_backbone, load_lora
from semcom_cli.models.projector import build_projector
from semcom_cli.models.prompting import generate_answers
from semcom_cli.models.vision import VisionEncoder
from semcom_cli.system.checkpoint import load_checkpoint, save_checkpoint
from semcom_cli.tasks import get_task

__all__ = ["SemcomModel"]


class SemcomModel(nn.Module):
    """The trainable parts of one checkpoint, plus its LLM when needed.

    ``name``, ``hash`` and ``adapter_dir`` say which checkpoint it came from (``untrained`` and
    empty for a model built from a preset); ``from_pretrained`` fills them in.
    """

    # parts saved in a checkpoint, each as <name>/config.json + model.safetensors
    PARTS = ("vision", "projector", "channel_encoder", "channel_decoder")

    def __init__(self, preset: Preset, embed_dim: int):
        super().__init__()
        self.preset = preset
        self.embed_dim = embed_dim
        p, c = preset.projector, preset.codec
        with torch.random.fork_rng():  # the initial weights follow the preset's seed alone
            torch.manual_seed(preset.seed)
            self.vision = VisionEncoder(preset.vision.channels, preset.vision.feature_dim, p.n_tokens,
                                        preset.vision.strides, preset.vision.pool)
            self.projector = build_projector(p.kind, in_dim=preset.vision.feature_dim, embed_dim=embed_dim,
                                             grid=p.grid, spline_order=p.spline_order)
            codec_args = dict(embed_dim=embed_dim, symbols_per_token=c.symbols_per_token, hidden=c.hidden,
                              grid=c.grid, spline_order=c.spline_order)
            self.channel_encoder = ChannelEncoder(**codec_args, encoder_heads=c.encoder_heads, power=c.power,
                                                  modality_embedding=c.modality_embedding)
            self.channel_decoder = ChannelDecoder(**codec_args, context_heads=c.context_heads,
                                                  modality_embedding=c.modality_embedding)
        self.llm: LLM | None = None
        self._captions: torch.Tensor | None = None
        self.name = "untrained"
        self.hash = ""
        self.adapter_dir: Path | None = None
        self.base_model_sha256: str | None = None
        self.metrics: dict = {}  # what was measured on the checkpoint (its manifest's metrics)
        self.folder: Path | None = None
        self.compression: dict | None = None  # a compressed checkpoint's recipe and measures (its LLM in llm/)
        self.to(resolve_device(preset.device))

    # checkpoint folders ----------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None, overrides: dict[str, Any] | None = None,
                        device: str | None = None) -> "SemcomModel":
        """Rebuild the model saved in ``folder`` (default: the shipped checkpoint), verifying its hash.
        ``overrides``: dotted preset fields to change (training settings for the next stage)."""

        return load_checkpoint(cls, folder, overrides, device)

    def save_pretrained(self, folder: str | Path, training: dict[str, Any] | None = None) -> str:
        """Write this model as a checkpoint folder (atomically); returns its content hash."""

        return save_checkpoint(self, folder, training)

    # the LLM ----------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def symbols_per_token(self) -> int:
        return self.preset.codec.symbols_per_token

    @property
    def snr_floor_db(self) -> float:
        """The lowest SNR the channel code was trained for (links below it repeat their symbols)."""
        return self.preset.codec.snr_floor_db

    def get_llm(self, status=None) -> LLM:
        if self.llm is None:
            if self.compression is not None:
                llm = self._compressed_llm(status)
            else:
                llm = load_backbone(self.preset.backbone, self.preset.seed, status=status, device=self.device)
                self._check_base(llm.sha256, llm.model_id)
            if llm.embed_dim != self.embed_dim:
                raise SemcomError(f"checkpoint {self.name} expects an LLM with embedding size "
                                  f"{self.embed_dim}, the backbone has {llm.embed_dim}")
            if self.adapter_dir is not None:
                load_lora(llm, self.adapter_dir)
            self.llm = llm
        return self.llm

    def _check_base(self, sha256: str, model_id: str) -> None:
        if self.base_model_sha256 and sha256 != self.base_model_sha256:
            raise SemcomError(
                f"checkpoint {self.name} was trained on base model sha256 {self.base_model_sha256[:12]}…, "
                f"but the preset's backbone is {sha256[:12]}… ({model_id})"
            )

    def _compressed_llm(self, status=None) -> LLM:
        """A compressed checkpoint's own LLM (:mod:`semcom_cli.compression`), read with the base model's
        tokenizer, after checking the installed base model is the one it was made from."""

        model_id, sha256, tokenizer, _ = backbone_identity(self.preset.backbone, self.preset.seed, status)
        self._check_base(sha256, model_id)
        return load_compressed_llm(self.folder / "llm", tokenizer, model_id, sha256, self.device)

    # transmitter ---------------------------------------------------------

    def image_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, 64, 64] → semantic tokens [B, T, D] and mask [B, T]."""
        tokens = self.projector(self.vision(images.to(self.device)))
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.long, device=tokens.device)

    def text_token_ids(self, sentences: list[str], strict: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """sentences → LLM token ids [B, T] and mask [B, T] (right-padded, at most max_text_tokens).
        Training and evaluation cut longer sentences there; ``strict`` refuses them (a user's input)."""
        llm = self.get_llm()
        limit = self.preset.data.max_text_tokens
        ids = [llm.tokenizer(s, add_special_tokens=False)["input_ids"] for s in sentences]
        if any(len(i) == 0 for i in ids):
            raise SemcomError("cannot send an empty sentence")
        if not strict:
            ids = [i[:limit] for i in ids]
        elif any(len(i) > limit for i in ids):
            raise SemcomError(f"a sentence of {max(len(i) for i in ids)} tokens; checkpoint {self.name} sends at "
                              f"most {limit} (data.max_text_tokens)")
        length = max(len(i) for i in ids)
        padded = torch.full((len(ids), length), llm.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(ids), length, dtype=torch.long)
        for row, i in enumerate(ids):
            padded[row, : len(i)] = torch.tensor(i)
            mask[row, : len(i)] = 1
        return padded.to(self.device), mask.to(self.device)

    def text_tokens(self, sentences: list[str], strict: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """sentences → the LLM's token embeddings [B, T, D] and mask [B, T] (right-padded)."""
        ids, mask = self.text_token_ids(sentences, strict)
        with torch.no_grad():
            return self.get_llm().embed(ids), mask

    def source_tokens(self, modality: str, inputs, strict: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic tokens [B, T, D] and mask [B, T] of images [B, 3, 64, 64] or a list of sentences."""
        return self.text_tokens(inputs, strict) if modality == "text" else self.image_tokens(inputs)

    def channel_uses(self, modality: str, inputs) -> list[int]:
        """Complex channel uses of each packet this model would send."""
        if modality == "text":
            _, mask = self.text_token_ids(inputs)
            return (mask.sum(1) * self.symbols_per_token).tolist()
        return [self.preset.projector.n_tokens * self.symbols_per_token] * len(inputs)

    def most_tokens(self, modality: str) -> int:
        """The longest packet this model sends: its image tokens, or its longest sentence."""
        return self.preset.data.max_text_tokens if modality == "text" else self.preset.projector.n_tokens

    def rate_table(self):
        """The checkpoint's measured rate table (``--channel-uses auto``), or one clear line why not."""

        return RateTable.from_manifest({"metrics": self.metrics}, self.name)

    def check_task(self, task) -> None:
        """Refuse a task this checkpoint's LLM was not instruction-tuned on."""
        if task.tag not in self.preset.train.instruct.tasks:
            raise SemcomError(f"task '{task.name}' is not one checkpoint {self.name} was trained for "
                              f"({', '.join(self.preset.train.instruct.tasks)})")

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor, modality: str,
               segments: torch.Tensor | None = None) -> torch.Tensor:
        """semantic tokens [B, T, D] → channel symbols [B, T, m, 2], power 1 per complex symbol.
        Each row is one packet, coded jointly, or several (``segments`` [B, T]: packet ids)."""
        return self.channel_encoder(tokens, mask, modality, segments)

    # receiver ------------------------------------------------------------

    def receive(self, y: torch.Tensor, h: torch.Tensor, snr_db: torch.Tensor | float,
                mask: torch.Tensor, modality: str, codebook: bool = True,
                caption_prior: torch.Tensor | None = None) -> torch.Tensor:
        """Equalise and decode received symbols [B, T, m, 2] → semantic tokens [B, T, D]."""
        y, h, mask = y.to(self.device), h.to(self.device), mask.to(self.device)
        return self.decode(*equalize_symbols(y, h, snr_db), mask, modality, codebook, caption_prior=caption_prior)

    def decode(self, x_hat: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor, modality: str,
               codebook: bool = True, fill: bool = False, caption_prior: torch.Tensor | None = None) -> torch.Tensor:
        """Equalised symbols [B, T, m, 2] at effective SNR [B] or [B, T] (dB) → semantic tokens [B, T, D].
        Image packets are then read against the caption codebook when the preset says so
        (``codebook=False``: the channel decoder's tokens, as the channel stage trains them); with
        ``fill`` the codebook also fills in the slots the packet left out (mask 0); ``caption_prior``:
        log prior of the captions ([24] or [B, 24], :func:`semcom_cli.retrieval.scenes.caption_prior`)."""
        tokens = self.channel_decoder(x_hat, snr_db.to(x_hat.device), mask, modality)
        tokens = tokens * mask[..., None].to(tokens.dtype)
        if codebook and self.reads_captions(modality):
            tokens = read_packets(tokens, mask, self.caption_codebook(), self.preset.codec.codebook_temperature,
                                  fill, caption_prior)
        return tokens

    def reads_captions(self, modality: str) -> bool:
        """Whether the receiver reads this modality's packets against the caption codebook (and can
        therefore restore tokens a variable-rate packet left out)."""
        return modality == "image" and self.preset.codec.image_codebook == "captions"

    def receive_repeated(self, y: torch.Tensor, g: torch.Tensor, snr_db: torch.Tensor | float,
                         repeats: torch.Tensor, modality: str, codebook: bool = True) -> torch.Tensor:
        """A variable-rate packet's combined observation y [B, T, m, 2] and gain g [B, T, m]
        (:func:`semcom_cli.channel.send_repeated`) → semantic tokens [B, T, D], every slot filled:
        each token decoded at its own effective SNR, left-out tokens restored by the codebook."""
        y, g, repeats = y.to(self.device), g.to(self.device), repeats.to(self.device)
        sent = (repeats > 0).long()
        x_hat, snr = equalize_symbols(y, g, snr_db)
        link = torch.as_tensor(snr_db, dtype=snr.dtype, device=snr.device).reshape(-1, 1).expand_as(snr)
        snr = torch.where(sent.bool(), snr, link)  # a left-out token's SNR is never read (mask 0)
        return self.decode(x_hat, snr, sent, modality, codebook, fill=True)

    def caption_codebook(self) -> torch.Tensor:
        """The 24 captions' tiled word embeddings [24, n_tokens, D] (from the LLM, computed once)."""
        if self._captions is None:
            self._captions = caption_embeddings(self.get_llm(), self.preset.projector.n_tokens).to(self.device)
        return self._captions

    def answer(self, tasks: list[str], instructions: list[str | None], tokens: torch.Tensor,
               mask: torch.Tensor, max_new_tokens: int | None = None,
               contexts: list[list[str] | None] | None = None) -> list[str]:
        """The LLM's answers, one per packet of semantic tokens [B, T, D], to each task's instruction
        (followed by what a knowledge base returned for it, ``contexts``)."""
        llm = self.get_llm()
        if max_new_tokens is None:
            limit = self.preset.data.max_text_tokens
            max_new_tokens = max(get_task(t).answer_tokens(limit) for t in tasks)
        return generate_answers(llm, tasks, instructions, tokens.to(self.device), mask.to(self.device),
                                max_new_tokens, contexts)
