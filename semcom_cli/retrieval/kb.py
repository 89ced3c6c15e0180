"""A knowledge base: sentences and their unit-length embeddings in a FAISS inner-product index.

On disk a base is a folder ``NAME.kb/`` of two files, nothing pickled:

- ``index.faiss``: a FAISS ``IndexFlatIP`` over the entries' L2-normalised MiniLM embeddings
  (inner product = cosine), written by ``faiss.write_index``;
- ``kb.json``: the format version, the kind (``global``: shared by every receiver; ``local``: one
  user's own recent messages), the user, the size cap, the embedder's identity, the entries in the
  order they were added (oldest first) and the index file's sha256.

Reading checks all of it: a base whose index was damaged or changed, whose entries and index
disagree, or that was built with another embedder (its vectors live in another space) is refused
in one line. A local base keeps at most ``cap`` entries: adding past it evicts the oldest, so the
base holds the user's most recent messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import current_umask
from semcom_cli.core.limits import check_question
from semcom_cli.core.optional import require
from semcom_cli.models.embedding import embed_texts, embedder_identity

__all__ = ["KnowledgeBase", "KB_FORMAT", "KINDS", "MAX_ENTRY_CHARS", "MAX_ENTRIES"]

KB_FORMAT = 1
KINDS = ("global", "local")
MAX_ENTRY_CHARS = 2000
MAX_ENTRIES = 2_000_000        # what one base may hold (a 384-float row each: about 3 GB)
MAX_KB_JSON_BYTES = 512 << 20


def _faiss():
    require("faiss")
    import faiss  # optional heavy: FAISS (knowledge bases)

    return faiss


def _check_entry(text: str) -> str:
    """An entry as it will be shown to the LLM: one line, bounded, free of the template's markers."""
    if not isinstance(text, str) or not text.strip():
        raise SemcomError("a knowledge-base entry must be a non-empty sentence")
    if len(text) > MAX_ENTRY_CHARS:
        raise SemcomError(f"a knowledge-base entry of {len(text):,} characters; at most {MAX_ENTRY_CHARS}")
    try:
        check_question(text)
    except SemcomError as err:
        raise SemcomError(str(err).replace("the question", "a knowledge-base entry")) from None
    return " ".join(text.split())


class KnowledgeBase:
    """Entries (oldest first) and their FAISS index; ``kind`` global or local (one ``user``'s, ``cap``)."""

    def __init__(self, kind: str = "global", user: str | None = None, cap: int | None = None):
        if kind not in KINDS:
            raise SemcomError(f"unknown knowledge-base kind '{kind}' (choose from: {', '.join(KINDS)})")
        if kind == "local" and not user:
            raise SemcomError("a local knowledge base belongs to a user: give --user")
        if cap is not None and not 1 <= cap <= MAX_ENTRIES:
            raise SemcomError(f"--cap must be in [1, {MAX_ENTRIES:,}] (got {cap})")
        self.kind, self.user, self.cap = kind, user, cap
        self.embedder = embedder_identity()
        self.entries: list[str] = []
        self.index = _faiss().IndexFlatIP(self.embedder["dim"])
        self.source: Path | None = None

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def name(self) -> str:
        return self.source.name if self.source else f"{self.kind} base"

    # growing -----------------------------------------------------------------

    def add(self, texts: list[str], vectors: np.ndarray | None = None) -> int:
        """Append entries (embedded here unless ``vectors`` [N, dim] are given); past the cap the oldest
        go. Returns how many were evicted."""
        texts = [_check_entry(t) for t in texts]
        if not texts:
            return 0
        if vectors is None:
            vectors = embed_texts(texts).numpy()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(texts), self.embedder["dim"]):
            raise SemcomError(f"{len(texts)} entries need vectors of shape ({len(texts)}, {self.embedder['dim']}),"
                              f" got {tuple(vectors.shape)}")
        if len(self.entries) + len(texts) > MAX_ENTRIES:
            raise SemcomError(f"a knowledge base holds at most {MAX_ENTRIES:,} entries")
        self.index.add(vectors)
        self.entries += texts
        return self._evict()

    def _evict(self) -> int:
        """Drop the oldest entries beyond the cap (the most recent ones stay)."""
        extra = len(self.entries) - self.cap if self.cap is not None else 0
        if extra <= 0:
            return 0
        # a flat index renumbers what remains after removing ids 0 … extra-1: it stays in step with entries
        self.index.remove_ids(_faiss().IDSelectorRange(0, extra))
        del self.entries[:extra]
        return extra

    # searching ---------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[float, str]]]:
        """The ``k`` nearest entries (cosine, best first) to each query vector [Q, dim]."""
        if k < 1:
            raise SemcomError(f"k must be at least 1 (got {k})")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.embedder["dim"])
        if not self.entries:
            return [[] for _ in range(len(vectors))]
        scores, ids = self.index.search(vectors, min(k, len(self.entries)))
        return [[(float(s), self.entries[i]) for s, i in zip(row_s, row_i) if i >= 0]
                for row_s, row_i in zip(scores, ids)]

    def query(self, texts: list[str], k: int) -> list[list[tuple[float, str]]]:
        return self.search(embed_texts(texts).numpy(), k)

    # files -------------------------------------------------------------------

    def describe(self) -> dict:
        return {"format": KB_FORMAT, "kind": self.kind, "user": self.user, "cap": self.cap,
                "embedder": self.embedder, "count": len(self.entries)}

    def save(self, folder: str | Path) -> None:
        """Write the base as ``folder`` (index + JSON side file), replacing it atomically."""
        folder = Path(folder)
        if folder.exists() and not (folder / "kb.json").is_file():
            raise SemcomError(f"{folder}: exists and is not a knowledge base; refusing to overwrite it")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; a plain mkdir follows the umask
            _faiss().write_index(self.index, str(tmp / "index.faiss"))
            side = self.describe() | {"entries": self.entries,
                                      "index_sha256": hashlib.sha256((tmp / "index.faiss").read_bytes()).hexdigest()}
            (tmp / "kb.json").write_text(json.dumps(side, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            old = None
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
            os.replace(tmp, folder)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.source = folder

    @classmethod
    def load(cls, folder: str | Path) -> "KnowledgeBase":
        """Read a base written by :meth:`save`, checking it whole (module docstring)."""
        folder = Path(folder)
        side_path, index_path = folder / "kb.json", folder / "index.faiss"
        if not folder.is_dir():
            raise SemcomError(f"{folder}: no such knowledge base (a folder written by 'semcom kb build')")
        if not side_path.is_file() or not index_path.is_file():
            raise SemcomError(f"{folder}: not a knowledge base (it needs kb.json and index.faiss)")
        if side_path.stat().st_size > MAX_KB_JSON_BYTES:
            raise SemcomError(f"{side_path}: larger than a knowledge base's side file may be")
        try:
            side = json.loads(side_path.read_text(encoding="utf-8"))
            kind, user, cap = side["kind"], side.get("user"), side.get("cap")
            entries, embedder, digest = side["entries"], side["embedder"], side["index_sha256"]
            fmt = side["format"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise SemcomError(f"{side_path}: not a knowledge base's side file (damaged or foreign)") from None
        if fmt != KB_FORMAT:
            raise SemcomError(f"{folder}: knowledge-base format {fmt!r}; this semcom reads format {KB_FORMAT}")
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise SemcomError(f"{side_path}: its entries are not a list of sentences")
        installed = embedder_identity()
        if not isinstance(embedder, dict) or embedder.get("sha256") != installed["sha256"] \
                or embedder.get("dim") != installed["dim"]:
            name = embedder.get("name") if isinstance(embedder, dict) else embedder
            raise SemcomError(f"{folder}: built with another embedder ({name!r}); its vectors do not compare with "
                              f"{installed['name']}'s: rebuild it")
        raw = index_path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            raise SemcomError(f"{index_path}: does not match its side file (damaged or changed); rebuild the base")
        try:
            index = _faiss().deserialize_index(np.frombuffer(raw, dtype=np.uint8))
        except RuntimeError:
            raise SemcomError(f"{index_path}: not a FAISS index") from None
        if index.d != installed["dim"] or index.ntotal != len(entries) or not index.metric_type == 0:
            raise SemcomError(f"{folder}: its index and its entries disagree ({index.ntotal} vectors of "
                              f"{index.d}, {len(entries)} entries)")
        kb = cls(kind, user, cap)
        kb.entries, kb.index, kb.source = list(entries), index, folder
        return kb
