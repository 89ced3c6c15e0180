"""Vocabulary pruning: keep the tokens semcom's tasks use and the commonest pieces of English.

SmolLM2's 49,152-token embedding (tied to its output layer) is a fifth of its weights, and the
receiver's tasks answer from a small vocabulary. The kept set is

* every token the task set's texts use (templates, instructions, easy-vqa's questions and answers
  in all their wordings, the captions),
* the first ``common`` ids of the byte-level BPE: merges are numbered in the order they were learnt,
  most frequent first, so these are the commonest words and word pieces (what a reworded question
  most likely uses),
* the 256 single-byte tokens and the special tokens, so that any text can still be written.

``PrunedTokenizer`` wraps the original tokenizer: a token outside the kept set is re-spelt with the
longest kept pieces of its bytes (in the worst case one token per byte), so an unseen word still
reaches the model and still decodes; the model's ids are positions in the kept list.
"""

from __future__ import annotations

from functools import lru_cache

import torch

__all__ = ["kept_token_ids", "PrunedTokenizer"]


def _byte_tokens(tokenizer) -> list[int]:
    from tokenizers.pre_tokenizers import ByteLevel  # heavy: tokenizers, when a vocabulary is cut

    ids = [tokenizer.convert_tokens_to_ids(ch) for ch in ByteLevel.alphabet()]
    return [i for i in ids if i is not None and i != tokenizer.unk_token_id]


def kept_token_ids(tokenizer, texts: list[str], common: int) -> list[int]:
    """The sorted ids the pruned vocabulary keeps (see the module's description)."""
    kept = set(range(min(common, len(tokenizer))))
    kept.update(tokenizer.all_special_ids)
    kept.update(_byte_tokens(tokenizer))
    for text in texts:
        kept.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return sorted(kept)


class PrunedTokenizer:
    """The original tokenizer seen through the kept vocabulary: ids are positions in ``kept``."""

    def __init__(self, base, kept: list[int]):
        self.base = base
        self.kept = list(kept)
        self._new = {old: new for new, old in enumerate(self.kept)}
        self._pieces = {base.convert_ids_to_tokens(old): new for new, old in enumerate(self.kept)}
        self._longest = max(len(p) for p in self._pieces)
        for field in ("bos", "eos", "pad", "unk"):
            if getattr(base, f"{field}_token_id") not in self._new and getattr(base, f"{field}_token") is not None:
                raise ValueError(f"the kept vocabulary lacks the {field} token")

    def __len__(self) -> int:
        return len(self.kept)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = []
        for old in self.base(text, add_special_tokens=add_special_tokens)["input_ids"]:
            new = self._new.get(old)
            ids.extend([new] if new is not None else self._respell(old))
        return ids

    @lru_cache(maxsize=65536)
    def _respell(self, old: int) -> tuple[int, ...]:
        """A token outside the kept set as the longest kept pieces of its (byte-level) spelling."""
        piece, ids = self.base.convert_ids_to_tokens(old), []
        while piece:
            for end in range(min(len(piece), self._longest), 0, -1):
                new = self._pieces.get(piece[:end])
                if new is not None:
                    ids.append(new)
                    piece = piece[end:]
                    break
            else:  # unreachable while every byte token is kept
                raise ValueError(f"cannot spell token {old} with the kept vocabulary")
        return tuple(ids)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.base.decode([self.kept[i] for i in ids], skip_special_tokens=skip_special_tokens)

    def convert_tokens_to_ids(self, token: str):
        old = self.base.convert_tokens_to_ids(token)
        return self._new.get(old, self.unk_token_id)

    def _mapped(self, old):
        return None if old is None else self._new.get(old)

    @property
    def bos_token_id(self):
        return self._mapped(self.base.bos_token_id)

    @property
    def eos_token_id(self):
        return self._mapped(self.base.eos_token_id)

    @property
    def pad_token_id(self):
        return self._mapped(self.base.pad_token_id)

    @property
    def unk_token_id(self):
        return self._mapped(self.base.unk_token_id)

    @property
    def eos_token(self):
        return self.base.eos_token

    @property
    def pad_token(self):
        return self.base.pad_token
