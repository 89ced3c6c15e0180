"""Limits no real input meets, and the checks of user-given strings and paths.

Every limit is refused in one line (docs/errors.md). They bound the
work and memory a single command can be made to spend, and keep values in the
range where the arithmetic stays finite.
"""

from __future__ import annotations

import math
import re

from semcom_cli.core.errors import SemcomError

__all__ = ["MAX_BYTES", "MAX_IMAGE_PIXELS", "MAX_QUESTION_CHARS", "MAX_SENTENCE_CHARS", "MAX_TOKENS",
           "MAX_SYMBOLS_PER_TOKEN", "MAX_CHANNEL_USES", "SNR_RANGE_DB", "MAX_SEED", "check_question",
           "check_sentence", "check_seed", "check_snr_range"]

MiB = 1 << 20
# bytes read at most from one input, by kind (a stdin or a device counts the same)
MAX_BYTES = {"semantic": 64 * MiB, "image": 32 * MiB, "text": 1 * MiB, "json": 64 * MiB, "preset": 256 * 1024,
             "manifest": 1 * MiB}
MAX_IMAGE_PIXELS = 4096 * 4096   # an image is read at 64×64; larger ones are refused before decoding
MAX_QUESTION_CHARS = 500
MAX_SENTENCE_CHARS = 2000        # and at most the checkpoint's data.max_text_tokens tokens
MAX_TOKENS = 1024                # semantic tokens in one file
MAX_SYMBOLS_PER_TOKEN = 512
MAX_CHANNEL_USES = 65536         # per packet, for the baselines' budgets (the shipped codec uses 16)
SNR_RANGE_DB = (-100.0, 100.0)   # beyond it the noise or the signal leaves float32's range
MAX_SEED = 2**32 - 1             # Sionna's and NumPy's generators take seeds in [0, 2³² − 1]

# Strings the instruction template and SmolLM2's chat template give a meaning: a question holding
# one would splice text where the semantic tokens go, or end the user's turn early.
_RESERVED = re.compile(r"<sem>|<\|[^|<>\s]*\|>", re.IGNORECASE)


def check_question(text: str) -> str:
    """A question as the user typed it: bounded, printable, and free of the templates' markers."""
    if len(text) > MAX_QUESTION_CHARS:
        raise SemcomError(f"the question has {len(text):,} characters; at most {MAX_QUESTION_CHARS} are accepted")
    found = _RESERVED.search(text)
    if found:
        raise SemcomError(f"the question contains {found.group(0)!r}, which the prompt template reserves")
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        raise SemcomError("the question contains control characters")
    return text


def check_sentence(text: str) -> str:
    if len(text) > MAX_SENTENCE_CHARS:
        raise SemcomError(f"the sentence has {len(text):,} characters; at most {MAX_SENTENCE_CHARS} are accepted")
    return text


def check_seed(seed: int, what: str = "seed") -> int:
    if not 0 <= int(seed) <= MAX_SEED:
        raise SemcomError(f"{what} must be in [0, {MAX_SEED}] (got {seed})")
    return int(seed)


def check_snr_range(snr_db: float) -> float:
    low, high = SNR_RANGE_DB
    if not (math.isfinite(snr_db) and low <= snr_db <= high):
        raise SemcomError(f"SNR must be a finite number of dB in [{low:g}, {high:g}] (got {snr_db!r})")
    return snr_db
