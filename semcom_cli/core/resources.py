"""Where the presets and the shipped checkpoint are found.

Search order, first match wins:

1. the source tree: ``presets/`` and ``checkpoints/`` beside the ``semcom_cli``
   package (a checkout, or an editable install);
2. the installed package: a wheel carries both as ``semcom_cli/_data/presets`` and
   ``semcom_cli/_data/checkpoints`` (``pyproject.toml`` maps them there).

A preset or checkpoint given as a path is used as it is.
"""

from __future__ import annotations

from pathlib import Path

from semcom_cli.core.errors import SemcomError

__all__ = ["presets_dir", "default_checkpoint", "DEFAULT_CHECKPOINT_NAME"]

DEFAULT_CHECKPOINT_NAME = "semcom-smollm2"
_PACKAGE = Path(__file__).resolve().parents[1]  # semcom_cli/


# a file each folder must hold, so an unrelated folder of the same name beside the package is passed over
_MARKERS = {"presets": "smollm2.yaml", "checkpoints": f"{DEFAULT_CHECKPOINT_NAME}/manifest.json"}


def _find(name: str) -> Path:
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_data" / name):
        if (candidate / _MARKERS[name]).is_file():
            return candidate
    raise SemcomError(f"semcom's {name}/ folder is missing: looked in {_PACKAGE.parent / name} and "
                      f"{_PACKAGE / '_data' / name} (reinstall semcom)")


def presets_dir() -> Path:
    return _find("presets")


def default_checkpoint() -> Path:
    """The shipped checkpoint folder."""
    return _find("checkpoints") / DEFAULT_CHECKPOINT_NAME
