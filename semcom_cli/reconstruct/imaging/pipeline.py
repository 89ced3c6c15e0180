"""The reconstruct link as library calls: image (+ query) → symbols → received symbols → image.

:func:`encode_images` runs the guide (when a query is given and the method is ``importance``), turns
its map into a ROI box and an allocation, encodes, and writes each packet as one stream: the side
information's QPSK symbols, then the patches' symbols. :func:`receive_streams` decodes the side
information, recomputes the allocation from the box it read and equalises (one-tap MMSE, perfect
channel knowledge); :func:`decode_streams` then decodes the pixels with part 1's decoder, and
:func:`decode_streams_generative` with the generative decoder (fast, quality or auto).
All work on batches; the CLI passes one image. A picture of another size than 64×64 is sent as tiles
of 64×64 (:mod:`semcom_cli.io.tiles`), one packet each, in one batch; :func:`guide_picture` runs the guide
once over the whole picture and cuts each tile's box out of its map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semcom_cli.channel import to_complex, to_real
from semcom_cli.channel.equalizer import mmse_equalize
from semcom_cli.core.registry import Registry
from semcom_cli.io.patches import GRID, IMAGE_SIZE, Allocation, Box, allocate_rows, roi_box
from semcom_cli.io.tiles import TileGrid, patch_importance
from semcom_cli.reconstruct.guidance.model import patch_map
from semcom_cli.reconstruct.imaging.codec import normalise_power, pack_rows, unpack_rows
from semcom_cli.reconstruct.imaging.side import read_side, side_symbols, side_uses_for

__all__ = ["Packet", "Received", "METHODS", "guide_boxes", "guide_findings", "PictureGuide", "guide_picture", "tile_boxes",
           "encode_images", "receive_streams", "decode_streams",
           "decode_streams_generative"]

# how the dual-path codec spends a packet's channel uses
METHODS: Registry[str] = Registry("method")
METHODS.register("importance", "the guide's box on the high-fidelity path, its side information counted")
METHODS.register("uniform", "no guidance: the whole budget on the light path")


@dataclass
class Packet:
    stream: torch.Tensor        # [N, 2] real: the complex symbols sent, power 1
    allocation: Allocation
    box: Box | None


@torch.no_grad()
def guide_boxes(model, images: torch.Tensor, queries: list[str]):
    """Images [B, 3, 64, 64] and a query each → (patch maps [B, 8, 8], boxes, referents, logits)."""

    logits, referents = model.guide.logits(images, queries)
    maps = patch_map(logits)
    return maps, [roi_box(m, model.roi_threshold) for m in maps], referents, logits


@torch.no_grad()
def guide_findings(model, images: torch.Tensor, queries: list[str]):
    """As :func:`guide_boxes`, the way the transmitter uses the guide: → (patch maps, boxes, findings,
    logits), where a query the guide cannot read, or whose referent the image does not show, has a
    flat map and no box (its :class:`~semcom_cli.reconstruct.guidance.guide.Finding` says which)."""
    logits, findings = model.guide.find(images, queries)
    maps = patch_map(logits)
    return maps, [roi_box(m, model.roi_threshold) if f.found else None for m, f in zip(maps, findings)], findings, \
        logits


@dataclass
class PictureGuide:
    """The guide's answer for one picture of any size."""

    probabilities: torch.Tensor  # [H, W]: the referent's probability per pixel, at the picture's size
    patches: torch.Tensor        # [rows·8, cols·8]: each 8×8 patch's importance over the padded picture
    boxes: list                  # each tile's ROI box (None: no patch of the tile reaches the threshold)
    finding: object              # what the guide read the query as, and whether it found it

    @property
    def referent(self):
        return self.finding.reading.referent


def tile_boxes(patches: torch.Tensor, grid: TileGrid, threshold: float) -> list[Box | None]:
    """Patch importance over the padded picture [rows·8, cols·8] → each tile's ROI box, raster order."""
    return [roi_box(patches[r * GRID:(r + 1) * GRID, c * GRID:(c + 1) * GRID], threshold)
            for r in range(grid.rows) for c in range(grid.cols)]


@torch.no_grad()
def guide_picture(model, picture: torch.Tensor, query: str, grid: TileGrid) -> PictureGuide:
    """One picture [3, H, W] and its query → the guide's map at the picture's size and each tile's box.

    The guide's network sees 64×64 pictures (its attention is over a fixed 8×8 grid of patches), so it
    reads the whole picture resized to 64×64, where "leftmost" and "largest" are judged over everything
    the picture shows; its logits are then resized back to the picture's size. A 64×64 picture takes
    the guide's own path, unchanged."""
    if grid.single:
        maps, boxes, findings, logits = guide_findings(model, picture[None], [query])
        return PictureGuide(torch.sigmoid(logits[0]), maps[0], [boxes[0]], findings[0])
    small = F.interpolate(picture[None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0.0, 1.0)
    _, _, findings, logits = guide_findings(model, small, [query])
    full = F.interpolate(logits[:, None], size=(grid.height, grid.width), mode="bilinear", align_corners=False)
    probabilities = torch.sigmoid(full[0, 0])
    patches = patch_importance(probabilities, grid)
    return PictureGuide(probabilities, patches, tile_boxes(patches, grid, model.roi_threshold), findings[0])


def _box_rows(boxes: list[Box | None]) -> torch.Tensor:
    """Boxes → [B, 4] (x0, y0, x1, y1), -1 for none: what :func:`allocate_rows` reads."""
    return torch.tensor([b.to_json() if b is not None else [-1] * 4 for b in boxes], dtype=torch.long).reshape(-1, 4)


def _allocations(budget: int, boxes: list[Box | None], roi_share: float, guided: bool, side_uses: int):
    n = len(boxes)
    return allocate_rows(torch.full((n,), budget), _box_rows(boxes), torch.full((n,), roi_share, dtype=torch.float64),
                         torch.full((n,), guided), side_uses)


@torch.no_grad()
def encode_images(model, images: torch.Tensor, boxes: list[Box | None], budget: int, roi_share: float,
                  snr_db: torch.Tensor | float, method: str = "importance") -> list[Packet]:
    """Images [B, 3, 64, 64] in [0, 1] with their ROI boxes → one packet each. ``snr_db``: the SNR the
    receiver reports (one value: the encoder is conditioned on it, and it sets the side information's
    length, :func:`~.side.side_uses_for`)."""
    guided = method == "importance"
    reported = float(torch.as_tensor(snr_db).reshape(-1)[0])
    side_uses = side_uses_for(reported, budget) if guided else 0
    uses, roi = _allocations(budget, boxes, roi_share, guided, side_uses)
    snr = torch.as_tensor(snr_db, dtype=torch.float32).expand(images.shape[0]).contiguous()
    hi, light = normalise_power(*model.encoder(images, snr), uses, roi)
    data = pack_rows(hi, light, uses, roi)
    side = to_real(side_symbols(boxes, side_uses)) if guided else None
    return [Packet(torch.cat([side[b], data[b]]) if guided else data[b], Allocation(uses[b], roi[b], side_uses),
                   boxes[b] if guided else None) for b in range(len(boxes))]


@dataclass
class Received:
    """A batch of packets as the receiver has them after equalisation: each patch's symbols, the
    allocation it recomputed from the box it read, and each packet's effective SNR."""

    hi: torch.Tensor          # [B, HI, 2, 8, 8]
    light: torch.Tensor       # [B, LIGHT, 2, 8, 8]
    uses: torch.Tensor        # [B, 64]
    roi: torch.Tensor         # [B, 64] bool
    snr_db: torch.Tensor      # [B] effective SNR after equalisation
    boxes: list               # the boxes read (None: none)


def _stacked(ys: list[torch.Tensor], hs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Streams of possibly different lengths (complex) and their per-symbol gains → [B, N] each, zero-padded
    (a padded gain is 1, so equalising the padding divides nothing by zero)."""
    longest = max(int(y.shape[0]) for y in ys)
    y_rows = torch.zeros(len(ys), longest, dtype=torch.complex64)
    h_rows = torch.ones(len(ys), longest, dtype=torch.complex64)
    for i, (y, h) in enumerate(zip(ys, hs)):
        y_rows[i, : y.shape[0]] = y
        h_rows[i, : y.shape[0]] = h
    return y_rows, h_rows


@torch.no_grad()
def receive_streams(streams: list[torch.Tensor], gains: list[torch.Tensor], snr_db: float, budget: int,
                    roi_share: float, method: str = "importance", side_uses: int | None = None) -> Received:
    """Received streams [N, 2] (real) with their gains (complex: a scalar, or one per symbol) → the
    side information read, the allocation recomputed, the symbols equalised into their patches, all
    packets at once. ``side_uses``: the side information's length, as the packet's header says it
    (default: what the transmitter chose at ``snr_db``)."""
    guided = method == "importance"
    ys = [to_complex(y) for y in streams]
    hs = [h.reshape(-1) if h.numel() > 1 else h.reshape(1).expand(y.shape[0]) for y, h in zip(ys, gains)]
    y, h = _stacked(ys, hs)
    lengths = torch.tensor([int(s.shape[0]) for s in ys])
    boxes: list[Box | None] = [None] * len(ys)
    side = 0
    if guided:  # every packet's side information decoded in one batch
        side = side_uses_for(snr_db, budget) if side_uses is None else int(side_uses)
        boxes = read_side(y[:, :side], h[:, :side], snr_db)
        y, h, lengths = y[:, side:], h[:, side:], lengths - side
    uses, roi = _allocations(budget, boxes, roi_share, guided, side)
    # symbols past a row's own length are padding: zero them after equalising
    x = mmse_equalize(y, h, snr_db) * (torch.arange(y.shape[1]) < lengths[:, None])
    hi, light = unpack_rows(to_real(x), uses, roi)
    power = torch.stack([g.abs().pow(2).mean() for g in hs]).clamp_min(1e-12)  # the decoder is told the effective SNR
    return Received(hi, light, uses, roi, (snr_db + 10 * torch.log10(power)).float(), boxes)


@torch.no_grad()
def decode_streams(model, streams: list[torch.Tensor], gains: list[torch.Tensor], snr_db: float, budget: int,
                   roi_share: float, method: str = "importance", side_uses: int | None = None
                   ) -> tuple[torch.Tensor, list[Box | None]]:
    """Part 1's decoder: received streams with their gains → images [B, 3, 64, 64] and the boxes read."""
    r = receive_streams(streams, gains, snr_db, budget, roi_share, method, side_uses)
    return model.decoder(r.hi, r.light, r.uses, r.roi, r.snr_db), r.boxes


@torch.no_grad()
def decode_streams_generative(model, streams: list[torch.Tensor], gains: list[torch.Tensor], snr_db: float,
                              budget: int, roi_share: float, method: str, queries, decoder: str,
                              steps: int = 20, seed: int = 0, budget_ms: float | None = None,
                              began: float | None = None, samples: int | None = None,
                              side_uses: int | None = None):
    """The generative decoder: → (images, boxes read, :class:`~semcom_cli.reconstruct.generative.decoder.Choice`).
    ``queries``: the query embeddings [B, 384] (zeros: none), or a function that makes them (called after
    the clock starts: the query's embedding counts in the budget). The budget's clock starts at ``began``
    (a ``time.perf_counter()`` value; default: before the side information is read); the warm-up that
    times the networks runs before it (``model.warm_up`` at load time does it once). ``samples``: what quality
    draws per image for its confidence (default 1)."""

    generative = model.generative
    guided = callable(queries) or bool(queries.abs().sum() > 0)  # a function: there is a query to embed
    generative.warm_up(len(streams), decoder == "auto", guided, samples or 1)
    began = time.perf_counter() if began is None else began
    r = receive_streams(streams, gains, snr_db, budget, roi_share, method, side_uses)
    queries = queries() if callable(queries) else queries
    cheapest = model.decoder if decoder == "auto" else None
    images, choice = generative.decode(r.hi, r.light, r.uses, r.roi, r.snr_db, queries, decoder, steps, seed,
                                       budget_ms, began=began, method=method, samples=samples, cheapest=cheapest)
    return images, r.boxes, choice
