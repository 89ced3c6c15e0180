"""The user's query read by the LLM: its hidden states, which the guidance network attends to.

The query is put in the instruction template under the ``guide`` tag, and SmolLM2 (frozen) reads
it; the states of the query's own tokens at ``layer`` are what the guidance network looks at.
A middle-to-late layer, not the last: the last one is shaped for the next word, the middle ones
for what the words mean. The states of a text never change, so they are computed once per text.
"""

from __future__ import annotations

import torch

from semcom_cli.tasks.template import fill_template

__all__ = ["QueryReader"]


class QueryReader:
    def __init__(self, llm, layer: int = 12, max_tokens: int = 24):
        self.llm = llm
        self.layer = layer
        self.max_tokens = max_tokens
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def dim(self) -> int:
        return self.llm.embed_dim

    @torch.no_grad()
    def _read(self, texts: list[str]) -> None:
        tok = self.llm.tokenizer
        for text in texts:
            before, after = fill_template("guide", " ".join(text.split()))
            prefix = tok(before, add_special_tokens=False)["input_ids"]
            query = tok(after, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prefix + query], device=self.llm.device)
            out = self.llm.model(input_ids=ids, output_hidden_states=True)
            states = out.hidden_states[self.layer][0, len(prefix):]  # the query's tokens (and the turn's end)
            self._cache[text] = states[: self.max_tokens].float().cpu()

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Query texts → (states [B, L, D], mask [B, L]), padded to the longest."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._read(missing)
        rows = [self._cache[t] for t in texts]
        length = max(r.shape[0] for r in rows)
        states = torch.zeros(len(rows), length, rows[0].shape[1])
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            states[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = True
        return states, mask
