"""The one exception type the CLI turns into a single line on stderr."""

import unicodedata

__all__ = ["SemcomError", "one_line"]

MAX_MESSAGE_CHARS = 300
# the bidi embeddings, overrides and isolates: they would make a message read in another order than it is
_BIDI = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one printable line: control and line-separator characters (which a file name, a
    preset key or a header field may carry) are shown escaped, and the line is cut to ``limit``."""
    def shown(ch: str) -> str:
        unsafe = unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") or ch in _BIDI
        return ch.encode("unicode_escape", "backslashreplace").decode("ascii") if unsafe else ch

    line = "".join(shown(ch) for ch in str(text))
    return line if len(line) <= limit else line[: limit - 1] + "…"


class SemcomError(Exception):
    """A user-facing problem (bad file, bad parameter). Its message is always one short line,
    whatever user data was formatted into it."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))
