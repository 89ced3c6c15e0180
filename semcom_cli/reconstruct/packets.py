"""Reconstruct packets as semantic files, and images as PNG bytes: what ``encode``/``decode`` call."""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo
from torch.nn.functional import avg_pool2d

from semcom_cli.channel import gain_from_real
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import check_question
from semcom_cli.io.patches import IMAGE_SIZE, PATCH, Box, check_budget, check_roi_share, roi_box
from semcom_cli.io.semantic import Header, SemanticFile
from semcom_cli.io.tiles import (
    TileGrid,
    cut_tiles,
    pad_to_tiles,
    patch_importance,
    picture_box,
    stitch_tiles,
    tile_grid,
    tile_layout,
)
from semcom_cli.reconstruct.generative.decoder import (
    DOUBT_SAMPLES,
    check_budget_ms,
    check_decoder,
    check_steps,
    embed_queries,
)
from semcom_cli.reconstruct.generative.denoiser import QUERY_DIM
from semcom_cli.reconstruct.imaging.pipeline import (
    METHODS,
    decode_streams,
    decode_streams_generative,
    encode_images,
    guide_picture,
    tile_boxes,
)

# tiles through the encoder at once: a picture of many tiles in batches of bounded memory
_TILE_BATCH = 64

__all__ = ["encode_image_file", "decode_image_file", "png_bytes", "map_png_bytes", "check_query", "read_map"]


def check_query(query: str | None, method: str) -> str | None:
    if method not in METHODS:
        raise SemcomError(f"unknown method '{method}' for task reconstruct (choose from: {', '.join(METHODS)})")
    if query is None:
        if method == "importance":
            raise SemcomError("task reconstruct with method importance needs the user's query (--query)")
        return None
    if not query.strip():
        raise SemcomError("--query is empty")
    return " ".join(check_question(query).split())


# A map's pixel modes, each with the value that means "fully important" (PIL's modes of one grey channel)
# ("I": a 16-bit PNG as some Pillow versions open it, 32-bit integers holding 0…65535)
_GREY_MODES = {"1": 1.0, "L": 255.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0,
               "I": 65535.0}
_COLOUR_MODES = ("RGB", "RGBA", "LA")  # accepted only when they hold grey (R = G = B) with no transparency


def read_map(data: bytes, source: str, size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)) -> torch.Tensor:
    """A grey importance map file of the picture's ``size`` (width, height; white = important, as ``semcom
    guide`` writes it) → [height, width] in [0, 1].

    A map is one grey channel: 8-bit (0…255), 16-bit (0…65535) or 1-bit, each scaled to [0, 1] by its own
    range (a 16-bit map is scaled, not clipped). An RGB(A) file is accepted only where it holds grey (its three
    channels equal, fully opaque: a grey map saved as colour); a picture in colour (a scene given as the map
    by mistake), a palette image or a float/32-bit one is refused in one line."""

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != tuple(size):
                raise SemcomError(f"{source}: an importance map of {im.size[0]}×{im.size[1]} pixels; it must be "
                                  f"{size[0]}×{size[1]}, the picture's size (as 'semcom guide' writes it)")
            mode = im.mode
            if mode in _GREY_MODES:
                grey = np.asarray(im).astype(np.float64) / _GREY_MODES[mode]
                if not (0.0 <= grey.min() and grey.max() <= 1.0):
                    raise SemcomError(f"{source}: an importance map with values outside 0…65535")
            elif mode in _COLOUR_MODES:
                pixels = np.asarray(im.convert("RGBA" if "A" in mode else "RGB"), dtype=np.float64)
                colour, alpha = pixels[..., :3], pixels[..., 3] if pixels.shape[-1] == 4 else None
                if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 1],
                                                                                           colour[..., 2])):
                    raise SemcomError(f"{source}: a colour picture, not an importance map (a map is one grey "
                                      "channel, white where it matters, as 'semcom guide' writes it)")
                if alpha is not None and (alpha != 255).any():
                    raise SemcomError(f"{source}: an importance map with transparency; a map is one grey "
                                      "channel with no alpha")
                grey = colour[..., 0] / 255.0
            else:
                raise SemcomError(f"{source}: an image of pixel mode {mode}, not an importance map (a map is "
                                  "one grey channel of 1, 8 or 16 bits, as 'semcom guide' writes it)")
    except (UnidentifiedImageError, OSError, ValueError):
        raise SemcomError(f"{source}: not an image file (or a damaged one)") from None
    return torch.from_numpy(np.clip(grey, 0.0, 1.0).astype(np.float32))


def _tile_boxes_of_map(given_map: torch.Tensor, grid: TileGrid, threshold: float) -> list[Box | None]:
    """A user's importance map [H, W] → each tile's ROI box (a 64×64 map: its box, as before tiling)."""
    if grid.single:
        return [roi_box(avg_pool2d(given_map[None, None], PATCH)[0, 0], threshold)]
    return tile_boxes(patch_importance(given_map, grid), grid, threshold)


def _guide_record(finding: dict) -> dict:
    """What the header keeps of the guide's finding: its outcome and why, the confidences, unused words."""
    return {k: finding[k] for k in ("status", "confidence", "unused_words", "presence", "marked") if k in finding}


def encode_image_file(model, image: torch.Tensor, source: str, query: str | None, budget: int, roi_share: float,
                      method: str, snr_feedback: float, given_map: torch.Tensor | None = None
                      ) -> tuple[SemanticFile, dict]:
    """One picture [3, H, W] of any size → its packet as an encoded semantic file, and what the guide read (or
    the boxes of ``given_map`` [H, W], an importance map the user made). A picture of another size than
    64×64 is sent as tiles of 64×64 (:mod:`semcom_cli.io.tiles`), ``budget`` channel uses each, one packet
    per tile one after the other; the guide reads the whole picture once."""
    budget, roi_share = check_budget(budget), check_roi_share(roi_share)
    grid = tile_grid(int(image.shape[2]), int(image.shape[1]), source)
    info: dict = {}
    boxes: list[Box | None] = [None] * grid.count
    if given_map is not None:
        boxes = _tile_boxes_of_map(given_map, grid, model.roi_threshold)
        info = {"box": picture_box(boxes, grid)}
    elif method == "importance":
        guided = guide_picture(model, image, query, grid)
        finding = guided.finding
        info = {"referent": guided.referent.to_json(), "guide": finding.to_json()}
        if finding.found:
            boxes = guided.boxes
        else:  # the guide does not know what to spend the channel on: the whole picture alike, said so
            method = "uniform"
            info["fallback"] = {"from": "importance", "to": "uniform", "why": finding.why()}
        info["box"] = picture_box(boxes, grid)
    if not grid.single:
        info = {**info, "tile_boxes": [b.to_json() if b else None for b in boxes]} if info else info
    tiles = cut_tiles(pad_to_tiles(image, grid), grid)
    packets = [p for start in range(0, grid.count, _TILE_BATCH)
               for p in encode_images(model, tiles[start:start + _TILE_BATCH], boxes[start:start + _TILE_BATCH],
                                      budget, roi_share, snr_feedback, method)]
    stream = torch.cat([p.stream for p in packets])
    n = int(stream.shape[0])
    layout = {} if grid.single else {"size": [grid.width, grid.height], "tiles": [grid.cols, grid.rows],
                                     "tile_uses": [int(p.stream.shape[0]) for p in packets]}
    header = Header(stage="encode", task="reconstruct", modality="image", checkpoint=model.name,
                    checkpoint_hash=model.hash, source=source, n_tokens=n, symbols_per_token=1, channel_uses=n,
                    query=query, image={"method": method, "budget": budget, "roi_share": roi_share,
                                        "side_uses": packets[0].allocation.side_uses, "snr_feedback": snr_feedback,
                                        **({"referent": info["referent"]} if "referent" in info else {}),
                                        **({"guide": _guide_record(info["guide"])} if "guide" in info else {}),
                                        **({"fallback": info["fallback"]} if "fallback" in info else {}),
                                        **layout})
    return SemanticFile({"symbols": stream[:, None]}, header), info


def _tile_streams(sem: SemanticFile, grid: TileGrid, tile_uses: list[int]) -> tuple[list, list]:
    """A received packet's symbols and gains, split into each tile's (the header was checked on reading)."""
    streams = list(sem.tensors["symbols"][:, 0].split(tile_uses))
    gain = sem.tensors["gain"]
    if gain.dim() > 1:  # a channel that draws a gain per symbol: split like the symbols
        return streams, [gain_from_real(part) for part in gain[:, 0].split(tile_uses)]
    return streams, [gain_from_real(gain)] * grid.count


def decode_image_file(model, sem: SemanticFile, source: str, decoder: str = "codec", steps: int = 20,
                      seed: int | None = None, budget_ms: float | None = None,
                      began: float | None = None) -> tuple[torch.Tensor, dict]:
    """A received reconstruct file → the picture [3, H, W] (its tiles stitched, at the size the sender's
    picture had) and what was read on the way. ``decoder``:
    ``codec`` (part 1's decoder) or the generative decoder's ``fast``, ``quality`` or ``auto`` (which
    reads the packet's query, if it has one); ``seed`` (default: the channel's seed) starts sampling;
    ``began``: when auto's budget clock started (a ``time.perf_counter()`` value; default: as the
    side information is read)."""

    check_decoder(decoder)
    check_steps(steps)
    check_budget_ms(budget_ms)
    h = sem.header
    if h.checkpoint_hash != model.hash:
        raise SemcomError(f"{source} was encoded with checkpoint {h.checkpoint} ({h.checkpoint_hash[:12]}…), "
                          f"not {model.name} ({model.hash[:12]}…)")
    info = h.image
    grid, tile_uses = tile_layout(info, h.channel_uses)
    streams, gains = _tile_streams(sem, grid, tile_uses)
    choice = None
    if decoder == "codec":
        images, boxes = decode_streams(model, streams, gains, float(h.snr_db), info["budget"], info["roi_share"],
                                       info["method"], info["side_uses"])
    else:
        seed = int(h.seed or 0) if seed is None else seed
        if decoder == "fast" or not h.query:  # the fast decoder reads no query: MiniLM is not loaded for it
            queries = torch.zeros(len(streams), QUERY_DIM)
        else:  # embedded once the budget's clock runs: part of the decode
            def queries():
                return embed_queries([h.query] * len(streams))
        images, boxes, choice = decode_streams_generative(
            model, streams, gains, float(h.snr_db), info["budget"], info["roi_share"], info["method"],
            queries, decoder, steps, seed, budget_ms, began=began, samples=DOUBT_SAMPLES, side_uses=info["side_uses"])
    result = {"task": "reconstruct", "method": info["method"], "channel": h.channel, "snr_db": h.snr_db,
              "seed": h.seed, "channel_uses": h.channel_uses, "side_uses": info["side_uses"],
              "box_received": picture_box(boxes, grid), "query": h.query, "source": h.source,
              "checkpoint": model.name, "checkpoint_hash": model.hash,
              "decoder": {"requested": "codec", "used": "codec"} if choice is None else choice.to_json()}
    if not grid.single:  # box_received is then over the whole picture's 8×8 patches
        result.update({"size": [grid.width, grid.height], "tiles": [grid.cols, grid.rows],
                       "channel_uses_per_tile": info["budget"],
                       "tile_boxes": [b.to_json() if b else None for b in boxes]})
    return stitch_tiles(images, grid), result


def png_bytes(image: torch.Tensor, metadata: dict | None = None) -> bytes:
    """[3, H, W] in [0, 1] → PNG bytes (the same pixels and metadata give the same bytes); ``metadata``
    travels as JSON in a ``semcom`` text chunk."""

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    info = None
    if metadata is not None:
        info = PngInfo()
        info.add_text("semcom", json.dumps(metadata, sort_keys=True))
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def map_png_bytes(probabilities: torch.Tensor) -> bytes:
    """An importance map [H, W] in [0, 1] → an 8-bit grey PNG of one channel (white: what the query refers to)."""
    pixels = (probabilities.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode="L").save(buf, "PNG")
    return buf.getvalue()


