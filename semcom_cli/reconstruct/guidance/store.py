"""The guide's weights on disk: ``guidance.safetensors`` (image network ``net.*`` and parser
``parser.*``) with its settings in the file's metadata, beside the LLM it reads queries with."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from semcom_cli.core.errors import SemcomError
from semcom_cli.reconstruct.guidance.guide import Guide
from semcom_cli.reconstruct.guidance.model import GuidanceNet
from semcom_cli.reconstruct.guidance.query import QueryReader
from semcom_cli.reconstruct.guidance.referent import ReferentParser, train_parser
from semcom_cli.reconstruct.guidance.train import GuidanceTrain, query_pairs, train_guidance

__all__ = ["GUIDE_FILE", "train_guide", "save_guide", "load_guide"]

GUIDE_FILE = "guidance.safetensors"
PARSER_SCENES = 800  # training scenes whose queries teach the parser


def train_guide(llm, cfg: GuidanceTrain, on_log=None, **loop) -> Guide:
    """The parser (seconds) and the image network (the long part; ``loop``: partial-run arguments of
    :func:`.train.train_guidance`)."""
    reader = QueryReader(llm)
    texts, referents = query_pairs("train", PARSER_SCENES)
    parser = train_parser(reader, texts, referents, seed=cfg.seed)
    net = train_guidance(cfg, on_log=on_log, **loop)
    return Guide(reader, parser, net)


def save_guide(folder: Path, guide: Guide, cfg: GuidanceTrain) -> Path:
    tensors = {f"net.{k}": v.contiguous() for k, v in guide.net.state_dict().items()}
    tensors |= {f"parser.{k}": v.contiguous() for k, v in guide.parser.state_dict().items()}
    meta = {"settings": asdict(cfg), "query_layer": guide.reader.layer}
    path = Path(folder) / GUIDE_FILE
    tmp = path.with_suffix(".partial")
    save_file(tensors, str(tmp), metadata={"semcom": json.dumps(meta, sort_keys=True)})
    tmp.replace(path)
    return path


def load_guide(folder: Path, llm) -> Guide:
    path = Path(folder) / GUIDE_FILE
    if not path.is_file():
        raise SemcomError(f"{folder}: no {GUIDE_FILE} (a reconstruct checkpoint has one: 'make checkpoint-scenes')")
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {})["semcom"])
        tensors = load_file(str(path))
        cfg = GuidanceTrain(**meta["settings"])
        net, parser = GuidanceNet(cfg.width), ReferentParser(llm.embed_dim)
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        parser.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("parser.")})
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        raise SemcomError(f"{path}: not a guide's weights, or damaged ({str(err).splitlines()[0][:100]})") from None
    net.eval()
    parser.eval()
    return Guide(QueryReader(llm, layer=int(meta["query_layer"])), parser, net)
