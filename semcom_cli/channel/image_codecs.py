"""Image source coding for the digital baseline: today's codecs through Pillow, at the best quality that fits.

Codecs: ``webp``, ``jpeg``, ``png`` (Pillow), ``avif`` (AV1 intra, Pillow's own plugin), ``jpeg2000``
(OpenJPEG, through Pillow) and ``heif`` (HEVC intra, the codec inside BPG; ``pillow-heif``, the
``codecs`` extra). :func:`compress_image` tries each codec's quality ladder from the best down and
keeps the first encoding that fits the byte budget.

*Why a shared dictionary.* At 64×64 a file is mostly container: 250 bytes of JPEG 2000 boxes, 340 of
AVIF's, 420 of HEIF's, 700 of JPEG's tables, for a picture whose coded data is a few dozen bytes. A
link that knows the picture size and the codec need not send what both ends can rebuild, as BPG's
few-byte header shows. So the file is sent as raw DEFLATE (zlib) against a preset dictionary both ends
hold: the codec's own encodings of a mid-grey picture of the same size at every step of its ladder.
The container's boxes, tables and parameter sets then cost a few bytes of back-references, and the
codec's coded data travels as it is. The same for every codec, so they are compared on their coding.
"""

from __future__ import annotations

import io
import zlib
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.optional import require

__all__ = ["CODECS", "compress_image", "decompress_image", "codec_levels", "codec_names", "check_codec"]

# codec → (Pillow format name, quality ladder from best to worst). JPEG 2000's steps are compression
# ratios (its "rates" mode); PNG is lossless and has one step.
_LADDERS: dict[str, tuple[str, tuple[int, ...]]] = {
    "webp": ("WEBP", (95, 90, 85, 80, 70, 60, 50, 40, 30, 20, 10, 5, 0)),
    "jpeg": ("JPEG", (95, 90, 85, 80, 70, 60, 50, 40, 30, 20, 10, 5, 0)),
    "png": ("PNG", (0,)),
    "avif": ("AVIF", (95, 90, 85, 80, 70, 60, 50, 40, 30, 20, 10, 5, 0)),
    "heif": ("HEIF", (95, 90, 85, 80, 70, 60, 50, 40, 30, 20, 10, 5, 0)),
    "jpeg2000": ("JPEG2000", (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)),
}
CODECS = tuple(_LADDERS)
_DICTIONARY_BYTES = 32 * 1024  # DEFLATE's window: only the dictionary's last 32 KiB can be referred to


def check_codec(codec: str) -> str:
    """The codec's name, or one line naming the choices (and the extra HEIF needs)."""
    if codec not in _LADDERS:
        raise SemcomError(f"unknown image codec '{codec}' (choose from: {', '.join(CODECS)})")
    if codec == "heif":
        require("pillow_heif")
    return codec


def codec_names(value: str | list[str]) -> list[str]:
    """``--image-codec`` as given: one name, a comma list, or ``all`` → the names, in order, once each
    (not checked: the caller says which are unknown in its own words)."""
    if isinstance(value, str):
        value = list(CODECS) if value.strip() == "all" else [v.strip() for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(value))


def codec_levels(codec: str) -> tuple[int, ...]:
    """The codec's quality ladder, best first."""
    return _LADDERS[check_codec(codec)][1]


def _register_heif() -> None:
    import pillow_heif  # heavy: optional (the codecs extra), only when HEIF is asked for

    pillow_heif.register_heif_opener()


def _encode(pixels: np.ndarray, codec: str, level: int) -> bytes:
    """One uint8 [H, W, 3] picture as the codec's file at one step of its ladder."""
    fmt = _LADDERS[codec][0]
    if codec == "heif":
        _register_heif()
    options: dict = {"quality": level}
    if codec == "png":
        options = {"optimize": True}
    elif codec == "jpeg2000":
        options = {"quality_mode": "rates", "quality_layers": [level], "irreversible": True}
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **options)
    return buf.getvalue()


@lru_cache(maxsize=32)
def _dictionary(codec: str, height: int, width: int) -> bytes:
    """What both ends hold: the codec's files of a mid-grey picture of this size, worst step last (the
    window keeps the end, where the small files are)."""
    grey = np.full((height, width, 3), 128, dtype=np.uint8)
    return b"".join(_encode(grey, codec, level) for level in _LADDERS[codec][1])[-_DICTIONARY_BYTES:]


def _pack(data: bytes, dictionary: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    return packer.compress(data) + packer.flush()


def _unpack(data: bytes, dictionary: bytes) -> bytes:
    unpacker = zlib.decompressobj(-15, dictionary)
    return unpacker.decompress(data, 1 << 22) + unpacker.flush()


def compress_image(image: torch.Tensor, max_bytes: int, codec: str = "webp") -> bytes | None:
    """The best-quality encoding of a uint8 [3, H, W] image that fits ``max_bytes`` once packed against
    the codec's dictionary (None: not even the lowest step fits)."""
    check_codec(codec)
    pixels = image.permute(1, 2, 0).contiguous().numpy()
    dictionary = _dictionary(codec, *pixels.shape[:2])
    levels = _LADDERS[codec][1]
    # the lowest step first: where even it does not fit (most budgets of a few channel uses), one encoding
    # says so instead of a whole ladder of them (AVIF and HEIF take 3–7 ms each at 64×64)
    lowest = _pack(_encode(pixels, codec, levels[-1]), dictionary)
    if len(lowest) > max_bytes:
        return None
    for level in levels[:-1]:
        packed = _pack(_encode(pixels, codec, level), dictionary)
        if len(packed) <= max_bytes:
            return packed
    return lowest


def decompress_image(data: bytes, codec: str, size: tuple[int, int]) -> torch.Tensor | None:
    """Packed bytes → float [3, H, W] in [0, 1]; None when they are not a picture of that size."""
    check_codec(codec)
    if codec == "heif":
        _register_heif()
    try:
        raw = _unpack(data, _dictionary(codec, *size))
        with Image.open(io.BytesIO(raw)) as im:
            arr = np.asarray(im.convert("RGB")).copy()
    except Exception:  # noqa: BLE001 - any unpacking or decoder failure is a lost packet
        return None
    if arr.shape[:2] != tuple(size):
        return None
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0
