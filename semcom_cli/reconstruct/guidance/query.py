"""The user's query read by the LLM: its hidden states, which the parser attends to.

The query is put in the instruction template under the ``guide`` tag, and SmolLM2 (frozen) reads
it; the states of the query's own tokens at ``layer`` are what the parser looks at. A
middle-to-late layer, not the last: the last one is shaped for the next word, the middle ones for
what the words mean. The states of a text never change, so they are computed once per text.

Each token also carries the word of the query it belongs to (-1: the template's end of turn), so
the parser can say which of the user's words it did not use.
"""

from __future__ import annotations

import re

import torch

from semcom_cli.tasks.template import fill_template

__all__ = ["QueryReader", "normalise_query", "query_words"]

READ_BATCH = 32  # texts read per LLM pass (right-padded: a causal model's real tokens never see the pads)


class _Enough(Exception):
    """Raised by the hook that has the states it wanted: the layers above are never run."""


def normalise_query(text: str) -> str:
    """The query as the guide reads it: runs of white space made one space."""
    return " ".join(text.split())


def query_words(text: str) -> list[tuple[int, int]]:
    """The (start, end) character span of each word of a normalised query."""
    return [m.span() for m in re.finditer(r"\S+", text)]


class QueryReader:
    def __init__(self, llm, layer: int = 12, max_tokens: int = 24):
        self.llm = llm
        self.layer = layer
        self.max_tokens = max_tokens
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def dim(self) -> int:
        return self.llm.embed_dim

    def _tokens(self, text: str) -> tuple[list[int], list[int], list[int]]:
        """(template prefix ids, query-and-end ids, each of the latter's word index or -1)."""
        tok = self.llm.tokenizer
        before, after = fill_template("guide", text)
        prefix = tok(before, add_special_tokens=False)["input_ids"]
        start = after.index(text)  # the template puts the query after a line break
        enc = tok(after, add_special_tokens=False, return_offsets_mapping=True)
        spans = query_words(text)
        words = []
        for a, b in enc["offset_mapping"]:
            a, b = a - start, b - start
            hit = [i for i, (s, e) in enumerate(spans) if a < e and b > s]
            words.append(hit[0] if hit else -1)
        return prefix, enc["input_ids"], words

    @torch.no_grad()
    def _read(self, texts: list[str]) -> None:
        device = self.llm.device
        pad = self.llm.tokenizer.pad_token_id
        pad = 0 if pad is None else pad
        for begin in range(0, len(texts), READ_BATCH):
            chunk = texts[begin : begin + READ_BATCH]
            rows = [self._tokens(t) for t in chunk]
            ids = [p + q for p, q, _ in rows]
            longest = max(len(i) for i in ids)
            batch = torch.full((len(ids), longest), pad, dtype=torch.long)
            mask = torch.zeros(len(ids), longest, dtype=torch.long)
            for r, i in enumerate(ids):
                batch[r, : len(i)] = torch.tensor(i)
                mask[r, : len(i)] = 1
            hidden = self._states_at_layer(batch.to(device), mask.to(device))
            for r, (text, (prefix, query, words)) in enumerate(zip(chunk, rows)):
                states = hidden[r, len(prefix) : len(prefix) + len(query)]  # the query's tokens (and the turn's end)
                self._cache[text] = (states[: self.max_tokens].float().cpu(),
                                     torch.tensor(words[: self.max_tokens], dtype=torch.long))

    def _states_at_layer(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The states entering layer ``layer`` (= ``hidden_states[layer]``), the LLM stopped there: the
        other 30 − ``layer`` layers would cost more than half the reading for nothing."""
        got = {}

        def grab(module, args, kwargs):
            got["states"] = args[0] if args else kwargs["hidden_states"]
            raise _Enough

        handle = self.llm.model.get_decoder().layers[self.layer].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.llm.model(input_ids=ids, attention_mask=mask)
        except _Enough:
            pass
        finally:
            handle.remove()
        return got["states"]

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Query texts → (states [B, L, D], mask [B, L]), padded to the longest."""
        states, mask, _ = self.read(texts)
        return states, mask

    def read(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query texts → (states [B, L, D], mask [B, L], word index of each token [B, L]: -1 for
        the template's end of turn and for padding)."""
        texts = [normalise_query(t) for t in texts]
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._read(missing)
        rows = [self._cache[t] for t in texts]
        length = max(r[0].shape[0] for r in rows)
        states = torch.zeros(len(rows), length, rows[0][0].shape[1])
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        words = torch.full((len(rows), length), -1, dtype=torch.long)
        for i, (s, w) in enumerate(rows):
            states[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
            words[i, : w.shape[0]] = w
        return states, mask, words
