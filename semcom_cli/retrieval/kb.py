"""A knowledge base: sentences and their unit-length embeddings in a FAISS inner-product index.

On disk a base is a folder ``NAME.kb/`` of two files, nothing pickled:

- ``index.faiss``: a FAISS inner-product index over the entries' L2-normalised MiniLM embeddings
  (inner product = cosine), written by ``faiss.write_index``, of one of three kinds (``kb build
  --index``): ``flat`` (``IndexFlatIP``, exact, the default: its search time grows with the count,
  about 15 ms at 100,000 entries), ``ivf`` (``IndexIVFFlat``: k-means lists trained on the base's own
  vectors, ``nprobe`` of them scanned per query) or ``hnsw`` (``IndexHNSWFlat``, a neighbour graph).
  The last two are approximate: at 10⁵ entries both return flat's top-3 (recall ≥ 0.99) in under a
  millisecond; at 10⁶ they stay at a few ms but miss some of it (benchmarks/retrieval_scale.py);
- ``kb.json``: the format version, the kind (``global``: shared by every receiver; ``local``: one
  user's own recent messages), the user, the size cap, the embedder's identity, the index's kind and
  settings (``index``; a base written before there was a choice has none and is flat), the entries in
  the order they were added (oldest first), the index file's sha256 and ``sha256``, the digest of all
  of these together (:func:`content_digest`), so an entry edited by hand no longer matches its base.

Reading checks all of it: a base whose index or entries were damaged or changed, whose entries and
index disagree, whose index is not of the kind and settings kb.json records, that was built with
another embedder (its vectors live in another space), or one of
whose entries breaks the rules :func:`check_entry` applies to a new entry (``kb add``'s) is refused
in one line. A local base keeps at most ``cap`` entries: adding past it evicts the oldest, so the
base holds the user's most recent messages (flat and ivf drop the evicted vectors in place; an hnsw
graph cannot drop nodes, so it is rebuilt from the remaining vectors, which costs a build each time).

Writers. Every update of a base (``kb build``, ``kb add``, ``decode --kb-local``) runs under one lock,
an ``fcntl.flock`` on ``.semcom-kb.lock`` inside the folder, held across the read-modify-write
(:func:`update_base`), so two writers take turns and neither loses the other's entries; readers hold
it shared. The new files are written in a staging folder inside the base (``.semcom-staging-PID-HEX``)
and fsync'd; renaming that folder to ``.semcom-commit`` is the write-ahead record, after which the two
files are renamed into place. A writer killed before that rename leaves only staging, which the next
writer removes (under the lock, so it is nobody's live work); one killed after it leaves a complete
commit folder, which the next reader or writer finishes. SIGINT and SIGTERM during the write remove
the staging and end the command (exit 130 and 143).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import check_question
from semcom_cli.core.optional import require
from semcom_cli.core.outputs import OutputKind
from semcom_cli.core.files import wait_for_flock
from semcom_cli.core.processes import sigterm_raises
from semcom_cli.core.terminal import is_printable
from semcom_cli.models.embedding import embed_texts, embedder_identity

__all__ = [
    "KB_FORMAT",
    "KB_OUTPUT",
    "INDEX_KINDS",
    "KINDS",
    "MAX_ENTRIES",
    "MAX_ENTRY_CHARS",
    "MAX_USER_CHARS",
    "KnowledgeBase",
    "add_to_base",
    "check_entry",
    "check_user",
    "content_digest",
    "index_settings",
    "is_knowledge_base",
    "update_base",
    "upgrade_base",
]

KB_FORMAT = 2                  # 2: kb.json's "sha256" covers the entries and settings with the index's digest
LEGACY_FORMATS = (1,)          # 1: only the index was hashed; `semcom kb upgrade` checks and converts it once
KINDS = ("global", "local")
MAX_ENTRY_CHARS = 2000
MAX_ENTRIES = 2_000_000        # what one base may hold (a 384-float row each: about 3 GB)
MAX_USER_CHARS = 200
MAX_KB_JSON_BYTES = 512 << 20
LOCK_WAIT_S = 120.0            # how long a writer waits for another one before giving up in one line

INDEX_NAME, SIDE_NAME = "index.faiss", "kb.json"
LOCK_NAME = ".semcom-kb.lock"
COMMIT_NAME = ".semcom-commit"
STAGING_PREFIX = ".semcom-staging-"
STAGING_PATTERN = re.compile(r"\.semcom-staging-[0-9]{1,10}-[0-9a-f]{16}")
_OWN_NAMES = {INDEX_NAME, SIDE_NAME, LOCK_NAME, COMMIT_NAME}
_REQUIRED = ("format", "kind", "entries", "embedder", "index_sha256")
UPGRADE_MIN_COSINE = 0.999     # an entry re-embedded on upgrade must land on its stored vector

# the index's kinds and their settings (recorded in kb.json's "index"; None: chosen when first trained)
INDEX_KINDS = ("flat", "ivf", "hnsw")
INDEX_SETTINGS = {"flat": {},
                  "ivf": {"nlist": None, "nprobe": None, "seed": 0},
                  "hnsw": {"m": 16, "ef_construction": 40, "ef_search": 64}}
INDEX_SETTING_RANGES = {"nlist": (1, 65_536), "nprobe": (1, 65_536), "seed": (0, 2 ** 31 - 1),
                        "m": (2, 256), "ef_construction": (1, 65_536), "ef_search": (1, 65_536)}
IVF_LISTS_PER_ROOT = 4         # nlist ≈ 4·√n …
IVF_MIN_PER_LIST = 39          # … but at least FAISS's advised 39 training vectors per list
IVF_TRAIN_PER_LIST = 48        # k-means sees at most 48 vectors a list (a sample: 10⁶ entries train in ~2 min)
IVF_TRAIN_ITERATIONS = 10
IVF_LISTS_PER_PROBE, IVF_MIN_PROBES = 16, 32   # nprobe = nlist / 16, at least 32 (:func:`ivf_probes`)


def _faiss():
    require("faiss")
    import faiss  # optional heavy: FAISS (knowledge bases)

    return faiss


def _shown(value: object, limit: int = 40) -> str:
    """A stored value quoted in a message, cut short (it may be any JSON)."""
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# rules for what a base holds -------------------------------------------------------------------------

def check_entry(text: object) -> str:
    """An entry as it will be shown to the LLM: one line, bounded, printable, free of the templates'
    markers. Returns it with its whitespace collapsed. The one rule for a new entry (``kb add``,
    ``decode --kb-local``) and for every stored entry when a base is read."""
    if not isinstance(text, str) or not text.strip():
        raise SemcomError("a knowledge-base entry must be a non-empty sentence")
    if len(text) > MAX_ENTRY_CHARS:
        raise SemcomError(f"a knowledge-base entry of {len(text):,} characters; at most {MAX_ENTRY_CHARS}")
    try:
        check_question(text)
    except SemcomError as err:
        raise SemcomError(str(err).replace("the question", "a knowledge-base entry")) from None
    line = " ".join(text.split())
    if not is_printable(line):  # DEL, C1 controls, bidi overrides, lone surrogates
        raise SemcomError("a knowledge-base entry contains control characters")
    return line


def check_user(user: object) -> str:
    """A local base's user name: a short printable string."""
    if user is None or user == "":
        raise SemcomError("a local knowledge base belongs to a user: give --user")
    if not isinstance(user, str) or not user.strip():
        raise SemcomError(f"a user must be a name (got {_shown(user)})")
    if len(user) > MAX_USER_CHARS or not is_printable(user):
        raise SemcomError(f"a user name must be at most {MAX_USER_CHARS} printable characters")
    return user


def _check_cap(cap: object) -> int | None:
    if cap is None:
        return None
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_ENTRIES:
        raise SemcomError(f"--cap must be a whole number in [1, {MAX_ENTRIES:,}] (got {_shown(cap)})")
    return cap


def content_digest(side: dict) -> str:
    """The sha256 of what a base says: kind, user, cap, embedder, index settings, entries and the index
    file's digest (canonical JSON, so it does not depend on how kb.json is laid out). ``index`` is
    covered where present: a base written before it existed keeps its digest (and reads as flat)."""
    keys = ("format", "kind", "user", "cap", "embedder", "entries", "index_sha256") \
        + (("index",) if "index" in side else ())
    covered = {key: side.get(key) for key in keys}
    text = json.dumps(covered, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# the index: kinds, settings, building and checking -----------------------------------------------------

def index_settings(spec: object = "flat", stored: bool = False) -> dict:
    """The index's kind and settings, checked: ``spec`` a kind (``"ivf"``) or a dict ``{"kind": …,
    setting: value}``; settings not given take their defaults. ``stored``: ``spec`` is kb.json's record,
    which must name every setting of its kind and nothing else. Raises a one-line SemcomError."""
    if isinstance(spec, str) and not stored:
        spec = {"kind": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        raise SemcomError(f"an index must name its kind (got {_shown(spec)})")
    kind = spec["kind"]
    if kind not in INDEX_KINDS:
        raise SemcomError(f"unknown index kind {_shown(kind)} (choose from: {', '.join(INDEX_KINDS)})")
    defaults = INDEX_SETTINGS[kind]
    given = {key: value for key, value in spec.items() if key != "kind"}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SemcomError(f"an index of kind {kind} has no setting {_shown(unknown[0])} "
                          f"(its settings: {', '.join(defaults) or 'none'})")
    if stored and set(given) != set(defaults):
        raise SemcomError(f"an index of kind {kind} records {', '.join(defaults) or 'no settings'} "
                          f"(got {', '.join(sorted(given)) or 'none'})")
    settings = {"kind": kind} | defaults | given
    for key in defaults:
        value = settings[key]
        if value is None and defaults[key] is None:
            continue  # chosen from the count when the index is first trained
        low, high = INDEX_SETTING_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SemcomError(f"index setting {key} must be a whole number in [{low}, {high:,}] "
                              f"(got {_shown(value)})")
    return settings


def ivf_lists(count: int) -> int:
    """nlist for ``count`` vectors: ≈ 4·√count, at most count / 39 (k-means needs that many a list)."""
    return max(1, min(round(IVF_LISTS_PER_ROOT * count ** 0.5), count // IVF_MIN_PER_LIST, 65_536))


def ivf_probes(nlist: int) -> int:
    """nprobe for ``nlist`` lists: a sixteenth of them, at least 32, chosen for recall: flat's top-3 with
    recall ≥ 0.99 at 5,000 and 100,000 entries (benchmarks/retrieval_scale.py; √nlist gave 0.95–0.99)."""
    return min(nlist, max(IVF_MIN_PROBES, nlist // IVF_LISTS_PER_PROBE))


def _new_index(settings: dict, dim: int):
    """An empty index of the settings' kind (an ivf one is made when its first vectors come: :func:`_trained_ivf`)."""
    faiss = _faiss()
    if settings["kind"] == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings["m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings["ef_construction"]
        index.hnsw.efSearch = settings["ef_search"]
        return index
    return faiss.IndexFlatIP(dim)  # flat, and an ivf base's stand-in while it holds nothing


def _trained_ivf(vectors: np.ndarray, settings: dict):
    """An IVF index trained on ``vectors`` (spherical k-means, seeded, on a sample of at most
    48 a list) and holding them; fills the settings' nlist and nprobe where they were left to the count."""
    faiss = _faiss()
    count, dim = vectors.shape
    nlist = min(settings["nlist"] or ivf_lists(count), count)
    nprobe = min(settings["nprobe"] or ivf_probes(nlist), nlist)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.niter, index.cp.spherical = settings["seed"], IVF_TRAIN_ITERATIONS, True
    index.cp.max_points_per_centroid, index.cp.min_points_per_centroid = IVF_TRAIN_PER_LIST, 1  # 1: no warning
    index.train(vectors)
    index.add(vectors)
    index.nprobe = nprobe
    settings["nlist"], settings["nprobe"] = nlist, nprobe
    return index


def _check_index(folder: Path, index, settings: dict, dim: int, count: int) -> None:
    """The index read from ``folder`` is of the kind and settings kb.json records and holds ``count``
    vectors of ``dim``; sets its search-time setting (nprobe, efSearch) from the record."""
    faiss = _faiss()
    kind = settings["kind"]
    ivf_stand_in = kind == "ivf" and count == 0  # trained when its first vectors come
    if kind == "flat" or ivf_stand_in:
        found = isinstance(index, faiss.IndexFlatIP)
    elif kind == "ivf":
        found = type(index) is faiss.IndexIVFFlat and index.is_trained and index.nlist == settings["nlist"] \
            and settings["nprobe"] is not None and settings["nprobe"] <= settings["nlist"]
    else:
        found = type(index) is faiss.IndexHNSWFlat and index.hnsw.nb_neighbors(1) == settings["m"] \
            and index.hnsw.efConstruction == settings["ef_construction"]
    if not found or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        described = ", ".join(f"{key} {value}" for key, value in settings.items() if key != "kind")
        raise SemcomError(f"{folder}: its index file is not the {kind} index kb.json records"
                          f"{f' ({described})' if described else ''}; rebuild the base")
    if index.d != dim or index.ntotal != count:
        raise SemcomError(f"{folder}: its index and its entries disagree ({index.ntotal} vectors of "
                          f"{index.d}, {count} entries)")
    if kind == "ivf" and not ivf_stand_in:
        index.nprobe = settings["nprobe"]
    elif kind == "hnsw":
        index.hnsw.efSearch = settings["ef_search"]


def _renumber_ivf(index, removed: int) -> None:
    """After the ids 0 … removed-1 left an IVF index, shift the rest down by ``removed`` so that id i is
    entry i again (a flat index renumbers itself; IVF lists keep the ids they were given)."""
    faiss = _faiss()
    lists = index.invlists
    for number in range(index.nlist):
        size = lists.list_size(number)
        if not size:
            continue
        ids = faiss.rev_swig_ptr(lists.get_ids(number), size).copy() - removed
        codes = faiss.rev_swig_ptr(lists.get_codes(number), size * lists.code_size).copy()
        lists.update_entries(number, 0, size, faiss.swig_ptr(ids), faiss.swig_ptr(codes))


# the base's folder: lock, staging, commit ------------------------------------------------------------

def _fsync(path: Path, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _base_lock(folder: Path, exclusive: bool):
    """Hold the base's lock (exclusive: a writer; shared: a reader). A reader of a base it cannot
    write, with no lock file there yet, reads without one: no semcom can be writing that base."""
    path = folder / LOCK_NAME
    flags = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
    except OSError as err:
        if exclusive or err.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise SemcomError(f"{folder}: cannot lock the knowledge base ({err.strerror or err})") from None
        try:
            fd = os.open(path, os.O_RDONLY | flags)
        except FileNotFoundError:
            fd = None
        except OSError as again:
            raise SemcomError(f"{folder}: cannot lock the knowledge base ({again.strerror or again})") from None
    try:
        if fd is not None:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SemcomError(f"{path}: not a lock file (something else is there); remove it")
            wait_for_flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, LOCK_WAIT_S,
                           f"{folder}: another semcom has been updating this knowledge base for over "
                           f"{LOCK_WAIT_S:.0f} s; try again later")
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the flock


def _finish_commit(folder: Path) -> None:
    """Move a complete commit folder's files into place (a writer killed mid-commit left it)."""
    commit = folder / COMMIT_NAME
    if not commit.is_dir() or commit.is_symlink():
        return
    for name in (INDEX_NAME, SIDE_NAME):
        if (commit / name).is_file():
            os.replace(commit / name, folder / name)
    _fsync(folder, folder=True)
    shutil.rmtree(commit, ignore_errors=True)
    _fsync(folder, folder=True)


def _remove_stale_staging(folder: Path) -> None:
    """Staging left by a killed writer: with the lock held, no staging folder is anyone's live work.
    Only folders named as semcom names its own are touched."""
    for entry in folder.iterdir():
        if STAGING_PATTERN.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def _signals_held():
    """SIGINT/SIGTERM wait while the commit folder is renamed into place (a few renames): the base is
    never left half-moved by a signal that has a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _only_own_files(folder: Path) -> bool:
    """The folder holds nothing but a base's files, its lock and semcom's staging/commit folders."""
    return all(name in _OWN_NAMES or STAGING_PATTERN.fullmatch(name) for name in os.listdir(folder))


def is_knowledge_base(path: Path) -> bool:
    """Is ``path`` a semcom knowledge base (of any format, even a damaged one) and nothing else?"""
    path = Path(path)
    try:
        if not path.is_dir() or not (path / SIDE_NAME).is_file() or not (path / INDEX_NAME).is_file():
            return False
        if not _only_own_files(path) or (path / SIDE_NAME).stat().st_size > MAX_KB_JSON_BYTES:
            return False
        side = json.loads((path / SIDE_NAME).read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(side, dict) and all(key in side for key in ("format", "kind", "entries"))


KB_OUTPUT = OutputKind("semcom knowledge base", is_knowledge_base, folder=True)


# the base ----------------------------------------------------------------------------------------------

class KnowledgeBase:
    """Entries (oldest first) and their FAISS index; ``kind`` global or local (one ``user``'s, ``cap``);
    ``index`` the index's kind or settings (:func:`index_settings`): flat (exact), ivf or hnsw.

    All three support everything a base does (add, the cap's eviction, search, save and load). An ivf
    index is trained on the vectors of its first ``add`` (``kb build``'s sentences): entries added later
    go into those lists, so rebuild a base that has grown many times over to refit them. An hnsw index
    is rebuilt from its remaining vectors on every eviction (FAISS cannot remove graph nodes): fine for
    a local base's cap of recent messages, slow for a capped base of millions."""

    def __init__(self, kind: str = "global", user: str | None = None, cap: int | None = None,
                 index: str | dict = "flat"):
        if not isinstance(kind, str) or kind not in KINDS:
            raise SemcomError(f"unknown knowledge-base kind {_shown(kind)} (choose from: {', '.join(KINDS)})")
        if kind == "local" or user is not None:
            user = check_user(user)
        self.kind, self.user, self.cap = kind, user, _check_cap(cap)
        self.index_settings = index_settings(index)
        self.embedder = embedder_identity()
        self.entries: list[str] = []
        self.index = _new_index(self.index_settings, self.embedder["dim"])
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
        texts = [check_entry(t) for t in texts]
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
        if self.index_settings["kind"] == "ivf" and not self.entries:
            self.index = _trained_ivf(vectors, self.index_settings)
        else:
            self.index.add(vectors)
        self.entries += texts
        return self._evict()

    def _evict(self) -> int:
        """Drop the oldest entries beyond the cap (the most recent ones stay)."""
        extra = len(self.entries) - self.cap if self.cap is not None else 0
        if extra <= 0:
            return 0
        kind = self.index_settings["kind"]
        if kind == "hnsw":  # no remove_ids on a graph: build it again from the vectors that stay
            kept = self.index.reconstruct_n(extra, self.index.ntotal - extra)
            self.index = _new_index(self.index_settings, self.embedder["dim"])
            self.index.add(kept)
        else:
            # a flat index renumbers what remains after removing ids 0 … extra-1; IVF lists are renumbered here
            self.index.remove_ids(_faiss().IDSelectorRange(0, extra))
            if kind == "ivf":
                _renumber_ivf(self.index, extra)
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
                "embedder": self.embedder, "index": dict(self.index_settings), "count": len(self.entries)}

    def save(self, folder: str | Path) -> None:
        """Write the base as ``folder``: a new folder, an empty one, or a base it replaces (under the
        base's lock, so a writer updating the old base meanwhile finishes first)."""
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or not _only_own_files(folder)):
            raise SemcomError(f"{folder}: exists and is not a knowledge base; refusing to overwrite it")
        folder.mkdir(parents=True, exist_ok=True)
        with _base_lock(folder, exclusive=True):
            if not _only_own_files(folder):  # something else appeared while this base was being built
                raise SemcomError(f"{folder}: exists and is not a knowledge base; refusing to overwrite it")
            _finish_commit(folder)
            _remove_stale_staging(folder)
            self._commit(folder)
        self.source = folder

    def _commit(self, folder: Path) -> None:
        """Replace the base's two files (the caller holds the exclusive lock): staging → fsync →
        rename to the commit folder (the write-ahead record) → rename the files into place."""
        staging = folder / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        with sigterm_raises():  # SIGTERM unwinds like Ctrl-C: the finally below removes the staging
            try:
                staging.mkdir()
                self._write_staging(staging)
                with _signals_held():
                    os.rename(staging, folder / COMMIT_NAME)
                    _fsync(folder, folder=True)
                    _finish_commit(folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _write_staging(self, staging: Path) -> None:
        index_path = staging / INDEX_NAME
        _faiss().write_index(self.index, str(index_path))
        _fsync(index_path)
        digest = hashlib.sha256()
        with open(index_path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        side = self.describe() | {"entries": self.entries, "index_sha256": digest.hexdigest()}
        side["sha256"] = content_digest(side)
        fd = os.open(staging / SIDE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write((json.dumps(side, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        _fsync(staging, folder=True)

    @classmethod
    def load(cls, folder: str | Path) -> KnowledgeBase:
        """Read a base written by :meth:`save`, checking it whole (module docstring)."""
        folder = _existing_base(folder)
        with _base_lock(folder, exclusive=False):
            if not (folder / COMMIT_NAME).exists():
                return cls._read(folder)
        # a writer was killed mid-commit: finish its commit (that takes the lock exclusively)
        with _base_lock(folder, exclusive=True):
            _finish_commit(folder)
            return cls._read(folder)

    @classmethod
    def _read(cls, folder: Path, legacy: bool = False) -> KnowledgeBase:
        """The base in ``folder`` (the caller holds its lock), checked; ``legacy``: a format-1 base is
        read too (its entries are checked, but nothing vouches that they match its vectors)."""
        side_path, index_path = folder / SIDE_NAME, folder / INDEX_NAME
        if not side_path.is_file() or not index_path.is_file():
            raise SemcomError(f"{folder}: not a knowledge base (it needs kb.json and index.faiss)")
        side = _read_side(side_path)
        fmt = side["format"]
        known = isinstance(fmt, int) and not isinstance(fmt, bool) and fmt in (KB_FORMAT, *LEGACY_FORMATS)
        if not known:
            raise SemcomError(f"{folder}: knowledge-base format {_shown(fmt)}; this semcom reads format {KB_FORMAT}")
        if fmt != KB_FORMAT and not legacy:
            raise SemcomError(f"{folder}: a format-{fmt} knowledge base, whose entries are not hashed; check and "
                              f"convert it once with 'semcom kb upgrade {folder}'")
        try:
            kb = cls(side["kind"], side.get("user"), side.get("cap"))
            kb.index_settings = index_settings(side.get("index", {"kind": "flat"}), stored=True)
        except SemcomError as err:
            raise SemcomError(f"{side_path}: {err}") from None
        _check_embedder(folder, side["embedder"], kb.embedder)
        entries = _check_entries(side_path, side["entries"], kb.cap)
        digest = side["index_sha256"]
        if fmt == KB_FORMAT and (not isinstance(side.get("sha256"), str) or content_digest(side) != side["sha256"]):
            raise SemcomError(f"{side_path}: its entries or settings were changed after it was written (they no "
                              "longer match its hash); rebuild the base")
        raw = index_path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            raise SemcomError(f"{index_path}: does not match its side file (damaged or changed); rebuild the base")
        faiss = _faiss()
        try:
            index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
        except RuntimeError:
            raise SemcomError(f"{index_path}: not a FAISS index") from None
        _check_index(folder, index, kb.index_settings, kb.embedder["dim"], len(entries))
        kb.entries, kb.index, kb.source = entries, index, folder
        return kb


def _existing_base(folder: str | Path) -> Path:
    """Refuse a path that is no base before any lock file is made in it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SemcomError(f"{folder}: no such knowledge base (a folder written by 'semcom kb build')")
    if not (folder / SIDE_NAME).is_file() and not (folder / COMMIT_NAME).is_dir():
        raise SemcomError(f"{folder}: not a knowledge base (it needs kb.json and index.faiss)")
    return folder


def _read_side(side_path: Path) -> dict:
    damaged = f"{side_path}: not a knowledge base's side file (damaged or foreign)"
    if side_path.stat().st_size > MAX_KB_JSON_BYTES:
        raise SemcomError(f"{side_path}: larger than a knowledge base's side file may be")
    try:
        side = json.loads(side_path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: brackets nested past any base
        raise SemcomError(damaged) from None
    if not isinstance(side, dict) or any(key not in side for key in _REQUIRED):
        raise SemcomError(damaged)
    if not isinstance(side["index_sha256"], str):
        raise SemcomError(damaged)
    return side


def _check_embedder(folder: Path, stored: object, installed: dict) -> None:
    """The base's vectors come from the installed embedder (same weights, same dimension)."""
    if not isinstance(stored, dict) or set(stored) != {"name", "dim", "sha256"} or not isinstance(stored["name"], str) \
            or stored["sha256"] != installed["sha256"] or stored["dim"] != installed["dim"]:
        name = stored.get("name") if isinstance(stored, dict) else stored
        raise SemcomError(f"{folder}: built with another embedder ({_shown(name)}); its vectors do not compare "
                          f"with {installed['name']}'s: rebuild it")


def _check_entries(side_path: Path, entries: object, cap: int | None) -> list[str]:
    """Every stored entry passes the rule a new one does, and is stored as semcom stores it."""
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise SemcomError(f"{side_path}: its entries are not a list of at most {MAX_ENTRIES:,} sentences")
    if cap is not None and len(entries) > cap:
        raise SemcomError(f"{side_path}: holds {len(entries):,} entries, more than its cap of {cap:,}")
    for number, entry in enumerate(entries, 1):
        try:
            if check_entry(entry) != entry:
                raise SemcomError("a knowledge-base entry is not stored as semcom stores it (spacing)")
        except SemcomError as err:
            raise SemcomError(f"{side_path}: entry {number}: {err}; rebuild the base") from None
    return list(entries)


# updating a base -------------------------------------------------------------------------------------

def update_base(folder: str | Path, change: Callable[[KnowledgeBase], object]) -> tuple[KnowledgeBase, object]:
    """Read the base, ``change`` it and write it back, all under its exclusive lock, so a concurrent
    writer's update is never lost. Returns the updated base and what ``change`` returned. Staging a
    killed writer left is removed, and a commit it left half-done is finished, first."""
    folder = _existing_base(folder)
    with _base_lock(folder, exclusive=True):
        _finish_commit(folder)
        _remove_stale_staging(folder)
        kb = KnowledgeBase._read(folder)
        result = change(kb)
        kb._commit(folder)
    return kb, result


def add_to_base(folder: str | Path, texts: list[str], vectors: np.ndarray | None = None) -> tuple[KnowledgeBase, int]:
    """Add entries to the base at ``folder``; they are checked and embedded before the lock is taken,
    so it is held only for the read-modify-write. Returns the base and how many entries were evicted."""
    texts = [check_entry(t) for t in texts]
    if not texts:
        raise SemcomError("nothing to add: no sentences given")
    if vectors is None:
        vectors = embed_texts(texts).numpy()
    return update_base(folder, lambda kb: kb.add(texts, vectors))


def upgrade_base(folder: str | Path) -> tuple[KnowledgeBase, int]:
    """Convert a format-1 base (only its index hashed) to this format, once: its entries are checked,
    re-embedded and compared with its stored vectors (an entry edited since it was embedded no longer
    lands on its vector and is refused), then the whole base is hashed. Returns the base and the
    format it had (the current one: nothing was done)."""
    folder = _existing_base(folder)
    with _base_lock(folder, exclusive=True):
        _finish_commit(folder)
        _remove_stale_staging(folder)
        kb = KnowledgeBase._read(folder, legacy=True)
        was = _read_side(folder / SIDE_NAME)["format"]
        if was == KB_FORMAT:
            return kb, was
        if kb.entries:
            stored = kb.index.reconstruct_n(0, len(kb.entries))
            cosines = np.einsum("nd,nd->n", stored, embed_texts(kb.entries).numpy())
            worst = int(np.argmin(cosines))
            if cosines[worst] < UPGRADE_MIN_COSINE:
                raise SemcomError(f"{folder / SIDE_NAME}: entry {worst + 1} does not match its vector (edited after "
                                  "it was embedded); rebuild the base")
        kb._commit(folder)
    return kb, was
