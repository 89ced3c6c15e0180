"""The guide: a query and an image → the importance map of the image, as ``semcom guide`` runs it.

SmolLM2 reads the query (:mod:`.query`), the parser reads the referent off its states
(:mod:`.referent`), and the image network marks where the referent is (:mod:`.model`), in the
image and in its mirror image (with the referent mirrored: "leftmost" becomes "rightmost"), the two
maps averaged.
"""

from __future__ import annotations

import torch

from semcom_cli.data.scenes import Referent
from semcom_cli.reconstruct.guidance.model import GuidanceNet, patch_map
from semcom_cli.reconstruct.guidance.query import QueryReader
from semcom_cli.reconstruct.guidance.referent import ReferentParser

__all__ = ["Guide", "mirrored"]

_MIRROR = {"leftmost": "rightmost", "rightmost": "leftmost", "top left": "top right", "top right": "top left",
           "bottom left": "bottom right", "bottom right": "bottom left"}


def mirrored(referent: Referent) -> Referent:
    """The same referent in the left-right mirrored image ("leftmost" becomes "rightmost")."""
    return Referent(referent.color, referent.shape, _MIRROR.get(referent.where, referent.where), referent.size)


class Guide:
    def __init__(self, reader: QueryReader, parser: ReferentParser, net: GuidanceNet):
        self.reader, self.parser, self.net = reader, parser, net

    @torch.no_grad()
    def referents(self, texts: list[str]) -> list[Referent]:
        return self.parser.parse(*self.reader([" ".join(t.split()) for t in texts]))

    @torch.no_grad()
    def logits(self, images: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, list[Referent]]:
        """Images [B, 3, 64, 64] in [0, 1] and one query each → per-pixel logits [B, 64, 64] and the
        referents read from the queries."""
        read = self.referents(texts)
        return self.mark(images, read), read

    @torch.no_grad()
    def mark(self, images: torch.Tensor, referents: list[Referent]) -> torch.Tensor:
        """Per-pixel logits [B, 64, 64] of where each image shows its referent."""
        # the image and its mirror (with the referent mirrored too), probabilities averaged: measured
        # on the validation split, IoU 0.882 → 0.888 (test 0.849 → 0.858) for twice the network's time
        direct = torch.sigmoid(self.net(images, torch.tensor([r.indices() for r in referents])))
        mirror = torch.sigmoid(self.net(images.flip(-1), torch.tensor([mirrored(r).indices() for r in referents])))
        p = ((direct + mirror.flip(-1)) / 2).clamp(1e-6, 1 - 1e-6)
        return torch.log(p) - torch.log1p(-p)

    def patch_map(self, images: torch.Tensor, texts: list[str], patch: int = 8) -> torch.Tensor:
        """The importance of each patch [B, 64/patch, 64/patch] in [0, 1]."""
        return patch_map(self.logits(images, texts)[0], patch)
