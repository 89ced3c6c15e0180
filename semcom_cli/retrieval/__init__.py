"""Retrieval-augmented receiving: knowledge bases, the sentence corpus, read-retrieve-read.

- :mod:`.corpus`     the Lee news corpus from gensim's wheel, split by document (seeded)
- :mod:`.embedding`  the bundled MiniLM embedder and its identity
- :mod:`.kb`         a knowledge base: entries + a FAISS inner-product index, as files
- :mod:`.retriever`  the receiver's read → retrieve → read again
- :mod:`.training`   the sentences (and retrieved entries) the corpus and retrieval stages train on
"""

from semcom_cli.retrieval.kb import KINDS, KnowledgeBase
from semcom_cli.retrieval.retriever import (
           ROUTES,
           Hit,
           Packets,
           Retriever,
           SymbolIndex,
           read_with_retrieval,
           receive_packets,
)

__all__ = ["KnowledgeBase", "KINDS", "Retriever", "Hit", "Packets", "SymbolIndex", "ROUTES", "receive_packets",
           "read_with_retrieval"]
