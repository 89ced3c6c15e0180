"""A user's recent scenes as what the receiver expects: a prior on the caption codebook.

An image packet is read as one of the 24 captions (:mod:`semcom_cli.models.codebook`). A user's local
base of recent scenes (their decoded captions, e.g. "a red circle") says which captions this user
tends to receive; the receiver adds that knowledge as a prior: a ``trust`` share of the probability
spread over the captions in the base (as often as each occurs), the rest uniform over all 24, so a
scene the base has never seen can still be read where the channel is clear.
"""

from __future__ import annotations

import math

import torch

from semcom_cli.core.errors import SemcomError
from semcom_cli.models.codebook import CAPTIONS
from semcom_cli.tasks.shapes import parse_caption

__all__ = ["caption_prior", "DEFAULT_TRUST"]

DEFAULT_TRUST = 0.8


def caption_prior(entries: list[str], trust: float = DEFAULT_TRUST) -> torch.Tensor:
    """Log prior [24] over ``CAPTIONS`` from a local base's entries (captions; others are ignored)."""
    if not 0.0 <= trust < 1.0:
        raise SemcomError(f"trust must be in [0, 1) (got {trust})")
    counts = torch.zeros(len(CAPTIONS))
    for entry in entries:
        caption = parse_caption(entry)
        if caption in CAPTIONS:
            counts[CAPTIONS.index(caption)] += 1
    if counts.sum() == 0:
        return torch.full((len(CAPTIONS),), -math.log(len(CAPTIONS)))
    prior = trust * counts / counts.sum() + (1 - trust) / len(CAPTIONS)
    return prior.log()
