"""Retrieval at the receiver: look the received packet up in the bases, then read it with what was found.

Two ways to look a packet up, both FAISS inner products on L2-normalised vectors:

- ``symbols`` (the default): the packet's own equalised symbols against every entry *as this
  checkpoint's transmitter would send it* (:class:`SymbolIndex`, built from a base's sentences when a
  receiver loads it). With equal power per symbol, the largest inner product is the smallest
  distance: the maximum-likelihood entry. Only entries of the packet's token count can have sent it,
  so each length has its own index. The cosine a sent entry reaches under noise is known from the
  effective SNR (``expected_match``); an entry scoring under ``gate`` of it is dropped: a message in
  no base then retrieves nothing, so retrieval cannot mislead the LLM where it has nothing to give.
- ``reading``: the LLM's first reading of the packet (no base), embedded with MiniLM and looked up in
  the bases' own indexes. Weak where the channel is bad (the reading is), reported for comparison.

The ``k`` best entries of the global base and of the receiving user's own local base, merged, are
shown to the LLM after the instruction (:func:`semcom_cli.tasks.template.with_context`) and it reads
the packet again; the retrieval stage taught it to copy an entry that matches what arrived and to
ignore one that does not. A receiver only ever holds its own user's local base.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from semcom_cli.channel import equalize_symbols
from semcom_cli.core.errors import SemcomError
from semcom_cli.models.embedding import embed_texts
from semcom_cli.retrieval.kb import KnowledgeBase, _faiss

__all__ = ["Retriever", "Hit", "SymbolIndex", "Packets", "receive_packets", "read_with_retrieval", "reread",
           "expected_match", "ROUTES"]

ROUTES = ("symbols", "reading")
DEFAULT_GATE = 0.75


@dataclass(frozen=True)
class Hit:
    score: float   # cosine (reading), or cosine over its expected value for the sent entry (symbols)
    text: str
    base: str      # "global" or "local"


@dataclass
class Packets:
    """Received text packets as the receiver holds them: the decoder's tokens for the LLM, and the
    equalised symbols [B, T, m, 2] with their effective SNR (dB, [B] or [B, T]) for the symbol route."""

    tokens: torch.Tensor
    mask: torch.Tensor
    x_hat: torch.Tensor
    snr_db: torch.Tensor


def receive_packets(model, y: torch.Tensor, h: torch.Tensor, snr_db, mask: torch.Tensor) -> Packets:
    """Received text packets [B, T, m, 2] → what the receiver holds (as ``SemcomModel.receive`` decodes)."""

    y, h, mask = y.to(model.device), h.to(model.device), mask.to(model.device)
    x_hat, snr = equalize_symbols(y, h, snr_db)
    return Packets(model.decode(x_hat, snr, mask, "text"), mask, x_hat, snr)


def expected_match(snr_db: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The cosine between a sent code and its MMSE-equalised reception, per packet [B]: the signal's
    share of the received power, sqrt(snr / (1 + snr)), averaged over the packet's tokens."""
    snr = 10.0 ** (snr_db.float() / 10.0)
    share = snr / (1.0 + snr)
    if share.dim() == 1:
        return share.sqrt()
    m = mask.to(share.dtype)
    return ((share * m).sum(1) / m.sum(1).clamp_min(1)).sqrt()


class SymbolIndex:
    """A base's sentences as a checkpoint's transmitter sends them: per token count, a FAISS
    inner-product index of their L2-normalised symbol vectors."""

    def __init__(self, model, kb: KnowledgeBase, batch_size: int = 256):
        limit = model.preset.data.max_text_tokens
        self.by_length: dict[int, tuple[object, list[str]]] = {}
        groups: dict[int, tuple[list[np.ndarray], list[str]]] = {}
        for start in range(0, len(kb.entries), batch_size):
            batch = kb.entries[start:start + batch_size]
            ids, mask = model.text_token_ids(batch)
            keep = [i for i in range(len(batch)) if int(ids.shape[1]) and _fits(model, batch[i], limit)]
            if not keep:
                continue
            with torch.no_grad():
                tokens = model.get_llm().embed(ids[keep])
                codes = model.encode(tokens, mask[keep], "text")
            for row, i in enumerate(keep):
                n = int(mask[i].sum())
                vector = codes[row, :n].reshape(-1).float().cpu().numpy()
                vectors, texts = groups.setdefault(n, ([], []))
                vectors.append(vector / max(np.linalg.norm(vector), 1e-12))
                texts.append(batch[i])
        faiss = _faiss()
        for n, (vectors, texts) in groups.items():
            index = faiss.IndexFlatIP(len(vectors[0]))
            index.add(np.ascontiguousarray(np.stack(vectors), dtype=np.float32))
            self.by_length[n] = (index, texts)

    def search(self, x_hat: torch.Tensor, mask: torch.Tensor, k: int) -> list[list[tuple[float, str]]]:
        """The ``k`` entries of each packet's token count with the largest cosine to its symbols."""
        out = []
        for row in range(x_hat.shape[0]):
            n = int(mask[row].sum())
            if n not in self.by_length:
                out.append([])
                continue
            index, texts = self.by_length[n]
            q = x_hat[row, :n].detach().reshape(1, -1).float().cpu().numpy()
            q = q / max(np.linalg.norm(q), 1e-12)
            scores, ids = index.search(np.ascontiguousarray(q, dtype=np.float32), min(k, len(texts)))
            out.append([(float(s), texts[i]) for s, i in zip(scores[0], ids[0]) if i >= 0])
        return out


def _fits(model, text: str, limit: int) -> bool:
    """An entry the transmitter could send (at most ``limit`` tokens); longer ones never arrive whole."""
    return 0 < len(model.get_llm().tokenizer(text, add_special_tokens=False)["input_ids"]) <= limit


class Retriever:
    """The bases one receiver consults: the shared global base and its own user's local base."""

    def __init__(self, global_kb: KnowledgeBase | None = None, local_kb: KnowledgeBase | None = None, k: int = 3,
                 route: str = "symbols", gate: float = DEFAULT_GATE):
        if global_kb is None and local_kb is None:
            raise SemcomError("retrieval needs a knowledge base (--kb and/or --kb-local)")
        if global_kb is not None and global_kb.kind != "global":
            raise SemcomError(f"{global_kb.name}: a local base (user {global_kb.user}); give it with --kb-local")
        if local_kb is not None and local_kb.kind != "local":
            raise SemcomError(f"{local_kb.name}: a global base; give it with --kb")
        self.check(k, route, gate)
        self.global_kb, self.local_kb, self.k, self.route, self.gate = global_kb, local_kb, k, route, gate
        self._symbols: dict[int, tuple[object, SymbolIndex]] = {}

    @staticmethod
    def check(k: int, route: str, gate: float) -> None:
        """Refuse impossible settings in one line."""
        if not 1 <= k <= 16:
            raise SemcomError(f"--k must be in [1, 16] (got {k})")
        if route not in ROUTES:
            raise SemcomError(f"unknown retrieval route '{route}' (choose from: {', '.join(ROUTES)})")
        if not (0.0 <= gate <= 1.5):  # also refuses NaN
            raise SemcomError(f"--gate must be in [0, 1.5] (got {gate})")

    def _bases(self):
        return [(name, kb) for name, kb in (("local", self.local_kb), ("global", self.global_kb)) if kb is not None]

    def symbol_index(self, model, kb: KnowledgeBase) -> SymbolIndex:
        """The base's symbol index for this model (built once, rebuilt after the base grows)."""
        key = id(kb)
        cached = self._symbols.get(key)
        if cached is None or cached[0] != (model.hash, len(kb), kb.entries[-1:]):
            cached = ((model.hash, len(kb), kb.entries[-1:]), SymbolIndex(model, kb))
            self._symbols[key] = cached
        return cached[1]

    def retrieve(self, model, packets: Packets, readings: list[str] | None = None) -> list[list[Hit]]:
        """The ``k`` best entries for each packet, from both bases, best first (a text found in both
        counts once). The reading route needs the first ``readings``."""
        merged: list[dict[str, Hit]] = [{} for _ in range(packets.tokens.shape[0])]
        if self.route == "reading":
            if readings is None:
                raise SemcomError("the reading route looks up the LLM's first reading: give the readings")
            vectors = embed_texts([r if r.strip() else "." for r in readings]).numpy()
            found = [(name, kb.search(vectors, self.k)) for name, kb in self._bases()]
            scale = torch.ones(len(readings))
        else:
            found = [(name, self.symbol_index(model, kb).search(packets.x_hat, packets.mask, self.k))
                     for name, kb in self._bases()]
            scale = expected_match(packets.snr_db, packets.mask).cpu()
        for name, rows in found:
            for b, (row, hits) in enumerate(zip(merged, rows)):
                for score, text in hits:
                    relative = score / float(scale[b])
                    if self.route == "symbols" and relative < self.gate:
                        continue
                    if text not in row or row[text].score < relative:
                        row[text] = Hit(relative, text, name)
        return [sorted(row.values(), key=lambda h: -h.score)[: self.k] for row in merged]


@torch.no_grad()
def read_with_retrieval(model, tasks: list[str], instructions: list[str | None], packets: Packets,
                        retriever: Retriever, first: list[str] | None = None
                        ) -> tuple[list[str], list[str], list[list[Hit]]]:
    """(answers with retrieval, first readings, hits) for a batch of received text packets (``first``:
    the readings without retrieval, when already made)."""
    if first is None:
        first = model.answer(tasks, instructions, packets.tokens, packets.mask)
    hits = retriever.retrieve(model, packets, first)
    return reread(model, tasks, instructions, packets, hits, first), first, hits


def reread(model, tasks: list[str], instructions: list[str | None], packets: Packets, hits: list[list[Hit]],
           first: list[str]) -> list[str]:
    """The packets read again with their retrieved entries; where nothing was retrieved, the first reading."""
    contexts = [[h.text for h in row] for row in hits]
    answers = list(first)
    rows = [b for b, c in enumerate(contexts) if c]
    if rows:
        sel = torch.tensor(rows)
        again = model.answer([tasks[b] for b in rows], [instructions[b] for b in rows], packets.tokens[sel],
                             packets.mask[sel], contexts=[contexts[b] for b in rows])
        for b, a in zip(rows, again):
            answers[b] = a
    return answers
