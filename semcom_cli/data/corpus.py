"""The sentence corpus for retrieval: the Lee news corpus, split by document, seeded.

The corpus ships inside an installable package: gensim's wheel carries the Lee corpus (Lee, Pincombe
& Welsh 2005: 300 + 50 short Australian news articles, one per line) as test data. semcom installs
that wheel with ``--no-deps`` and reads the two text files; gensim itself is never imported.

Documents, not sentences, are split, so no article feeds both training and testing:

- ``train`` documents (40 %): every document cut into windows of at most ``max_tokens`` LLM tokens,
  what the text codec and the adapter learn to send and repeat;
- the rest (60 %) give sentences of 5 to ``max_tokens`` tokens, shared out at random into the
  *global* base (50 %), the *local* histories of ``users`` users (30 %, the same number each) and
  *neither* (20 %): test messages that no base holds, the honest case.
"""

from __future__ import annotations

import importlib.util
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from semcom_cli.core.errors import SemcomError

__all__ = ["CORPUS_FILES", "CorpusSplit", "corpus_documents", "split_corpus", "split_sentences"]

CORPUS_FILES = ("lee_background.cor", "lee.cor")
CORPUS_NAME = "lee (gensim 4.4.0 test data)"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


def _data_folder() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise SemcomError("the sentence corpus is missing: pip install --no-deps gensim==4.4.0")
    return Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"


@lru_cache(maxsize=1)
def corpus_documents() -> tuple[str, ...]:
    """The corpus's documents, in file order (one article a line)."""
    folder = _data_folder()
    docs: list[str] = []
    for name in CORPUS_FILES:
        path = folder / name
        if not path.is_file():
            raise SemcomError(f"the gensim package has no {name}; reinstall it (pip install --no-deps gensim==4.4.0)")
        docs += [" ".join(line.split()) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                 if line.strip()]
    return tuple(docs)


def split_sentences(document: str) -> list[str]:
    """A document's sentences (split after . ! ? before a capital or a quote)."""
    return [s.strip() for s in _SENTENCE_END.split(document) if s.strip()]


@dataclass
class CorpusSplit:
    """The corpus shared out: training windows, the global base, each user's history, and neither."""

    train: list[str]
    global_base: list[str]
    local: list[list[str]]          # one history per user, oldest first
    neither: list[str]
    seed: int
    meta: dict = field(default_factory=dict)

    def tests(self) -> dict[str, list[tuple[int, str]]]:
        """Test messages by kind, each with the user who receives it: a global entry (to any user), a
        user's own local entry, a message in no base."""
        users = len(self.local)
        return {"global": [(i % users, s) for i, s in enumerate(self.global_base)],
                "local": [(u, s) for u, history in enumerate(self.local) for s in history],
                "neither": [(i % users, s) for i, s in enumerate(self.neither)]}


def _windows(words: list[str], count, max_tokens: int) -> list[str]:
    """Cut a document into consecutive windows of whole words, each at most ``max_tokens`` tokens."""
    out, current = [], []
    for word in words:
        if current and count(" ".join(current + [word])) > max_tokens:
            out.append(" ".join(current))
            current = []
        if count(word) <= max_tokens:
            current.append(word)
    if current:
        out.append(" ".join(current))
    return out


def split_corpus(tokenizer, max_tokens: int, users: int = 8, seed: int = 0) -> CorpusSplit:
    """Share the corpus out (module docstring) for a tokenizer and a sentence limit."""
    if users < 1:
        raise SemcomError(f"users must be at least 1 (got {users})")

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    docs = list(corpus_documents())
    rng = random.Random(seed)
    order = list(range(len(docs)))
    rng.shuffle(order)
    n_train = int(0.4 * len(docs))
    train = [w for i in sorted(order[:n_train]) for w in _windows(docs[i].split(), count, max_tokens)]
    sentences = [s for i in sorted(order[n_train:]) for s in split_sentences(docs[i]) if 5 <= count(s) <= max_tokens]
    sentences = sorted(set(sentences))
    rng.shuffle(sentences)
    n_global, n_local = int(0.5 * len(sentences)), int(0.3 * len(sentences)) // users * users
    local_pool = sentences[n_global:n_global + n_local]
    per_user = n_local // users
    local = [local_pool[u * per_user:(u + 1) * per_user] for u in range(users)]
    meta = {"corpus": CORPUS_NAME, "seed": seed, "users": users, "max_tokens": max_tokens,
            "documents": len(docs), "train_documents": n_train}
    return CorpusSplit(train, sentences[:n_global], local, sentences[n_global + n_local:], seed, meta)
