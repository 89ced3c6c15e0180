"""The one exception type the CLI turns into a single line on stderr."""

__all__ = ["SemcomError"]


class SemcomError(Exception):
    """A user-facing problem (bad file, bad parameter). The message is one line."""
