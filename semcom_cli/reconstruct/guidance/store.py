"""The guide's parts in a reconstruct checkpoint (the one checkpoint layout, :mod:`semcom_cli.io.checkpoint`):
``guide_net/`` (the image network that marks the referent), ``referent_parser/`` (the parser of
SmolLM2's reading of a query) and ``presence_check/`` (is what was marked the referent), with the training
settings, the query layer and the thresholds of "unknown" and "not found" (``guide_thresholds``, measured
on validation queries and scenes) in the manifest."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from semcom_cli.config.base import BatchSize, LearningRate, Seed, StageSettings, Steps, settings_from
from semcom_cli.core.errors import SemcomError
from semcom_cli.data.scenes.readings import reading_set
from semcom_cli.io.checkpoint import load_part, part_config, save_part
from semcom_cli.reconstruct.guidance.calibrate import calibrate_guide
from semcom_cli.reconstruct.guidance.guide import Guide, GuideThresholds
from semcom_cli.reconstruct.guidance.model import GuidanceNet
from semcom_cli.reconstruct.guidance.presence import PresenceCheck, PresenceTrain, presence_config, train_presence
from semcom_cli.reconstruct.guidance.query import QueryReader
from semcom_cli.reconstruct.guidance.referent import ParserTrain, ReferentParser, train_parser
from semcom_cli.reconstruct.guidance.train import GuidanceTrain, train_guidance
from semcom_cli.training.memory import MemoryNeed

__all__ = ["GUIDE_PARTS", "train_guide", "train_reading", "save_guide", "load_guide", "net_config", "parser_config",
           "guidance_settings", "guide_manifest", "PARSER_VERSION", "GuideChecksTrain", "CHECK_PARTS", "train_checks",
           "save_checks"]

GUIDE_PARTS = ("guide_net", "referent_parser", "presence_check")
CHECK_PARTS = ("referent_parser", "presence_check")  # what stage guide-checks trains
PARSER_SCENES = 800    # training scenes whose queries teach the parser
PARSER_OUTSIDE = 2500  # unreadable queries beside them
PARSER_VERSION = 2     # 2: the parser can say a value is outside its words and tag unread words


def net_config(cfg: GuidanceTrain) -> dict:
    return {"width": cfg.width}


def parser_config(query_dim: int) -> dict:
    return {"query_dim": query_dim, "version": PARSER_VERSION}


def guidance_settings(manifest: dict) -> GuidanceTrain:
    """The guide's training settings as the manifest records them."""
    return settings_from(GuidanceTrain, manifest["guidance"], "manifest: guidance", known_only=True)


class GuideChecksTrain(StageSettings):
    """The guide's two checks: the parser (``steps``, ``batch_size``, ``lr``) and the presence check."""

    steps: Steps = 1500
    batch_size: BatchSize = 64
    lr: LearningRate = 2e-3
    presence_steps: Steps = 3500
    presence_batch_size: BatchSize = 128
    presence_scenes: int = Field(3000, ge=10, le=100_000)
    presence_guide_scenes: int = Field(1000, ge=0, le=100_000)
    seed: Seed = 0

    @property
    def total_steps(self) -> int:
        return self.steps + self.presence_steps

    def parser(self) -> ParserTrain:
        return ParserTrain(steps=self.steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed)

    def presence(self) -> PresenceTrain:
        return PresenceTrain(steps=self.presence_steps, batch_size=self.presence_batch_size,
                             scenes=self.presence_scenes, guide_scenes=self.presence_guide_scenes, seed=self.seed)

    def memory(self) -> MemoryNeed:
        return max((self.parser().memory(), self.presence().memory()), key=lambda m: m.total)  # one after the other


def train_reading(reader: QueryReader, cfg: ParserTrain | None = None, on_log=None) -> ReferentParser:
    """The parser on the training split's labelled queries (a few minutes: the LLM reads each once)."""
    cfg = cfg or ParserTrain()
    return train_parser(reader, reading_set("train", PARSER_SCENES, PARSER_OUTSIDE, seed=cfg.seed), cfg.steps,
                        cfg.batch_size, cfg.lr, cfg.seed, on_log)


def train_checks(reader: QueryReader, net: GuidanceNet, cfg: GuideChecksTrain, on_log=None
                 ) -> tuple[Guide, dict]:
    """The parser, then the presence check on the image network's maps, then both thresholds measured on
    validation → (the guide, what calibrated it)."""
    parser = train_reading(reader, cfg.parser(), on_log)
    guide = Guide(reader, parser, net)
    after = (lambda step, loss, seconds: on_log(cfg.steps + step, loss, seconds)) if on_log else None
    guide.check = train_presence(cfg.presence(), guide.mark, after)
    guide.thresholds, measured = calibrate_guide(guide)
    return guide, measured


def train_guide(llm, cfg: GuidanceTrain, on_log=None, checkpointing=None) -> tuple[Guide, dict]:
    """The parser, the image network (the long part, whose partial runs ``checkpointing`` keeps and
    resumes: :func:`.train.train_guidance`), then the thresholds measured on validation → (the
    guide, what calibrated it)."""
    net = train_guidance(cfg, on_log=on_log, checkpointing=checkpointing)
    return train_checks(QueryReader(llm), net, GuideChecksTrain(seed=cfg.seed))


def guide_manifest(guide: Guide, measured: dict) -> dict:
    """The manifest entries of a guide's reading: its query layer, thresholds and their calibration."""
    return {"query_layer": guide.reader.layer,
            "guide_thresholds": {**guide.thresholds.model_dump(mode="json"), "calibration": measured}}


def save_guide(folder: Path, guide: Guide, cfg: GuidanceTrain) -> None:
    """The guide's two parts into ``folder``."""
    save_part(Path(folder), "guide_net", guide.net, net_config(cfg))
    save_checks(folder, guide)


def save_checks(folder: Path, guide: Guide) -> None:
    """The guide's parser and presence check into ``folder``."""
    save_part(Path(folder), "referent_parser", guide.parser, parser_config(guide.reader.dim))
    save_part(Path(folder), "presence_check", guide.check, presence_config())


def load_guide(folder: Path, manifest: dict, llm) -> Guide:
    folder = Path(folder)
    if "guidance" not in manifest or not all((folder / name).is_dir() for name in GUIDE_PARTS[:2]):
        raise SemcomError(f"{folder}: holds no guide (a reconstruct checkpoint has one: 'make checkpoint-scenes')")
    try:
        cfg = guidance_settings(manifest)
        layer = int(manifest["query_layer"])
    except (KeyError, TypeError, ValueError) as err:
        raise SemcomError(f"{folder}/manifest.json: the guide's settings are damaged ({err})") from None
    net, parser = GuidanceNet(cfg.width), ReferentParser(llm.embed_dim)
    load_part(folder, "guide_net", net, net_config(cfg))
    if (part_config(folder, "referent_parser").get("version") != PARSER_VERSION
            or not (folder / "presence_check").is_dir()):
        raise SemcomError(f"{folder}: its guide predates 'unknown' and 'not found' (it reads every query as "
                          f"something and marks it); retrain its checks: semcom finetune --stage guide-checks "
                          f"-c {folder} -o OUT")
    load_part(folder, "referent_parser", parser, parser_config(llm.embed_dim))
    check = PresenceCheck()
    load_part(folder, "presence_check", check, presence_config())
    check.eval()
    net.eval()
    parser.eval()
    try:
        stored = {k: v for k, v in manifest.get("guide_thresholds", {}).items() if k != "calibration"}
        thresholds = GuideThresholds(**stored)
    except (TypeError, ValueError) as err:
        raise SemcomError(f"{folder}/manifest.json: the guide's thresholds are damaged ({str(err).splitlines()[0]})") \
            from None
    return Guide(QueryReader(llm, layer=layer), parser, net, thresholds, check)
