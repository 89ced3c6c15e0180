"""semcom: LLM-based semantic communication over simulated wireless channels.

The library works without the CLI: ``SemcomModel.from_pretrained()`` (``semcom_cli.models``) loads a
checkpoint; ``transmitter.encode_single`` → ``link.transmit_file`` → ``receiver.decode_file`` are the
three stages on semantic files, and ``evaluation.run_sweep`` measures a whole evaluation plan.
"""

__version__ = "0.1.0"

from semcom_cli.core.errors import SemcomError  # noqa: E402

__all__ = ["__version__", "SemcomError"]
