"""The receiver's caption codebook: an image packet read as a whole, as one of the 24 captions.

The align stage puts an image's semantic tokens on the LLM's embeddings of its caption words,
" {colour} {shape}" tiled to fill the token slots, so every image packet a transmitter sends is
meant to be one of 24 points (8 colours × 3 shapes). After the channel decoder, the receiver
scores each caption by the sum over the packet's tokens of their cosine with its tiled words,
turns the scores into a posterior (softmax at ``codec.codebook_temperature``, the channel stage's
temperature) and hands the LLM the posterior-weighted mix of the captions' word embeddings: at
high SNR the clean words, at low SNR a blend that keeps the code's doubt instead of one guess.
It is a decoding rule, not a trained part: it has no weights, and ``codec.image_codebook: none``
turns it off. It reads only image packets; sentences are decoded as before.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["CAPTIONS", "caption_token_ids", "caption_embeddings", "caption_scores", "read_packets"]

CAPTIONS = tuple((color, shape) for color in COLORS for shape in SHAPES)


def caption_token_ids(llm, color: str, shape: str, n_tokens: int) -> list[int]:
    """The caption's words as LLM token ids, tiled to fill ``n_tokens`` slots."""
    token_ids = llm.tokenizer(f" {color} {shape}", add_special_tokens=False)["input_ids"]
    return (token_ids * n_tokens)[:n_tokens]


def caption_embeddings(llm, n_tokens: int) -> torch.Tensor:
    """The 24 captions' tiled word embeddings [24, n_tokens, D], in ``CAPTIONS`` order."""
    ids = torch.tensor([caption_token_ids(llm, c, s, n_tokens) for c, s in CAPTIONS], device=llm.device)
    with torch.no_grad():
        return llm.embed(ids)


def caption_scores(tokens: torch.Tensor, unit_captions: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Each packet's score for each caption [B, C]: the sum over its tokens [B, T, D] of their cosine
    with the caption's tiled words (``unit_captions`` [C, T, D], unit-norm). The one decision rule
    the channel stage trains (its packet term) and the receiver reads by; padding (mask 0) adds 0."""
    unit_tokens = F.normalize(tokens, dim=-1)
    if mask is not None:
        unit_tokens = unit_tokens * mask[..., None].to(tokens.dtype)
    return torch.einsum("btd,ctd->bc", unit_tokens, unit_captions)


def read_packets(tokens: torch.Tensor, mask: torch.Tensor, captions: torch.Tensor,
                 temperature: float, fill: bool = False, log_prior: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded image tokens [B, T, D] → the posterior-weighted mix of the captions [C, T, D].

    Slots with mask 0 take no part in the scores; a packet holding only some of the slots (a share
    set's part, or a variable-rate packet that left tokens out) is scored on those slots alone.
    Those slots stay zero, or with ``fill`` are filled in from the posterior too: the receiver
    knows a packet is one caption, so it can restore the slots the transmitter did not send.
    ``log_prior``: log prior probabilities of the captions (uniform when None), added to the scores.
    """
    scores = caption_scores(tokens, F.normalize(captions, dim=-1), mask) / temperature
    if log_prior is not None:  # what the receiver already expects ([C] or [B, C]), e.g. a user's recent scenes
        scores = scores + log_prior.to(scores)
    posterior = torch.softmax(scores, dim=1)
    mixed = torch.einsum("bc,ctd->btd", posterior, captions.to(tokens.dtype))
    return mixed if fill else mixed * mask[..., None].to(tokens.dtype)
