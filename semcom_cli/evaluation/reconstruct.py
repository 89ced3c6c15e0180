"""Evaluating the reconstruct task (MLLM-SC): scenes through the guide, the codec and the channel.

Items are test-split scenes (plain backgrounds at even indices, photographs at odd ones) with one
referring query each in the test-only wordings. Per point (method × channel × SNR × channel uses ×
ROI share) the reconstruction is scored against the original: PSNR and SSIM of the whole image, inside
the referred object (``roi_``, its exact mask) and outside it (``bg_``); with ``vqa`` also the shipped
VQA checkpoint's accuracy on a question about the referred object, asked of the reconstruction cropped
around that object (the VQA checkpoint was trained on single shapes). The guide's IoU is measured
once per run (it does not depend on the channel) and reported on every ``importance`` point.

Methods: ``importance`` (the guide's box, its side information counted), ``uniform`` (the same codec
without guidance, the whole budget on the light path), ``digital`` (an image codec + 5G LDPC + QAM at
the same channel uses, :mod:`semcom_cli.channel.digital`; a lost packet leaves a grey image) and
``separation`` (the object's box and caption as bits beside the picture, :mod:`semcom_cli.link.separation`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semcom_cli.channel import make_channel, seed_channel
from semcom_cli.channel.digital import link_for, send_payloads
from semcom_cli.channel.image_codecs import compress_image, decompress_image
from semcom_cli.link.separation import object_message, object_uses, paint_object, send_objects
from semcom_cli.core.errors import SemcomError
from semcom_cli.core.registry import Registry
from semcom_cli.data.scenes import referring_queries, scene_at
from semcom_cli.evaluation.metrics import mean, proportion
from semcom_cli.reconstruct.imaging.pipeline import METHODS as CODING_METHODS
from semcom_cli.reconstruct.imaging.pipeline import decode_streams, decode_streams_generative, encode_images
from semcom_cli.tasks import normalize_answer

__all__ = ["ReconstructItems", "load_items", "reconstruct_point", "RECONSTRUCT_METHODS", "crop_question"]

# the codec's methods, and the digital baseline beside them
RECONSTRUCT_METHODS: Registry[str] = Registry("reconstruct method")
for _name in CODING_METHODS:
    RECONSTRUCT_METHODS.register(_name, CODING_METHODS[_name])
RECONSTRUCT_METHODS.register("digital", "an image codec + 5G LDPC + QAM at the same channel uses")
RECONSTRUCT_METHODS.register("separation", "the query's object (box, colour, shape) as 30 bits, the picture in "
                                           "the rest of the budget; the receiver puts the object back")
BACKGROUNDS = ("plain", "textured", "both")


@dataclass
class ReconstructItems:
    images: torch.Tensor          # [N, 3, 64, 64] in [0, 1]
    masks: torch.Tensor           # [N, 64, 64] bool: the referred object
    queries: list[str]
    kinds: list[str]
    objects: list                 # the referred SceneObject
    indices: list[int]            # scene index in the test split


def load_items(limit: int, seed: int = 0, background: str = "both") -> ReconstructItems:
    if background not in BACKGROUNDS:
        raise SemcomError(f"--background must be one of {', '.join(BACKGROUNDS)} (got {background!r})")
    rng = random.Random(f"reconstruct:{seed}")
    images, masks, queries, kinds, objects, indices = [], [], [], [], [], []
    index = 0
    while len(images) < limit:
        textured = bool(index % 2)
        if background == "both" or textured == (background == "textured"):
            scene = scene_at("test", index)
            options = referring_queries(scene, "test", seed=rng.randrange(1 << 30))
            q = options[rng.randrange(len(options))]
            images.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0)
            masks.append(torch.from_numpy(scene.masks[q.target]))
            queries.append(q.text)
            kinds.append(q.kind)
            objects.append(scene.objects[q.target])
            indices.append(index)
        index += 1
    return ReconstructItems(torch.stack(images), torch.stack(masks), queries, kinds, objects, indices)


def _psnr(error: torch.Tensor, where: torch.Tensor) -> list[float]:
    """PSNR (dB) per image of the squared error [B, 64, 64] over the pixels ``where`` [B, 64, 64]."""
    w = where.float()
    mse = (error * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).tolist()


def image_scores(received: torch.Tensor, items: ReconstructItems) -> dict[str, list[float]]:
    """Per image: PSNR and SSIM of the whole image, inside the referred object and outside it."""
    from torchmetrics.functional.image import (
        structural_similarity_index_measure,  # heavy: torchmetrics, image metrics only
    )

    error = (received - items.images).pow(2).mean(1)
    _, ssim_map = structural_similarity_index_measure(received, items.images, data_range=1.0, reduction="none",
                                                      return_full_image=True)
    ssim_map = ssim_map.mean(1)
    inside, outside = items.masks.float(), (~items.masks).float()
    return {"psnr_db": _psnr(error, torch.ones_like(items.masks)), "roi_psnr_db": _psnr(error, items.masks),
            "bg_psnr_db": _psnr(error, ~items.masks), "ssim": ssim_map.flatten(1).mean(1).tolist(),
            "roi_ssim": ((ssim_map * inside).flatten(1).sum(1) / inside.flatten(1).sum(1)).tolist(),
            "bg_ssim": ((ssim_map * outside).flatten(1).sum(1) / outside.flatten(1).sum(1).clamp_min(1)).tolist()}


def crop_question(images: torch.Tensor, masks: torch.Tensor, objects: list, rng: random.Random):
    """The referred object cut out of each image (its box with a margin, resized to 64×64) and a
    question about it in easy-vqa's words, with the answer: its colour, or its shape."""
    crops, questions, answers = [], [], []
    for image, mask, obj in zip(images, masks, objects):
        ys, xs = mask.nonzero(as_tuple=True)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        side = max(y1 - y0, x1 - x0) + 6
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        top = min(max(0, cy - side // 2), 64 - min(side, 64))
        left = min(max(0, cx - side // 2), 64 - min(side, 64))
        side = min(side, 64)
        crop = image[:, top : top + side, left : left + side]
        crops.append(F.interpolate(crop[None], size=(64, 64), mode="nearest")[0])
        if rng.random() < 0.5:
            questions.append("what color is the shape?")
            answers.append(obj.color)
        else:
            questions.append("what shape is in the image?")
            answers.append(obj.shape)
    return torch.stack(crops), questions, answers


@torch.no_grad()
def vqa_right(vqa_model, images: torch.Tensor, items: ReconstructItems, seed: int, batch_size: int = 64) -> list[float]:
    """1/0 per item: the VQA checkpoint's answer about the referred object, from ``images``."""

    crops, questions, answers = crop_question(images, items.masks, items.objects, random.Random(f"vqa:{seed}"))
    right = []
    for start in range(0, len(questions), batch_size):
        tokens, mask = vqa_model.image_tokens(crops[start : start + batch_size])
        said = vqa_model.answer(["vqa"] * tokens.shape[0], questions[start : start + batch_size], tokens, mask)
        right += [float(normalize_answer(s) == normalize_answer(a))
                  for s, a in zip(said, answers[start : start + batch_size])]
    return right


@torch.no_grad()
def reconstruct_point(model, items: ReconstructItems, boxes: list, method: str, channel_name: str, snr_db: float,
                      budget: int, roi_share: float, seed: int, batch_size: int = 64, image_codec: str = "webp",
                      mcs: str = "auto", generative: dict | None = None) -> tuple[torch.Tensor, list[int]]:
    """Reconstructions [N, 3, 64, 64] of every item at one point, and each packet's channel uses.
    ``generative``: decode with the generative decoder ({"decoder": fast | quality, "steps": N,
    "queries": [N, 384] embeddings}); sampling is seeded by (``seed``, batch)."""

    channel = make_channel(channel_name)
    seed_channel(seed)
    if method == "digital":
        out = _digital_pictures(items.images, budget, snr_db, mcs, image_codec, channel)
        grey = torch.full((3, 64, 64), 0.5)
        return torch.stack([o if o is not None else grey for o in out]), [budget] * len(out)
    if method == "separation":
        return _separation(model, items, budget, snr_db, mcs, image_codec, channel, batch_size), [budget] * len(boxes)
    outs, uses = [], []
    for start in range(0, items.images.shape[0], batch_size):
        images = items.images[start : start + batch_size]
        packets = encode_images(model, images, boxes[start : start + batch_size], budget, roi_share, snr_db, method)
        streams, gains = [], []
        for p in packets:
            y, h = channel.send(p.stream[None, :, None], snr_db)  # [1, N, 1, 2]
            streams.append(y[0, :, 0])
            gains.append(h.reshape(-1))
            uses.append(int(p.stream.shape[0]))
        side_uses = packets[0].allocation.side_uses
        if generative is None:
            received, _ = decode_streams(model, streams, gains, snr_db, budget, roi_share, method, side_uses)
        else:
            received, _, _ = decode_streams_generative(
                model, streams, gains, snr_db, budget, roi_share, method,
                generative["queries"][start : start + batch_size], generative["decoder"], generative["steps"],
                seed=seed * 100_003 + start, side_uses=side_uses)
        outs.append(received)
    return torch.cat(outs), uses


def _digital_pictures(images: torch.Tensor, budget: int, snr_db: float, mcs: str, codec: str, channel) -> list:
    """Each picture through the digital link in ``budget`` uses: the decoded picture, or None (lost)."""
    if budget <= 0:
        return [None] * images.shape[0]
    link = link_for(budget, snr_db, mcs)
    pixels = (images * 255).round().to(torch.uint8)
    payloads = [compress_image(p, link.payload_bytes, codec) for p in pixels]
    arrived = send_payloads(payloads, link, snr_db, channel)
    return [decompress_image(a, codec, tuple(images.shape[2:])) if a is not None else None for a in arrived]


@torch.no_grad()
def _separation(model, items: ReconstructItems, budget: int, snr_db: float, mcs: str, codec: str, channel,
                batch_size: int) -> torch.Tensor:
    """The separation baseline: the object's message first (the guide's mask and the presence check's
    caption), then the picture in the rest of the budget; the receiver paints the object back."""
    messages = []
    for start in range(0, items.images.shape[0], batch_size):
        logits, findings = model.guide.find(items.images[start : start + batch_size],
                                            items.queries[start : start + batch_size])
        messages += [object_message(lg > 0, f.marked if f.found else None) for lg, f in zip(logits, findings)]
    uses = object_uses(budget, snr_db, mcs)
    received = send_objects(messages, uses, snr_db, channel)
    pictures = _digital_pictures(items.images, budget - uses, snr_db, mcs, codec, channel)
    return torch.stack([paint_object(p, m) for p, m in zip(pictures, received)])


def summarise(scores: dict[str, list[float]], extra: dict | None = None) -> dict[str, dict]:
    out = {name: mean(values) for name, values in scores.items()}
    for name, values in (extra or {}).items():
        out[name] = proportion(values) if name in ("vqa_accuracy",) else mean(values)
    return out
