"""semcom: LLM-based semantic communication over simulated wireless channels.

The library works without the CLI: build a :class:`~semcom_cli.pipeline.SemcomModel`
from a checkpoint, then ``encode`` → ``transmit`` → ``decode``.
"""

__version__ = "0.1.0"

from .errors import SemcomError  # noqa: E402

__all__ = ["__version__", "SemcomError"]
