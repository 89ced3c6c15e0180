"""Semantic-tensor files: safetensors with a typed header that says what the file is.

The safetensors metadata holds one key, ``semcom``, whose value is the :class:`Header`
as a JSON object with sorted keys (safetensors writes its metadata map in hash
order, which differs from run to run; one key keeps the same inputs giving the same
bytes). Fields that do not apply to a file are left out, not written as null.

Complex symbols are real tensors with a trailing dimension of 2 (real, imaginary).

Tensors by stage:

- ``encode``:   ``symbols`` [T, m, 2] channel input, average power 1 per complex symbol.
- ``transmit``: ``symbols`` [T, m, 2] channel output y = h·x + n, and ``gain`` [2],
  the block-fading coefficient h the receiver is assumed to know (1 for AWGN).

A *reconstruct* packet (:mod:`semcom_cli.reconstruct.imaging`) is a stream of complex symbols, [N, 1, 2] with N
its channel uses: the side information first (the ROI box; none without guidance), then each
patch's symbols in raster order; ``image`` says how it was coded (method, budget, roi_share,
side_uses; the referent the transmitter read from ``query``). A picture of another size than 64×64 is
sent as tiles of 64×64 (:mod:`semcom_cli.io.tiles`), their packets one after the other: ``image`` then
also holds the picture's ``size`` [width, height], the ``tiles`` grid [columns, rows] and each tile's
channel uses, ``tile_uses`` (raster order); ``budget`` and ``side_uses`` are per tile.

An image the vqa/caption encoder read at 64×64 from a file of another size records the file's
[width, height] in ``resized_from``.

A *variable-rate* packet (``encode --channel-uses``) says in ``copies`` how many times each token
is sent (0: left out, its symbols zero); its channel uses are ``m · Σ copies``. After ``transmit``
its ``symbols`` are the copies combined by maximum-ratio combining and ``gain`` is per symbol,
[T, m, 2] (:mod:`semcom_cli.channel.repetition`); ``rate`` records how the copies were chosen.

Every reader goes through :func:`read_semantic`, and a receiver checks the file
against its checkpoint with :func:`check_checkpoint`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from semcom_cli.channel import CHANNELS
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.files import atomic_write_bytes, read_input_bytes
from semcom_cli.core.limits import MAX_CHANNEL_USES, MAX_SYMBOLS_PER_TOKEN, MAX_TOKENS, check_snr_range
from semcom_cli.core.outputs import OutputKind
from semcom_cli.io.patches import GRID, HI_SYMBOLS, SIDE_USES_CHOICES, Box, allocate
from semcom_cli.io.tiles import MAX_TILES, TileGrid
from semcom_cli.tasks import get_task

__all__ = ["FORMAT", "FORMAT_VERSION", "SEMANTIC_OUTPUT", "looks_semantic", "Header", "SemanticFile", "read_semantic",
           "write_semantic", "encode_header", "check_checkpoint"]

FORMAT = "semcom-semantic"
FORMAT_VERSION = 1


def looks_semantic(path: Path) -> bool:
    """A safetensors file whose header names the semantic format (read: the header only)."""
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            return 0 < size <= (1 << 20) and f'\\"format\\":\\"{FORMAT}\\"'.encode() in fh.read(size)
    except OSError:
        return False


SEMANTIC_OUTPUT = OutputKind("semantic file", looks_semantic)

_HINTS = {"encode": "make it with 'semcom encode'",
          "transmit": "send it through 'semcom transmit' first (--channel none for a noiseless link)"}


class Header(BaseModel):
    """What a semantic file is. Stage and source fields are always there; the others by stage and role."""

    # strict: a field of the wrong JSON type ("2" for 2) is refused, not converted
    model_config = ConfigDict(extra="forbid", strict=True)

    stage: Literal["encode", "transmit"]
    task: str
    modality: str
    checkpoint: str
    checkpoint_hash: str
    source: str
    n_tokens: int
    symbols_per_token: int
    channel_uses: int
    role: Literal["private", "public"] = "private"
    user: Optional[int] = None  # whose file (for a received public file: whose copy)
    # set by transmit
    channel: Optional[str] = None
    snr_db: Optional[float] = None
    seed: Optional[int] = None
    rician_k: Optional[float] = None
    repeats: Optional[Union[int, list[int]]] = None
    # share sets (semcom_cli.link.share_set)
    share_id: Optional[str] = None
    share_plan: Optional[dict[str, Any]] = None
    power_scale: Optional[float] = None
    snr_floor_db: Optional[float] = None
    users: Optional[list[int]] = None
    n_users: Optional[int] = None
    sources: Optional[list[str]] = None
    token_indices: Optional[list[int]] = None
    # variable-rate packets (semcom_cli.link.rate)
    copies: Optional[list[int]] = None
    rate: Optional[dict[str, Any]] = None
    # reconstruct packets (semcom_cli.reconstruct.imaging): the user's query, and how the image was coded
    query: Optional[str] = None
    image: Optional[dict[str, Any]] = None
    # an image the task's encoder reads at 64×64, given at another size: [width, height] as given
    resized_from: Optional[list[int]] = None

    def received(self, **fields) -> "Header":
        """This header after ``transmit``: stage set and the channel's fields added."""
        return self.model_copy(update={"stage": "transmit", **fields})

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


@dataclass
class SemanticFile:
    """Tensors plus the header of one semantic file."""

    tensors: dict[str, torch.Tensor]
    header: Header

    def to_bytes(self) -> bytes:
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **self.header.to_json()}
        header = {"semcom": json.dumps(meta, sort_keys=True, separators=(",", ":"))}
        tensors = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in self.tensors.items()}
        return st_save(tensors, metadata=header)

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> "SemanticFile":
        if len(data) < 8:
            raise SemcomError(f"{source}: not a semcom file (empty or truncated)")
        header_len = int.from_bytes(data[:8], "little")
        if header_len <= 0 or 8 + header_len > len(data):
            raise SemcomError(f"{source}: not a safetensors file, or truncated")
        try:
            raw_header = json.loads(data[8 : 8 + header_len])
            tensors = st_load(data)
        except (ValueError, SafetensorError, UnicodeDecodeError, RecursionError):
            raise SemcomError(f"{source}: corrupted or truncated safetensors file") from None
        metadata = raw_header.get("__metadata__") if isinstance(raw_header, dict) else None
        raw = metadata.get("semcom") if isinstance(metadata, dict) else None
        if raw is None:
            raise SemcomError(f"{source}: a safetensors file, but not a semcom semantic file")
        try:
            meta = json.loads(raw)
        except (ValueError, TypeError, RecursionError):
            raise SemcomError(f"{source}: corrupted semcom metadata header") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            fmt = meta.get("format") if isinstance(meta, dict) else None
            raise SemcomError(f"{source}: not a semcom semantic file (format {fmt!r})")
        version = meta.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise SemcomError(f"{source}: semantic file format version {version} is not supported "
                              f"(this semcom reads version {FORMAT_VERSION})")
        meta.pop("format")
        if "symbols" not in tensors or tensors["symbols"].shape[-1:] != (2,):
            raise SemcomError(f"{source}: semantic file has no [..., 2] 'symbols' tensor")
        try:
            header = Header.model_validate(meta)
        except ValidationError as err:
            e = err.errors()[0]
            field = ".".join(str(p) for p in e["loc"])
            raise SemcomError(f"{source}: damaged header: field '{field}': {e['msg'][:120]}") from None
        sem = cls(tensors=tensors, header=header)
        check_semantic(sem, source)
        return sem

    def expect(self, stage: str, source: str) -> "SemanticFile":
        if self.header.stage != stage:
            raise SemcomError(f"{source}: this is a '{self.header.stage}' file; this stage needs a "
                              f"'{stage}' file ({_HINTS[stage]})")
        return self


@functools.lru_cache(maxsize=256)  # the same few budgets and shares, file after file
def _packet_lengths(budget: int, share: float, guided: bool, side_uses: int) -> frozenset[int]:
    """The channel uses an image packet of ``budget`` and ROI ``share`` can have: the allocation's, for every
    box the side information may carry (its length depends only on the box's patch count) and for none."""
    boxes = [None] + ([Box(0, 0, w - 1, h - 1) for w in range(1, GRID + 1) for h in range(1, GRID + 1) if w <= h]
                      if guided else [])
    return frozenset(allocate(budget, box, share, guided, side_uses).channel_uses for box in boxes)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_tiles(info: dict, channel_uses: int, lengths: frozenset[int], source: str) -> None:
    """A picture of another size than 64×64: its size, tile grid and each tile's channel uses agree."""
    size, tiles, tile_uses = info.get("size"), info.get("tiles"), info.get("tile_uses")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 1 for v in size)):
        raise SemcomError(f"{source}: the header's picture size {str(size)[:40]} is not [width, height] in pixels")
    grid = TileGrid(*size)
    if grid.count > MAX_TILES:
        raise SemcomError(f"{source}: a picture of {size[0]}×{size[1]} pixels is more than {MAX_TILES} tiles")
    if tiles != [grid.cols, grid.rows]:
        raise SemcomError(f"{source}: the header's tile grid {str(tiles)[:40]} is not the {grid.cols}×{grid.rows} "
                          f"tiles of 64×64 a {size[0]}×{size[1]} picture takes")
    if not (isinstance(tile_uses, list) and len(tile_uses) == grid.count and all(_is_int(n) for n in tile_uses)):
        raise SemcomError(f"{source}: the header's tile table does not give the channel uses of each of its "
                          f"{grid.count} tiles")
    if sum(tile_uses) != channel_uses:
        raise SemcomError(f"{source}: the header's tiles add up to {sum(tile_uses)} channel uses, not the "
                          f"{channel_uses} it holds")
    wrong = next((t for t, n in enumerate(tile_uses) if n not in lengths), None)
    if wrong is not None:
        raise SemcomError(f"{source}: tile {wrong}'s {tile_uses[wrong]} channel uses fit no packet of the header's "
                          f"image budget")


def _check_image_packet(sem: SemanticFile, source: str) -> None:
    h, symbols = sem.header, sem.tensors["symbols"]
    info = h.image or {}
    method, budget, share, side = (info.get(k) for k in ("method", "budget", "roi_share", "side_uses"))
    if (method not in ("importance", "uniform") or not _is_int(budget)
            or not isinstance(share, (int, float)) or not 0 < share < 1
            or not (side in SIDE_USES_CHOICES if method == "importance" else side == 0)):
        raise SemcomError(f"{source}: a reconstruct packet needs its 'image' header (method importance|uniform, "
                          f"budget, roi_share in (0, 1), side_uses)")
    tiled = any(k in info for k in ("size", "tiles", "tile_uses"))
    if not side + GRID * GRID <= budget <= GRID * GRID * HI_SYMBOLS or not (tiled or h.channel_uses <= budget):
        raise SemcomError(f"{source}: a budget of {budget} channel uses does not fit a 64×64 image packet")
    lengths = _packet_lengths(budget, float(share), method == "importance", side)
    if tiled:  # a picture of another size: one packet per 64×64 tile, one after the other
        _check_tiles(info, h.channel_uses, lengths, source)
    elif h.channel_uses not in lengths:
        raise SemcomError(f"{source}: the header's image budget ({budget} channel uses at ROI share {share:g}) "
                          f"disagrees with its {h.channel_uses} channel uses (no packet of that budget has them)")
    if symbols.dim() != 3 or list(symbols.shape) != [h.channel_uses, 1, 2] or h.n_tokens != h.channel_uses \
            or h.symbols_per_token != 1:
        raise SemcomError(f"{source}: a reconstruct packet is a stream of its channel uses, [{h.channel_uses}, 1, 2] "
                          f"(got {list(symbols.shape)})")
    if h.copies is not None or h.share_id is not None or h.resized_from is not None:
        raise SemcomError(f"{source}: a reconstruct packet has no copies, share set or resizing")


def _check_shape(sem: SemanticFile, source: str) -> None:
    h, symbols = sem.header, sem.tensors["symbols"]
    if set(sem.tensors) - {"symbols", "gain"}:
        raise SemcomError(f"{source}: unexpected tensors {sorted(set(sem.tensors) - {'symbols', 'gain'})}")
    if any(not t.is_floating_point() for t in sem.tensors.values()):
        raise SemcomError(f"{source}: tensors must be floating point")
    if h.task == "reconstruct":
        return _check_image_packet(sem, source)
    if h.image is not None or h.query is not None:
        raise SemcomError(f"{source}: 'image' and 'query' belong to reconstruct packets only")
    if h.resized_from is not None and (h.modality != "image" or len(h.resized_from) != 2
                                       or any(v < 1 for v in h.resized_from)):
        raise SemcomError(f"{source}: 'resized_from' is an image's [width, height] before the encoder resized it")
    if symbols.dim() != 3 or list(symbols.shape[:2]) != [h.n_tokens, h.symbols_per_token]:
        raise SemcomError(f"{source}: symbols of shape {list(symbols.shape)} disagree with the header "
                          f"({h.n_tokens} tokens × {h.symbols_per_token} symbols × 2)")
    if h.copies is not None:
        # a share set's file may send nothing (all its tokens reach the users by other files)
        if len(h.copies) != h.n_tokens or any(c < 0 for c in h.copies) or (sum(h.copies) < 1 and not h.share_id):
            raise SemcomError(f"{source}: the header's copies per token {str(h.copies)[:60]} do not fit "
                              f"{h.n_tokens} tokens (one count ≥ 0 each, at least one sent)")
        if sum(h.copies) * h.symbols_per_token > MAX_CHANNEL_USES:
            raise SemcomError(f"{source}: {sum(h.copies) * h.symbols_per_token:,} channel uses is beyond the limit "
                              f"of {MAX_CHANNEL_USES:,} per packet")
        if h.channel_uses != sum(h.copies) * h.symbols_per_token:
            raise SemcomError(f"{source}: the header's channel_uses ({h.channel_uses}) is not the copies sent × "
                              f"symbols per token")
    elif h.channel_uses != h.n_tokens * h.symbols_per_token:
        raise SemcomError(f"{source}: the header's channel_uses ({h.channel_uses}) is not tokens × symbols per token")
    if not 1 <= h.symbols_per_token <= MAX_SYMBOLS_PER_TOKEN or h.n_tokens > MAX_TOKENS:
        raise SemcomError(f"{source}: {h.n_tokens} tokens of {h.symbols_per_token} symbols is beyond the limits "
                          f"({MAX_TOKENS} tokens, {MAX_SYMBOLS_PER_TOKEN} symbols per token)")
    if h.n_tokens == 0 and h.share_id is None:
        raise SemcomError(f"{source}: holds no tokens")


def _per_symbol(channel: str | None) -> bool:
    """Whether the channel kind draws a gain per symbol (its file's gain is shaped like its symbols)."""

    kind = CHANNELS.get(channel or "")
    return bool(kind is not None and kind.per_symbol)


def _check_values(sem: SemanticFile, source: str) -> None:
    h = sem.header
    if not all(bool(torch.isfinite(t).all()) for t in sem.tensors.values()):
        raise SemcomError(f"{source}: holds non-finite values (inf or NaN)")
    if h.stage == "transmit":
        missing = [f for f in ("channel", "snr_db", "seed") if getattr(h, f) is None]
        gain = sem.tensors.get("gain")
        per_symbol = _per_symbol(h.channel) or h.copies is not None  # combined copies: a gain per symbol
        shape = tuple(sem.tensors["symbols"].shape) if per_symbol else (2,)
        if missing or gain is None or tuple(gain.shape) != shape:
            raise SemcomError(f"{source}: a received file needs its channel, snr_db, seed and a "
                              f"{list(shape)} 'gain' tensor")
        check_snr_range(h.snr_db)
        if float(gain.double().pow(2).sum()) == 0.0 and not (h.copies is not None and sum(h.copies) == 0):
            raise SemcomError(f"{source}: the channel gain is zero: nothing of the signal arrived")
    elif "gain" in sem.tensors:
        raise SemcomError(f"{source}: an encoded file has no 'gain' tensor")
    if h.stage == "encode" and h.copies is not None and h.share_id is not None:
        if bool(sem.tensors["symbols"][torch.tensor(h.copies, dtype=torch.long) == 0].abs().sum() > 0):
            raise SemcomError(f"{source}: a token with 0 copies holds symbols")
    if h.stage == "encode" and h.share_id is None:  # a single packet is sent at average power 1
        symbols = sem.tensors["symbols"].double()
        if h.copies is not None:  # the tokens sent; a left-out token is all zeros
            sent = torch.tensor(h.copies) > 0
            if bool(symbols[~sent].abs().sum() > 0):
                raise SemcomError(f"{source}: a token with 0 copies holds symbols")
            symbols = symbols[sent]
        power = float(symbols.pow(2).sum(-1).mean())
        if abs(power - 1.0) > 0.01:
            raise SemcomError(f"{source}: average power {power:.4g} per complex symbol, not 1 as encode writes")


def check_semantic(sem: SemanticFile, source: str) -> None:
    """The one validation every reader goes through: the header agrees with the tensors, values are
    finite, sizes are within the limits, and the task is one this semcom knows."""

    _check_shape(sem, source)
    _check_values(sem, source)
    try:
        get_task(sem.header.task)
    except SemcomError:
        raise SemcomError(f"{source}: made for task '{sem.header.task}', which this semcom does not know") from None


def read_semantic(path: str, stage: str | None = None) -> SemanticFile:
    """Read and check a semantic file (``-``: stdin); with ``stage``, refuse a file of another stage."""
    data, name = read_input_bytes(path, "semantic")
    sem = SemanticFile.from_bytes(data, name)
    return sem.expect(stage, name) if stage else sem


def write_semantic(path: str | Path, sem: SemanticFile) -> None:
    atomic_write_bytes(path, sem.to_bytes())


def encode_header(task, model, source: str, symbols: torch.Tensor, **fields) -> Header:
    """The header of an encoded packet of ``symbols`` [T, m, 2]: a single file, or (with the share
    fields) one file of a share set, or (with ``copies``) a variable-rate packet."""
    n, m = int(symbols.shape[0]), int(symbols.shape[1])
    sent = sum(fields["copies"]) if fields.get("copies") is not None else n
    return Header(stage="encode", task=task.name, modality=task.modality, checkpoint=model.name,
                  checkpoint_hash=model.hash, source=source, n_tokens=n, symbols_per_token=m,
                  channel_uses=sent * m, **fields)


def check_checkpoint(header: Header, model, source: str) -> None:
    """Refuse a file encoded with another checkpoint than ``model``'s, symbols it cannot decode, more tokens
    than the checkpoint ever sends in one packet, and a task it was not trained for."""
    if header.checkpoint_hash != model.hash:
        raise SemcomError(f"{source} was encoded with checkpoint {header.checkpoint} "
                          f"({header.checkpoint_hash[:12]}…), not {model.name} ({model.hash[:12]}…)")
    if header.symbols_per_token != model.symbols_per_token:
        raise SemcomError(f"{source}: {header.symbols_per_token} symbols per token do not fit this checkpoint "
                          f"({model.symbols_per_token})")

    try:
        model.check_task(get_task(header.task))
    except SemcomError as err:
        raise SemcomError(f"{source}: {err}") from None
    most = model.most_tokens(get_task(header.task).modality)
    if header.role != "public" and header.n_tokens > most:
        raise SemcomError(f"{source}: {header.n_tokens} tokens; checkpoint {model.name} sends at most {most} "
                          f"per packet")
