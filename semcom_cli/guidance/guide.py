"""The guide: a query and an image → the importance map of the image, as ``semcom guide`` runs it.

SmolLM2 reads the query (:mod:`.query`), the parser reads the referent off its states
(:mod:`.referent`), and the image network marks where the referent is (:mod:`.model`).
"""

from __future__ import annotations

import torch

from ..scenes import Referent
from .model import GuidanceNet, patch_map
from .query import QueryReader
from .referent import ReferentParser

__all__ = ["Guide"]


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
        return self.net(images, torch.tensor([r.indices() for r in read])), read

    def patch_map(self, images: torch.Tensor, texts: list[str], patch: int = 8) -> torch.Tensor:
        """The importance of each patch [B, 64/patch, 64/patch] in [0, 1]."""
        return patch_map(self.logits(images, texts)[0], patch)
