"""The guide: a query and an image → the importance map of the image, or "I don't know", as ``semcom guide`` runs it.

SmolLM2 reads the query (:mod:`.query`), the parser reads the referent off its states
(:mod:`.referent`), and the image network marks where the referent is (:mod:`.model`), in the
image and in its mirror image (with the referent mirrored: "leftmost" becomes "rightmost"), the two
maps averaged. Each query ends one of three ways (:class:`Finding`): **found**; **unknown** (the
parser could not read it all: a word or value it has no field for); **not found** (read, but the
presence check (:mod:`.presence`) does not see it in what the map marks: its probability under the
level 99 % of present referents reach on validation scenes, :mod:`.calibrate`). Only a found
referent guides the transmitter; the others fall back to uniform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field

from semcom_cli.data.scenes import Referent
from semcom_cli.reconstruct.guidance.model import GuidanceNet, patch_map
from semcom_cli.reconstruct.guidance.presence import PresenceCheck, what_is_marked
from semcom_cli.reconstruct.guidance.query import QueryReader, normalise_query
from semcom_cli.reconstruct.guidance.referent import Reading, ReadingThresholds, ReferentParser

__all__ = ["Guide", "GuideThresholds", "Finding", "mirrored", "map_peak", "FOUND", "UNKNOWN", "NOT_FOUND",
           "referent_kind"]

FOUND, UNKNOWN, NOT_FOUND = "found", "unknown", "not found"
PEAK_PIXELS = 32  # the peak: the mean probability of the map's strongest pixels (a present object has ≥ 49)
NOTHING = -30.0   # the logit of a pixel in a map that marks nothing (probability 1e-13; finite, unlike -inf)

_MIRROR = {"leftmost": "rightmost", "rightmost": "leftmost", "top left": "top right", "top right": "top left",
           "bottom left": "bottom right", "bottom right": "bottom left"}


class GuideThresholds(ReadingThresholds):
    """The reading's thresholds and the picture's: a referent the presence check gives a probability
    under its kind's threshold (``not_found_by_kind``, keyed by the fields it names: "color",
    "color+shape", …) or, for a kind without one, under ``not_found_below`` is not in the picture
    (None: never said)."""

    not_found_below: float | None = Field(None, ge=0.0, le=1.0)
    not_found_by_kind: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = {}

    def not_found_limit(self, referent: Referent) -> float | None:
        return self.not_found_by_kind.get(referent_kind(referent), self.not_found_below)


def referent_kind(referent: Referent) -> str:
    """The fields a referent names, joined: what its presence threshold is kept under."""
    return "+".join(referent.to_json())


def mirrored(referent: Referent) -> Referent:
    """The same referent in the left-right mirrored image ("leftmost" becomes "rightmost")."""
    return Referent(referent.color, referent.shape, _MIRROR.get(referent.where, referent.where), referent.size)


def map_peak(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel logits [B, H, W] → the mean probability of each map's :data:`PEAK_PIXELS` strongest pixels [B]."""
    return torch.sigmoid(logits).flatten(1).topk(PEAK_PIXELS, dim=1).values.mean(1)


@dataclass
class Finding:
    """One query on one image: what was read, and whether the image shows it."""

    reading: Reading
    status: str           # FOUND, UNKNOWN or NOT_FOUND
    peak: float | None      # the map's peak (None: the query was not read, so nothing was searched)
    presence: float | None  # the presence check's probability that the picture holds the referent
    marked: str | None = None  # what the presence check sees in the marked region ("a red triangle")

    @property
    def found(self) -> bool:
        return self.status == FOUND

    def why(self) -> str | None:
        """Why the guide does not guide, in words (None when it found the referent)."""
        if self.status == UNKNOWN:
            return f"the guide cannot read the query ({self.reading.why_unknown()})"
        if self.status == NOT_FOUND:
            return (f"the picture holds nothing the guide reads as {self.reading.referent.describe()} "
                    f"({_marked_words(self.marked)}; presence {self.presence:.2f})")
        return None

    def to_json(self) -> dict:
        return {"status": self.status, **self.reading.to_json(),
                "peak": None if self.peak is None else round(self.peak, 3),
                "presence": None if self.presence is None else round(self.presence, 3), "marked": self.marked,
                "why": self.why()}


def _marked_words(marked: str | None) -> str:
    if marked in (None, "no object"):
        return "what it marked is no object"
    return f"what it marked looks like {marked}"


class Guide:
    def __init__(self, reader: QueryReader, parser: ReferentParser, net: GuidanceNet,
                 thresholds: GuideThresholds | None = None, check: PresenceCheck | None = None):
        self.reader, self.parser, self.net, self.check = reader, parser, net, check
        self.thresholds = thresholds or GuideThresholds()

    @torch.no_grad()
    def readings(self, texts: list[str]) -> list[Reading]:
        texts = [normalise_query(t) for t in texts]
        return self.parser.read(texts, *self.reader.read(texts), self.thresholds)

    def referents(self, texts: list[str]) -> list[Referent]:
        return [r.referent for r in self.readings(texts)]

    @torch.no_grad()
    def logits(self, images: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, list[Referent]]:
        """Images [B, 3, 64, 64] in [0, 1] and one query each → per-pixel logits [B, 64, 64] and the
        referents read from the queries (whatever was read, known or not: what the map shows)."""
        read = self.referents(texts)
        return self.mark(images, read), read

    @torch.no_grad()
    def find(self, images: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, list[Finding]]:
        """Images [B, 3, 64, 64] and one query each → per-pixel logits [B, 64, 64] and each query's
        :class:`Finding`; an image whose query was not found (or not read) gets a flat map (logit
        :data:`NOTHING` everywhere: nothing important)."""
        readings = self.readings(texts)
        referents = [r.referent for r in readings]
        logits = self.mark(images, referents)
        peaks = map_peak(logits).tolist()
        held, marked = [None] * len(readings), [None] * len(readings)
        if self.check is not None:
            seen = self.check(images, torch.sigmoid(logits))
            held = self.check.agreement(seen, torch.tensor([r.indices() for r in referents])).tolist()
            marked = what_is_marked(seen)
        findings = []
        for reading, peak, p, seen in zip(readings, peaks, held, marked):
            limit = self.thresholds.not_found_limit(reading.referent)
            if not reading.known:
                findings.append(Finding(reading, UNKNOWN, None, None))
            elif limit is not None and p is not None and p < limit:
                findings.append(Finding(reading, NOT_FOUND, peak, p, seen))
            else:
                findings.append(Finding(reading, FOUND, peak, p, seen))
        flat = torch.tensor([not f.found for f in findings])
        return logits.masked_fill(flat[:, None, None], NOTHING), findings

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
