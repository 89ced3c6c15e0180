"""The assembled system: the :class:`SemcomModel` a preset builds from :mod:`semcom_cli.models`' parts,
and the checkpoint folder it is saved in and loaded from (:mod:`.checkpoint`)."""

from semcom_cli.system.semcom import SemcomModel

__all__ = ["SemcomModel"]
