"""Showing stored text on a terminal: what a file says is printed, never obeyed.

A knowledge base's entries, a user name or a header field come from files anyone may have written.
Printed raw, an ESC sequence in them can move the cursor, retitle the window, rewrite earlier lines
or hide text; a bidi override can make a line read in another order than it is stored. semcom shows
such text through :func:`printable`.
"""

from __future__ import annotations

import re

__all__ = ["is_printable", "printable"]

# Characters a terminal acts on instead of showing: C0 controls (ESC among them), DEL, C1 controls
# (CSI, OSC, … as single code points), the line and paragraph separators, the bidi embeddings,
# overrides and isolates, and lone surrogates (which no terminal encoding can carry).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: each control character (C0 incl. tab, newline and ESC,
    DEL, C1), line/paragraph separator, bidi embedding/override/isolate and lone surrogate is shown
    as a visible escape (``\\x1b``, ``\\u202e``); every other character, ordinary Unicode included
    (accents, CJK, emoji), is kept as it is. The result is always one line."""
    return _UNSAFE.sub(_escaped, str(text))


def is_printable(text: str) -> bool:
    """Whether :func:`printable` would leave ``text`` as it is."""
    return _UNSAFE.search(str(text)) is None
