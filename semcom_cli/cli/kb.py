"""Knowledge bases for retrieval at the receiver: build, add to, describe and query them.

A base is a folder (index.faiss + kb.json, no pickle) of sentences embedded with the bundled MiniLM.
``--from corpus:global`` / ``corpus:local:U`` / ``corpus:neither`` take the sentence corpus's seeded
split (the one ``semcom evaluate --method rag`` measures on); ``--from FILE`` takes one sentence a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semcom_cli.cli.common import console, fail_cleanly, print_json, spinner

NAME = "kb"
app = typer.Typer(name=NAME, help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


def _sentences(source: str, users: int, max_tokens: int) -> list[str]:
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.core.files import read_input_bytes

    if source.startswith("corpus:"):
        from semcom_cli.config.preset import Backbone
        from semcom_cli.data.corpus import split_corpus
        from semcom_cli.models.llm import backbone_identity

        parts = source.split(":")
        _, _, tokenizer, _ = backbone_identity(Backbone())
        split = split_corpus(tokenizer, max_tokens, users)
        if parts[1:] == ["global"]:
            return split.global_base
        if parts[1:] == ["neither"]:
            return split.neither
        if len(parts) == 3 and parts[1] == "local" and parts[2].isdigit() and int(parts[2]) < users:
            return split.local[int(parts[2])]
        raise SemcomError(f"--from {source}: choose corpus:global, corpus:neither or corpus:local:U "
                          f"(U from 0 to {users - 1})")
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
    users: int = typer.Option(8, "--users", help="corpus: how many users the split has."),
    max_tokens: int = typer.Option(24, "--max-tokens", help="corpus: the longest sentence kept, in LLM tokens "
                                                            "(the checkpoint's data.max_text_tokens)."),
):
    """Build a knowledge base from sentences."""
    from semcom_cli.core.outputs import check_output
    from semcom_cli.retrieval import KnowledgeBase

    check_output(output, [source if not source.startswith("corpus:") else None], folder=True)
    if output.exists() and not (output / "kb.json").is_file():
        from semcom_cli.core.errors import SemcomError

        raise SemcomError(f"{output}: exists and is not a knowledge base; refusing to overwrite it")
    kb = KnowledgeBase(kind, user, cap)
    with spinner("embedding the entries"):
        sentences = _sentences(source, users, max_tokens)
        evicted = kb.add(sentences)
    kb.save(output)
    console.print(f"{len(kb)} entries → {output}" + (f" ({evicted} oldest evicted by --cap {cap})" if evicted else ""))


@app.command("add")
@fail_cleanly
def add(
    base: Path = typer.Argument(..., help="The base's folder."),
    text: Optional[list[str]] = typer.Option(None, "--text", "-t", help="A sentence to add (repeatable)."),
    source: Optional[str] = typer.Option(None, "--from", help="A file of sentences, one a line."),
):
    """Add sentences to a base (past its cap the oldest are evicted)."""
    from semcom_cli.core.errors import SemcomError
    from semcom_cli.retrieval import KnowledgeBase

    if not text and source is None:
        raise SemcomError("give --text SENTENCE or --from FILE")
    kb = KnowledgeBase.load(base)
    sentences = list(text or []) + (_sentences(source, 1, 24) if source is not None else [])
    evicted = kb.add(sentences)
    kb.save(base)
    console.print(f"{len(sentences)} added, {evicted} evicted: {len(kb)} entries in {base}")


@app.command("info")
@fail_cleanly
def info(base: Path = typer.Argument(..., help="The base's folder."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Describe a base: kind, user, cap, entries, embedder."""
    from semcom_cli.retrieval import KnowledgeBase

    kb = KnowledgeBase.load(base)
    description = kb.describe() | {"newest": kb.entries[-3:][::-1]}
    if as_json:
        print_json(description)
        return
    for key in ("kind", "user", "cap", "count"):
        console.print(f"{key}: {description[key]}")
    console.print(f"embedder: {kb.embedder['name']} (sha256 {kb.embedder['sha256'][:12]}…)")
    for entry in description["newest"]:
        console.print(f"  {entry}")


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
        print(f"{score:.3f}\t{entry}")
