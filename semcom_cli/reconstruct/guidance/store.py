"""The guide's parts in a reconstruct checkpoint (the one checkpoint layout, :mod:`semcom_cli.io.checkpoint`):
``guide_net/`` (the image network that marks the referent) and ``referent_parser/`` (the parser of
SmolLM2's reading of a query), with the training settings and the query layer in the manifest."""

from __future__ import annotations

from pathlib import Path

from semcom_cli.config.base import settings_from
from semcom_cli.core.errors import SemcomError
from semcom_cli.io.checkpoint import load_part, save_part
from semcom_cli.reconstruct.guidance.guide import Guide
from semcom_cli.reconstruct.guidance.model import GuidanceNet
from semcom_cli.reconstruct.guidance.query import QueryReader
from semcom_cli.reconstruct.guidance.referent import ReferentParser, train_parser
from semcom_cli.reconstruct.guidance.train import GuidanceTrain, query_pairs, train_guidance

__all__ = ["GUIDE_PARTS", "train_guide", "save_guide", "load_guide", "net_config", "parser_config",
           "guidance_settings"]

GUIDE_PARTS = ("guide_net", "referent_parser")
PARSER_SCENES = 800  # training scenes whose queries teach the parser


def net_config(cfg: GuidanceTrain) -> dict:
    return {"width": cfg.width}


def parser_config(query_dim: int) -> dict:
    return {"query_dim": query_dim}


def guidance_settings(manifest: dict) -> GuidanceTrain:
    """The guide's training settings as the manifest records them."""
    return settings_from(GuidanceTrain, manifest["guidance"], "manifest: guidance", known_only=True)


def train_guide(llm, cfg: GuidanceTrain, on_log=None, checkpointing=None) -> Guide:
    """The parser (seconds) and the image network (the long part, whose partial runs ``checkpointing``
    keeps and resumes: :func:`.train.train_guidance`)."""
    reader = QueryReader(llm)
    texts, referents = query_pairs("train", PARSER_SCENES)
    parser = train_parser(reader, texts, referents, seed=cfg.seed)
    net = train_guidance(cfg, on_log=on_log, checkpointing=checkpointing)
    return Guide(reader, parser, net)


def save_guide(folder: Path, guide: Guide, cfg: GuidanceTrain) -> None:
    """The guide's two parts into ``folder``."""
    save_part(Path(folder), "guide_net", guide.net, net_config(cfg))
    save_part(Path(folder), "referent_parser", guide.parser, parser_config(guide.reader.dim))


def load_guide(folder: Path, manifest: dict, llm) -> Guide:
    folder = Path(folder)
    if "guidance" not in manifest or not all((folder / name).is_dir() for name in GUIDE_PARTS):
        raise SemcomError(f"{folder}: holds no guide (a reconstruct checkpoint has one: 'make checkpoint-scenes')")
    try:
        cfg = guidance_settings(manifest)
        layer = int(manifest["query_layer"])
    except (KeyError, TypeError, ValueError) as err:
        raise SemcomError(f"{folder}/manifest.json: the guide's settings are damaged ({err})") from None
    net, parser = GuidanceNet(cfg.width), ReferentParser(llm.embed_dim)
    load_part(folder, "guide_net", net, net_config(cfg))
    load_part(folder, "referent_parser", parser, parser_config(llm.embed_dim))
    net.eval()
    parser.eval()
    return Guide(QueryReader(llm, layer=layer), parser, net)
