"""Packages are found, not listed (a hand-kept list once missed six subpackages); the presets and the
shipped checkpoint, which live at the top of the repository, are added as the package's data folders
(pyproject.toml maps them to semcom_cli/_data/). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["semcom_cli", "semcom_cli.*"])
      + ["semcom_cli._data.presets", "semcom_cli._data.checkpoints"])
