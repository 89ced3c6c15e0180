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
from semcom_cli.io.patches import IMAGE_SIZE, PATCH, check_budget, check_roi_share, roi_box
from semcom_cli.io.semantic import Header, SemanticFile
from semcom_cli.reconstruct.generative.decoder import check_budget_ms, check_decoder, check_steps, embed_queries
from semcom_cli.reconstruct.imaging.pipeline import (
    METHODS,
    decode_streams,
    decode_streams_generative,
    encode_images,
    guide_boxes,
)

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


def read_map(data: bytes, source: str) -> torch.Tensor:
    """A grey importance map file (64×64, white = important, as ``semcom guide`` writes) → [64, 64] in [0, 1].

    A map is one grey channel: 8-bit (0…255), 16-bit (0…65535) or 1-bit, each scaled to [0, 1] by its own
    range (a 16-bit map is scaled, not clipped). An RGB(A) file is accepted only where it holds grey (its three
    channels equal, fully opaque: a grey map saved as colour); a picture in colour (a scene given as the map
    by mistake), a palette image or a float/32-bit one is refused in one line."""

    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            if size != (IMAGE_SIZE, IMAGE_SIZE):
                raise SemcomError(f"{source}: an importance map of {size[0]}×{size[1]} pixels; it must be "
                                  f"{IMAGE_SIZE}×{IMAGE_SIZE}, like the image (as 'semcom guide' writes it)")
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


def encode_image_file(model, image: torch.Tensor, source: str, query: str | None, budget: int, roi_share: float,
                      method: str, snr_feedback: float, given_map: torch.Tensor | None = None
                      ) -> tuple[SemanticFile, dict]:
    """One image [3, 64, 64] → its packet as an encoded semantic file, and what the guide read (or the
    box of ``given_map`` [64, 64], an importance map the user made)."""
    budget, roi_share = check_budget(budget), check_roi_share(roi_share)
    info: dict = {}
    box = None
    if given_map is not None:

        box = roi_box(avg_pool2d(given_map[None, None], PATCH)[0, 0], model.roi_threshold)
        info = {"box": box.to_json() if box else None}
    elif method == "importance":
        maps, boxes, referents, _ = guide_boxes(model, image[None], [query])
        box = boxes[0]
        info = {"referent": referents[0].to_json(), "box": box.to_json() if box else None}
    packet = encode_images(model, image[None], [box], budget, roi_share, snr_feedback, method)[0]
    n = int(packet.stream.shape[0])
    header = Header(stage="encode", task="reconstruct", modality="image", checkpoint=model.name,
                    checkpoint_hash=model.hash, source=source, n_tokens=n, symbols_per_token=1, channel_uses=n,
                    query=query, image={"method": method, "budget": budget, "roi_share": roi_share,
                                        "side_uses": packet.allocation.side_uses, "snr_feedback": snr_feedback,
                                        **({"referent": info["referent"]} if "referent" in info else {})})
    return SemanticFile({"symbols": packet.stream[:, None]}, header), info


def decode_image_file(model, sem: SemanticFile, source: str, decoder: str = "codec", steps: int = 20,
                      seed: int | None = None, budget_ms: float | None = None) -> tuple[torch.Tensor, dict]:
    """A received reconstruct file → the image [3, 64, 64] and what was read on the way. ``decoder``:
    ``codec`` (part 1's decoder) or the generative decoder's ``fast``, ``quality`` or ``auto`` (which
    reads the packet's query, if it has one); ``seed`` (default: the channel's seed) starts sampling."""

    check_decoder(decoder)
    check_steps(steps)
    check_budget_ms(budget_ms)
    h = sem.header
    if h.checkpoint_hash != model.hash:
        raise SemcomError(f"{source} was encoded with checkpoint {h.checkpoint} ({h.checkpoint_hash[:12]}…), "
                          f"not {model.name} ({model.hash[:12]}…)")
    info = h.image
    gain = gain_from_real(sem.tensors["gain"])
    streams = [sem.tensors["symbols"][:, 0]]
    choice = None
    if decoder == "codec":
        images, boxes = decode_streams(model, streams, [gain], float(h.snr_db), info["budget"], info["roi_share"],
                                       info["method"])
    else:
        seed = int(h.seed or 0) if seed is None else seed
        images, boxes, choice = decode_streams_generative(
            model, streams, [gain], float(h.snr_db), info["budget"], info["roi_share"], info["method"],
            embed_queries([h.query]), decoder, steps, seed, budget_ms)
    box = boxes[0]
    result = {"task": "reconstruct", "method": info["method"], "channel": h.channel, "snr_db": h.snr_db,
              "seed": h.seed, "channel_uses": h.channel_uses, "side_uses": info["side_uses"],
              "box_received": box.to_json() if box else None, "query": h.query, "source": h.source,
              "checkpoint": model.name, "checkpoint_hash": model.hash,
              "decoder": {"requested": "codec", "used": "codec"} if choice is None else vars(choice)}
    return images[0], result


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


