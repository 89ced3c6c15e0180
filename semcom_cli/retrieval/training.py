"""What the retrieval-aware stages send: sentences from the corpus, with the entries a receiver would retrieve.

``TextPool`` draws training sentences: the corpus's training windows (a ``corpus_share``) or easy-vqa's
questions. For the retrieval stage it also draws each sentence's *context*, as a knowledge base would
return it: its own text among its nearest neighbours (MiniLM cosine, within the pool), neighbours only,
or nothing, so the adapter learns both to copy a matching entry and to ignore entries that do not match.
"""

from __future__ import annotations

import random
from functools import lru_cache

import torch

from semcom_cli.data.corpus import split_corpus
from semcom_cli.models.embedding import embed_texts

__all__ = ["TextPool"]


class TextPool:
    """Training sentences: ``corpus`` (a share ``corpus_share`` of the draws) and ``questions``."""

    def __init__(self, corpus: list[str], questions: list[str], corpus_share: float):
        self.corpus, self.questions, self.corpus_share = list(corpus), list(questions), corpus_share
        self._neighbours: torch.Tensor | None = None

    @classmethod
    def for_model(cls, tokenizer, max_tokens: int, questions: list[str], corpus_share: float) -> "TextPool":
        corpus = split_corpus(tokenizer, max_tokens).train if corpus_share > 0 else []
        return cls(corpus, questions, corpus_share)

    @property
    def texts(self) -> list[str]:
        return self.corpus + self.questions

    def draw_index(self, rng: random.Random) -> int:
        """An index into ``texts``: a corpus window with probability ``corpus_share``, else a question."""
        if self.corpus and rng.random() < self.corpus_share:
            return rng.randrange(len(self.corpus))
        return len(self.corpus) + rng.randrange(len(self.questions))

    def draw(self, rng: random.Random) -> str:
        return self.texts[self.draw_index(rng)]

    def neighbours(self, k: int) -> torch.Tensor:
        """Each text's ``k`` nearest other texts [N, k] (MiniLM cosine), computed once."""
        if self._neighbours is None or self._neighbours.shape[1] < k:
            self._neighbours = _nearest(tuple(self.texts), k)
        return self._neighbours[:, :k]

    def draw_with_context(self, rng: random.Random, k: int, right: float, wrong: float) -> tuple[str, list[str]]:
        """A sentence and the entries shown with it: its own among k − 1 neighbours (``right``), k
        neighbours (``wrong``), or none (the rest)."""
        index = self.draw_index(rng)
        near = [self.texts[j] for j in self.neighbours(k)[index].tolist()]
        roll = rng.random()
        if roll < right:
            context = near[: k - 1] + [self.texts[index]]
            rng.shuffle(context)
        elif roll < right + wrong:
            context = near
        else:
            context = []
        return self.texts[index], context


@lru_cache(maxsize=4)
def _nearest(texts: tuple[str, ...], k: int) -> torch.Tensor:
    """Each text's ``k`` nearest other texts [N, k] by MiniLM cosine (kept: every stage run and test
    on the same pool asks again)."""

    vectors = embed_texts(list(texts))
    scores = vectors @ vectors.T
    scores.fill_diagonal_(-2.0)  # never a text's own neighbour
    return scores.topk(min(k, len(texts) - 1), dim=1).indices
