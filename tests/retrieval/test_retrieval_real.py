"""The shipped retrieval checkpoint on the real SmolLM2, at 0 dB: a base holding the sent sentences gets
them copied; a base of planted sentences that were not sent (of the same lengths, so they are the
nearest codes there are) gets nothing past the gate, and the reading is the one without any base."""

import os
from pathlib import Path

import pytest
import torch

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.data.corpus import split_corpus
from semcom_cli.evaluation.metrics import corpus_bleu
from semcom_cli.retrieval import KnowledgeBase, Retriever, read_with_retrieval, receive_packets
from semcom_cli.system import SemcomModel
from semcom_cli.tasks import normalize_answer

pytestmark = pytest.mark.real

CHECKPOINT = Path(os.environ.get("SEMCOM_RAG_CHECKPOINT",
                                 Path(__file__).resolve().parents[2] / "checkpoints" / "semcom-rag"))


@torch.no_grad()
def test_matching_entries_are_copied_and_planted_ones_ignored():
    model = SemcomModel.from_pretrained(CHECKPOINT)
    tokenizer = model.get_llm().tokenizer
    split = split_corpus(tokenizer, model.preset.data.max_text_tokens)

    def count(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    sent = split.neither[:8]
    pool = split.global_base + [s for history in split.local for s in history]
    planted = [next(p for p in pool if count(p) == count(s)) for s in sent]
    seed_channel(5)
    tokens, mask = model.text_tokens(sent)
    y, h = make_channel("awgn").send(model.encode(tokens, mask, "text"), 0.0)
    packets = receive_packets(model, y, h, 0.0, mask)
    tasks, questions = ["text"] * len(sent), [None] * len(sent)

    holding = KnowledgeBase("global")
    holding.add(sent + pool[:200])
    answers, first, hits = read_with_retrieval(model, tasks, questions, packets, Retriever(holding))
    assert all(row and row[0].text == s for row, s in zip(hits, sent))
    # the adapter copies the entry, with slips (a dropped quote, a changed word: 80-84 % exact at 0 dB in
    # make bench-rag); without the entry it reads next to nothing of a news sentence
    bleu_with = corpus_bleu(answers, sent)["value"]
    bleu_without = corpus_bleu(first, sent)["value"]
    assert bleu_with >= 70 and bleu_without <= 10, (bleu_with, bleu_without)
    assert sum(normalize_answer(a) == normalize_answer(s) for a, s in zip(answers, sent)) >= 3

    decoys = KnowledgeBase("global")
    decoys.add(planted)
    answers, first, hits = read_with_retrieval(model, tasks, questions, packets, Retriever(decoys))
    assert hits == [[] for _ in sent] and answers == first
    assert not {normalize_answer(a) for a in answers} & {normalize_answer(p) for p in planted}
