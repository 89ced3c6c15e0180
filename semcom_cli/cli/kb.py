"""Knowledge bases for retrieval at the receiver: build, add to, describe and query them.

A base is a folder (index.faiss + kb.json, no pickle) of sentences embedded with the bundled MiniLM.
``--from corpus:global`` / ``corpus:local:U`` / ``corpus:neither`` take the sentence corpus's seeded
split (the one ``semcom evaluate --method rag`` measures on); ``--from FILE`` takes one sentence a line.
``kb build --index flat|ivf|hnsw`` picks the index: flat is exact; ivf and hnsw are approximate and
keep a query near a millisecond at millions of entries (docs/retrieval.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import console, fail_cleanly, print_json, print_out, spinner
from semcom_cli.core.outputs import FORCE_HELP
from semcom_cli.core.terminal import printable

NAME = "kb"
app = typer.Typer(name=NAME, help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


CORPUS_SOURCES = "corpus:global, corpus:neither or corpus:local:U"
MAX_CORPUS_USERS = 64          # as evaluate --method rag's --corpus-users
MIN_SENTENCE_TOKENS = 5        # the corpus keeps sentences of 5 to --max-tokens tokens
INDEX_OPTIONS = {"nlist": ("--nlist", "ivf"), "nprobe": ("--nprobe", "ivf"), "m": ("--hnsw-m", "hnsw"),
                 "ef_construction": ("--ef-construction", "hnsw"), "ef_search": ("--ef-search", "hnsw")}


def _index_spec(index: str, given: dict) -> dict:
    """--index and its settings as :func:`~semcom_cli.retrieval.kb.index_settings` takes them; a setting
    of another kind's index is refused in one line."""
    from semcom_cli.core.errors import SemcomError

    for key, value in given.items():
        flag, kind = INDEX_OPTIONS[key]
        if value is not None and index != kind:
            raise SemcomError(f"{flag} applies to --index {kind} (got --index {index})")
    return {"kind": index} | {key: value for key, value in given.items() if value is not None}


def _check_corpus_settings(source: str, users: int, max_tokens: int) -> None:
    """--users and --max-tokens in range, and a corpus source that names a part of the split, before the
    corpus is read (an out-of-range value would build an empty base, or take minutes to)."""
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.limits import MAX_TOKENS

    if not 1 <= users <= MAX_CORPUS_USERS:
        raise SemcomError(f"--users must be in [1, {MAX_CORPUS_USERS}] (got {users})")
    if not MIN_SENTENCE_TOKENS <= max_tokens <= MAX_TOKENS:
        raise SemcomError(f"--max-tokens must be in [{MIN_SENTENCE_TOKENS}, {MAX_TOKENS}] (got {max_tokens}): "
                          f"the corpus keeps sentences of {MIN_SENTENCE_TOKENS} tokens or more")
    if not source.startswith("corpus:"):
        return
    parts = source.split(":")
    local = len(parts) == 3 and parts[1] == "local" and parts[2].isdigit() and int(parts[2]) < users
    if parts[1:] not in (["global"], ["neither"]) and not local:
        raise SemcomError(f"--from {source}: choose {CORPUS_SOURCES} (U from 0 to {users - 1})")


def _sentences(source: str, users: int, max_tokens: int) -> list[str]:
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.files import read_input_bytes

    _check_corpus_settings(source, users, max_tokens)
    if source.startswith("corpus:"):
        from semcom_cli.config.preset import Backbone
        from semcom_cli.data.corpus import split_corpus
        from semcom_cli.models.llm import backbone_identity

        parts = source.split(":")
        _, _, tokenizer, _ = backbone_identity(Backbone())
        split = split_corpus(tokenizer, max_tokens, users)
        found = {"global": split.global_base, "neither": split.neither}.get(parts[1]) \
            or (split.local[int(parts[2])] if parts[1] == "local" else [])
        if not found:
            raise SemcomError(f"--from {source}: no sentence of the corpus falls there with --users {users} and "
                              f"--max-tokens {max_tokens}; the base would be empty")
        return found
    raw, _ = read_input_bytes(source, "text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SemcomError(f"{source}: not UTF-8 text (one sentence a line)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SemcomError(f"{source}: holds no sentences (one a line)")
    return lines


@app.command("build")
@fail_cleanly
def build(
    output: Path = typer.Argument(..., help="The base's folder to write (NAME.kb)."),
    source: str = typer.Option(..., "--from", help="FILE (one sentence a line, '-': stdin), corpus:global, "
                                                   "corpus:local:U or corpus:neither."),
    kind: str = typer.Option("global", "--kind", help="global (shared by every receiver) or local (one user's)."),
    user: Optional[str] = typer.Option(None, "--user", help="A local base's user."),
    cap: Optional[int] = typer.Option(None, "--cap", help="Most entries kept; adding more evicts the oldest."),
    users: int = typer.Option(8, "--users", help=f"corpus: how many users the split has (1 to {MAX_CORPUS_USERS})."),
    max_tokens: int = typer.Option(24, "--max-tokens", help="corpus: the longest sentence kept, in LLM tokens "
                                                            "(the checkpoint's data.max_text_tokens)."),
    index: str = typer.Option("flat", "--index", help="flat (exact; the default), ivf or hnsw (approximate, "
                                                      "for bases of millions)."),
    nlist: Optional[int] = typer.Option(None, "--nlist", help="ivf: k-means lists (default ≈ 4·√entries)."),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", help="ivf: lists scanned a query (default nlist/16, "
                                                                "at least 32)."),
    hnsw_m: Optional[int] = typer.Option(None, "--hnsw-m", help="hnsw: neighbours a node (default 16)."),
    ef_construction: Optional[int] = typer.Option(None, "--ef-construction", help="hnsw: build breadth (default 40)."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", help="hnsw: search breadth (default 64)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
):
    """Build a knowledge base from sentences."""
    from semcom_cli.core.outputs import check_output
    from semcom_cli.retrieval.kb import KB_OUTPUT, KnowledgeBase

    spec = _index_spec(index, {"nlist": nlist, "nprobe": nprobe, "m": hnsw_m, "ef_construction": ef_construction,
                               "ef_search": ef_search})
    check_output(output, [source if not source.startswith("corpus:") else None], kind=KB_OUTPUT, force=force)
    _check_corpus_settings(source, users, max_tokens)
    kb = KnowledgeBase(kind, user, cap, index=spec)
    with spinner("embedding the entries"):
        sentences = _sentences(source, users, max_tokens)
        evicted = kb.add(sentences)
    kb.save(output)
    console.print(f"{len(kb)} entries → {printable(str(output))}"
                  + (f" ({evicted} oldest evicted by --cap {cap})" if evicted else ""))


@app.command("add")
@fail_cleanly
def add(
    base: Path = typer.Argument(..., help="The base's folder."),
    text: Optional[list[str]] = typer.Option(None, "--text", "-t", help="A sentence to add (repeatable)."),
    source: Optional[str] = typer.Option(None, "--from", help="A file of sentences, one a line."),
):
    """Add sentences to a base (past its cap the oldest are evicted)."""
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.retrieval.kb import KnowledgeBase, add_to_base

    if not text and source is None:
        raise SemcomError("give --text SENTENCE or --from FILE")
    KnowledgeBase.load(base)  # a base that cannot be read is refused before anything is embedded
    sentences = list(text or []) + (_sentences(source, 1, 24) if source is not None else [])
    kb, evicted = add_to_base(base, sentences)  # re-read and written under the base's lock
    console.print(f"{len(sentences)} added, {evicted} evicted: {len(kb)} entries in {printable(str(base))}")


@app.command("upgrade")
@fail_cleanly
def upgrade(base: Path = typer.Argument(..., help="The base's folder.")):
    """Convert a base written by an older semcom (format 1, its entries not hashed) once: its entries are
    checked and re-embedded against its stored vectors, then hashed with its index."""
    from semcom_cli.retrieval.kb import KB_FORMAT, upgrade_base

    kb, was = upgrade_base(base)
    where = printable(str(base))
    if was == KB_FORMAT:
        console.print(f"{where}: already format {KB_FORMAT}; nothing to do")
    else:
        console.print(f"{where}: format {was} → {KB_FORMAT} ({len(kb)} entries checked against their vectors)")


@app.command("info")
@fail_cleanly
def info(base: Path = typer.Argument(..., help="The base's folder."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Describe a base: kind, user, cap, entries, index, embedder."""
    from semcom_cli.retrieval import KnowledgeBase

    kb = KnowledgeBase.load(base)
    description = kb.describe() | {"newest": kb.entries[-3:][::-1]}
    if as_json:  # JSON escapes every control and non-ASCII character itself
        print_json(description)
        return
    for key in ("kind", "user", "cap", "count"):
        console.print(f"{key}: {printable(str(description[key]))}")
    settings = ", ".join(f"{key} {value}" for key, value in kb.index_settings.items() if key != "kind")
    console.print(f"index: {kb.index_settings['kind']}" + (f" ({settings})" if settings else ""))
    console.print(f"embedder: {printable(kb.embedder['name'])} (sha256 {kb.embedder['sha256'][:12]}…)")
    for entry in description["newest"]:
        console.print(f"  {printable(entry)}")


@app.command("query")
@fail_cleanly
def query(base: Path = typer.Argument(..., help="The base's folder."),
          text: str = typer.Argument(..., help="What to look up."),
          k: int = typer.Option(5, "--k", "-k", help="How many entries."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """The k entries nearest to a sentence (cosine of MiniLM embeddings)."""
    from semcom_cli.retrieval import KnowledgeBase

    kb = KnowledgeBase.load(base)
    hits = kb.query([text], k)[0]
    if as_json:
        print_json([{"score": round(s, 4), "text": t} for s, t in hits])
        return
    for score, entry in hits:
        print_out(f"{score:.3f}\t{printable(entry)}")
