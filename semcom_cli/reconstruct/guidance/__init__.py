"""Query guidance (MLLM-SC): the LLM reads the user's query, the image is searched for
what it refers to, and the result is an importance map over the image's patches.

- :mod:`.query`: the query's hidden states from the LLM.
- :mod:`.referent`: from those states to the referent (colour, shape, where, size).
- :mod:`.model`: the image network that marks the referent, the patch map, IoU.
- :mod:`.guide`: the three in a row.
- :mod:`.train`: training both parts, and the IoU measure.
"""

from semcom_cli.reconstruct.guidance.guide import Guide
from semcom_cli.reconstruct.guidance.model import GuidanceNet, iou, patch_map
from semcom_cli.reconstruct.guidance.query import QueryReader
from semcom_cli.reconstruct.guidance.referent import ReferentParser

__all__ = ["Guide", "GuidanceNet", "iou", "patch_map", "QueryReader", "ReferentParser"]
