"""Query guidance (MLLM-SC, issue 16): the LLM reads the user's query, a network marks the image
region it refers to.

- :mod:`.query`: the query's hidden states from the LLM.
- :mod:`.model`: the guidance network (patches attend to the query) and the patch map.
- :mod:`.train`: its training loop and the IoU measure.
"""

from .model import GuidanceNet, iou, patch_map
from .query import QueryReader

__all__ = ["GuidanceNet", "iou", "patch_map", "QueryReader"]
