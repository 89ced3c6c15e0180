"""The retrieval sweep: text messages of three kinds, without and with knowledge bases.

Test messages come from the sentence corpus's held-out documents (:mod:`semcom_cli.data.corpus`):
``global`` ones are in the global base, ``local`` ones only in their user's local base, ``neither``
ones in no base (the honest case: retrieval must not hurt). Each message goes to one user, whose
receiver consults the global base and that user's own local base only.

Per channel and SNR, every message is sent once through the checkpoint's codec and channel (seeded,
so every point sees the same draws); ``semantic`` is the LLM's reading of it without any base,
``rag`` reads the same received packet again with the entries its symbols retrieved and
``rag-reading`` with the entries the first reading retrieved (:mod:`semcom_cli.retrieval.retriever`).
Reported per kind: exact match, BLEU, MiniLM similarity, and for the retrieval methods the recall@k
of the sent sentence among the entries shown to the LLM.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field

import torch

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.data.corpus import split_corpus
from semcom_cli.evaluation.points import sample_items, task_metrics
from semcom_cli.models.codebook import CAPTIONS
from semcom_cli.models.embedding import embed_texts
from semcom_cli.retrieval.kb import KnowledgeBase
from semcom_cli.retrieval.retriever import DEFAULT_GATE, Retriever, receive_packets, reread
from semcom_cli.retrieval.scenes import DEFAULT_TRUST, caption_prior
from semcom_cli.tasks import get_task
from semcom_cli.tasks.shapes import caption_text

__all__ = ["RagSettings", "KINDS", "corpus_bases", "evaluate_rag"]

KINDS = ("global", "local", "neither")
# the methods a retrieval sweep measures
RAG_METHODS: Registry[str] = Registry("retrieval method")
RAG_METHODS.register("semantic", "the receiver alone, no knowledge base")
RAG_METHODS.register("rag", "read, retrieve by the received symbols, read again")
RAG_METHODS.register("rag-reading", "read, retrieve by the first reading's text, read again")
ROUTE_OF = {"rag": "symbols", "rag-reading": "reading"}


@dataclass
class RagSettings:
    snrs: list[float] = field(default_factory=lambda: [-5.0, 0.0, 10.0])
    channels: list[str] = field(default_factory=lambda: ["awgn"])
    methods: list[str] = field(default_factory=lambda: ["semantic", "rag"])
    k: int = 3
    gate: float = DEFAULT_GATE
    limit: int | None = 100   # messages per kind (None: all)
    users: int = 8
    seed: int = 0
    batch_size: int = 32

    def check(self) -> "RagSettings":
        unknown = [m for m in self.methods if m not in RAG_METHODS]
        if unknown:
            raise SemcomError(f"method '{unknown[0]}' is not measured with retrieval (choose from: "
                              f"{', '.join(RAG_METHODS)})")
        if self.limit is not None and self.limit < 1:
            raise SemcomError(f"--limit must be positive (got {self.limit})")
        if not 1 <= self.users <= 64:
            raise SemcomError(f"--users must be in [1, 64] (got {self.users})")
        if not 1 <= self.k <= 16:
            raise SemcomError(f"--k must be in [1, 16] (got {self.k})")
        return self


def corpus_bases(split) -> tuple[KnowledgeBase, list[KnowledgeBase]]:
    """The split's global base and one local base per user (each capped at its history's length)."""
    texts = split.global_base + [s for history in split.local for s in history]
    vectors = embed_texts(texts).numpy()
    global_kb = KnowledgeBase("global")
    global_kb.add(split.global_base, vectors[: len(split.global_base)])
    locals_, start = [], len(split.global_base)
    for user, history in enumerate(split.local):
        kb = KnowledgeBase("local", user=f"user{user}", cap=max(len(history), 1))
        kb.add(history, vectors[start:start + len(history)])
        locals_.append(kb)
        start += len(history)
    return global_kb, locals_


def _messages(split, limit: int | None, seed: int) -> dict[str, list[tuple[int, str]]]:
    tests = split.tests()
    rng = random.Random(seed)
    return {kind: (sorted(rng.sample(items, limit)) if limit is not None and limit < len(items) else items)
            for kind, items in tests.items()}


@torch.no_grad()
def evaluate_rag(model, settings: RagSettings, on_progress=None) -> dict:
    """The sweep's JSON record: settings, the corpus split's description and one point per
    (method, kind, channel, SNR)."""
    settings.check()
    model.check_task(get_task("text"))
    llm = model.get_llm()
    split = split_corpus(llm.tokenizer, model.preset.data.max_text_tokens, settings.users)
    messages = _messages(split, settings.limit, settings.seed)
    global_kb, local_kbs = corpus_bases(split)
    routes = [m for m in settings.methods if m in ROUTE_OF]
    retrievers = {m: [Retriever(global_kb, kb, settings.k, ROUTE_OF[m], settings.gate) for kb in local_kbs]
                  for m in routes}
    points, started = [], time.time()
    total = len(settings.channels) * len(settings.snrs) * sum(len(v) for v in messages.values())
    done = 0
    for channel_name in settings.channels:
        channel = make_channel(channel_name, model.preset.channel.model_dump(), model.device)
        for snr in settings.snrs:
            for kind in KINDS:
                items = messages[kind]
                seed_channel(settings.seed)  # the same draws for every point: paired comparisons
                got = {m: [""] * len(items) for m in RAG_METHODS}
                found = {m: [0.0] * len(items) for m in routes}
                for start in range(0, len(items), settings.batch_size):
                    rows = list(range(start, min(start + settings.batch_size, len(items))))
                    sentences = [items[i][1] for i in rows]
                    tokens, mask = model.text_tokens(sentences)
                    y, h = channel.send(model.encode(tokens, mask, "text"), snr)
                    packets = receive_packets(model, y, h, snr, mask)
                    n = len(rows)
                    first = model.answer(["text"] * n, [None] * n, packets.tokens, packets.mask)
                    for j, f in enumerate(first):
                        got["semantic"][rows[j]] = f
                    users = [items[i][0] for i in rows]
                    for method in routes:
                        # each user's receiver looks up its own local base only; one LLM batch reads them all
                        hits: list = [None] * n
                        for user in sorted(set(users)):
                            js = [j for j in range(n) if users[j] == user]
                            mine = type(packets)(packets.tokens[js], packets.mask[js], packets.x_hat[js],
                                                 packets.snr_db[js])
                            for j, row in zip(js, retrievers[method][user].retrieve(model, mine,
                                                                                   [first[j] for j in js])):
                                hits[j] = row
                        answers = reread(model, ["text"] * n, [None] * n, packets, hits, first)
                        for j, (a, row) in enumerate(zip(answers, hits)):
                            got[method][rows[j]] = a
                            sent = " ".join(sentences[j].split())
                            found[method][rows[j]] = float(any(hit.text == sent for hit in row))
                    done += len(rows)
                    if on_progress:
                        on_progress(done, total)
                references = [s for _, s in items]
                for method in settings.methods:
                    record = {"method": method, "task": "text", "kind": kind, "channel": channel_name,
                              "snr_db": snr, "n": len(items),
                              "metrics": task_metrics("text", got[method], references, settings.seed),
                              "examples": [{"reference": r, "prediction": p}
                                           for r, p in list(zip(references, got[method]))[:3]]}
                    if method in found:
                        record["metrics"][f"recall@{settings.k}"] = {"value": sum(found[method]) / len(items),
                                                                     "n": len(items)}
                    points.append(record)
    return {"settings": asdict(settings), "corpus": split.meta | {"global": len(split.global_base),
                                                                   "local_per_user": len(split.local[0]),
                                                                   "neither": len(split.neither)},
            "checkpoint": model.name, "checkpoint_hash": model.hash, "seconds": round(time.time() - started, 1),
            "points": points}


@torch.no_grad()
def evaluate_vqa_local(model, data, snrs: list[float], channels: list[str], recent: int = 8, limit: int = 200,
                       seed: int = 0, trust: float | None = None, batch_size: int = 64) -> dict:
    """VQA with a local base of the user's ``recent`` scenes (their captions) as a prior on the caption
    codebook (:mod:`semcom_cli.retrieval.scenes`), against the same packets read without it. Kind
    ``local``: the scene is one of the recent ones; ``neither``: it is not (its caption is absent)."""

    trust = DEFAULT_TRUST if trust is None else trust
    if not 1 <= recent <= 64:
        raise SemcomError(f"recent scenes must be in [1, 64] (got {recent})")
    items = [it for it in sample_items(data, "vqa", None, seed) if it[0] in data.captions]
    rng = random.Random(seed)
    items = rng.sample(items, min(limit, len(items)))
    priors = {}
    for kind in ("local", "neither"):
        rows = []
        for image_id, _, _ in items:
            own = tuple(data.captions[image_id])
            others = [c for c in CAPTIONS if c != own]
            history = [rng.choice(others) for _ in range(recent - 1 if kind == "local" else recent)]
            if kind == "local":
                history.insert(rng.randrange(recent), own)
            rows.append(caption_prior([caption_text(*c) for c in history], trust))
        priors[kind] = torch.stack(rows)
    points = []
    for channel_name in channels:
        channel = make_channel(channel_name, model.preset.channel.model_dump(), model.device)
        for snr in snrs:
            got = {"semantic": [], "local": [], "neither": []}
            seed_channel(seed)
            for start in range(0, len(items), batch_size):
                chunk = items[start:start + batch_size]
                tokens, mask = model.image_tokens(data.batch_images([it[0] for it in chunk]))
                y, h = channel.send(model.encode(tokens, mask, "image"), snr)
                questions = [it[1] for it in chunk]
                for name, prior in (("semantic", None), ("local", priors["local"]), ("neither", priors["neither"])):
                    received = model.receive(y, h, snr, mask, "image",
                                             caption_prior=None if prior is None else prior[start:start + len(chunk)])
                    got[name] += model.answer(["vqa"] * len(chunk), questions, received, mask)
            references = [it[2] for it in items]
            base = task_metrics("vqa", got["semantic"], references, seed)
            for kind in ("local", "neither"):
                points.append({"task": "vqa", "kind": kind, "channel": channel_name, "snr_db": snr, "n": len(items),
                               "recent": recent, "trust": trust, "semantic": base,
                               "rag": task_metrics("vqa", got[kind], references, seed)})
    return {"points": points, "recent": recent, "trust": trust, "seed": seed}
