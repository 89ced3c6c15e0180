"""A reconstruct stage in progress (``<output>.partial/state.safetensors``), so ``--resume`` continues
it exactly: the networks' weights and the optimiser's moments as tensors, the step, settings,
optimiser hyper-parameters and schedule as JSON in the header. Each step draws its batch and noise
from generators seeded by (seed, step), so nothing else needs keeping.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes

__all__ = ["TrainState", "save_state", "load_state", "STATE_FILE"]

STATE_FILE = "state.safetensors"


class TrainState:
    """What a loop needs to go on from ``step``: weights by module name, optimiser and schedule states."""

    def __init__(self, step: int, modules: dict, optimiser: dict, schedule: dict, settings: dict):
        self.step, self.modules, self.optimiser = step, modules, optimiser
        self.schedule, self.settings = schedule, settings


def save_state(folder: Path, stage: str, step: int, modules: dict[str, torch.nn.Module], optimiser, schedule,
               settings: dict) -> None:
    tensors = {f"module.{name}.{k}": v.detach().cpu().contiguous() for name, m in modules.items()
               for k, v in m.state_dict().items()}
    opt = optimiser.state_dict()
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            tensors[f"optimiser.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    header = {"format": "semcom-reconstruct-partial", "stage": stage, "step": step, "settings": settings,
              "param_groups": opt["param_groups"],
              "schedule": {k: v for k, v in schedule.state_dict().items() if not callable(v)}}
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(folder) / STATE_FILE, save(tensors, metadata={"semcom": json.dumps(header)}))


def load_state(folder: Path, stage: str) -> TrainState:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise SemcomError(f"{folder}: no partial run to resume (no {STATE_FILE})")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {})["semcom"])
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, ValueError, OSError, KeyError) as err:
        raise SemcomError(f"{path}: corrupted ({str(err).splitlines()[0][:100]})") from None
    if header.get("format") != "semcom-reconstruct-partial" or header.get("stage") != stage:
        raise SemcomError(f"{path}: not a partial run of stage {stage}")
    modules: dict[str, dict] = {}
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        kind, rest = name.split(".", 1)
        if kind == "module":
            module, key = rest.split(".", 1)
            modules.setdefault(module, {})[key] = value
        else:
            index, key = rest.split(".", 1)
            state.setdefault(int(index), {})[key] = value
    optimiser = {"state": state, "param_groups": header["param_groups"]}
    return TrainState(int(header["step"]), modules, optimiser, header["schedule"], header["settings"])
