"""From the LLM's reading of a query to what it refers to: colour, shape, where, size.

However a query is worded, in these scenes it names its object by some of four fields
(:class:`semcom_cli.data.scenes.Referent`). The parser reads SmolLM2's hidden states of the query's
tokens (:mod:`.query`) and, for each field, pools the tokens that speak of it (attention with one
learnt query vector per field) and picks the field's value, or "not said". The image side
(:mod:`.model`) then searches the picture for the referent, never for the wording: a new phrasing
only has to be read right by the LLM and this small head, and what the parser decided can be shown
to the user (``semcom guide`` prints it).

Why not feed the LLM's states straight into the image network: trained that way, the network
learnt the training phrasings (IoU 0.69 on training wordings, 0.45 on new ones, colour queries
0.97 → 0.47); through this bottleneck the wording is the parser's problem alone, and the parser
trains in seconds on cached states.
"""

from __future__ import annotations

import random

import torch
from torch import nn
from torch.nn import functional as F

from semcom_cli.config.base import BatchSize, LearningRate, Seed, StageSettings, Steps, settings_from
from semcom_cli.data.scenes import REFERENT_VALUES, Referent
from semcom_cli.training.trainer import Optimisation, Trainer

__all__ = ["ReferentParser", "train_parser", "parse_accuracy", "FIELDS"]

FIELDS = tuple(REFERENT_VALUES)


class ReferentParser(nn.Module):
    def __init__(self, query_dim: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        # the LLM's states run to norms of hundreds with a few outlier dimensions: normalised first
        self.norm = nn.LayerNorm(query_dim)
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(query_dim, hidden), nn.GELU())
        self.scores = nn.Linear(hidden, len(FIELDS))  # each field's attention over the tokens
        self.heads = nn.ModuleList(nn.Linear(hidden, len(REFERENT_VALUES[f])) for f in FIELDS)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """States [B, L, D], mask [B, L] → one logit tensor [B, values] per field."""
        h = self.project(self.norm(states))
        scores = self.scores(h).masked_fill(~mask[..., None], float("-inf"))  # [B, L, fields]
        weights = scores.softmax(dim=1)
        pooled = torch.einsum("blf,bld->bfd", weights, h)
        return [head(pooled[:, k]) for k, head in enumerate(self.heads)]

    @torch.no_grad()
    def parse(self, states: torch.Tensor, mask: torch.Tensor) -> list[Referent]:
        logits = self.forward(states, mask)
        picks = torch.stack([lg.argmax(-1) for lg in logits], dim=1)
        return [Referent.from_indices(row.tolist()) for row in picks]


class ParserTrain(StageSettings):
    steps: Steps = 600
    batch_size: BatchSize = 64
    lr: LearningRate = 2e-3
    seed: Seed = 0


def train_parser(reader, texts: list[str], referents: list[Referent], steps: int = 600, batch_size: int = 64,
                 lr: float = 2e-3, seed: int = 0) -> ReferentParser:
    """Fit the parser to (query text, referent) pairs; the LLM's states of each text are cached by
    the reader, so a step costs the head alone (seconds in all: no partial runs)."""
    cfg = settings_from(ParserTrain, {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed},
                        "parser settings")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    parser = ReferentParser(reader.dim)
    targets = torch.tensor([r.indices() for r in referents])
    trainer = Trainer(parser.parameters(), cfg, rng, None, optimisation=Optimisation("constant", weight_decay=1e-2),
                      shared_batches=False, channel_generators=False)
    reader(list(dict.fromkeys(texts)))  # every text read once, up front
    parser.train()
    for _ in range(steps):
        rows = [rng.randrange(len(texts)) for _ in range(batch_size)]
        states, mask = reader([texts[i] for i in rows])
        logits = parser(states, mask)
        trainer.step(sum(F.cross_entropy(lg, targets[rows, k]) for k, lg in enumerate(logits)))
    parser.eval()
    return parser


@torch.no_grad()
def parse_accuracy(parser: ReferentParser, reader, texts: list[str], referents: list[Referent]) -> float:
    """Share of queries whose every field is read right."""
    right = 0
    for start in range(0, len(texts), 128):
        chunk = texts[start : start + 128]
        got = parser.parse(*reader(chunk))
        right += sum(g == r for g, r in zip(got, referents[start : start + 128]))
    return right / max(1, len(texts))
