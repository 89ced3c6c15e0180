"""Data: images from disk, the bundled easy-vqa set, captions derived from its questions.

easy-vqa images show one coloured shape; its questions never state a caption,
so an image's caption ("a red triangle") is derived from what its questions and
answers reveal about colour and shape. Images whose questions do not reveal
both are left out of the caption task.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import easy_vqa
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from semcom_cli.core.errors import SemcomError
from semcom_cli.core.limits import MAX_IMAGE_PIXELS
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["IMAGE_SIZE", "ReadImage", "read_image", "resize_note", "image_from_bytes", "sentence_from_bytes", "EasyVQA",
           "derive_captions", "question_kind", "QUESTION_KINDS"]

IMAGE_SIZE = 64  # the vqa/caption encoder reads 64×64 RGB, easy-vqa's size (reconstruct reads any size)

# What a question asks: an open question (colour or shape), or a yes/no question whose right
# answer says the asked colour or shape is in the image ("present") or is not ("absent").
QUESTION_KINDS = ("open", "present", "absent")


def _to_rgb8(im: Image.Image) -> Image.Image:
    """8-bit RGB. Pillow's own conversion clips 16-bit and 32-bit grey images (a 16-bit PNG would read
    as white), so those are scaled to 8 bits first."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        im = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    return im.convert("RGB")


def _decode(data: bytes, source: str, size: int | None,
            check_size: Callable[[int, int], object] | None) -> tuple[np.ndarray, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as im:
        if im.size[0] * im.size[1] > MAX_IMAGE_PIXELS:
            raise SemcomError(f"{source}: an image of {im.size[0]} × {im.size[1]} pixels; at most "
                              f"{MAX_IMAGE_PIXELS:,} pixels are read")
        if check_size is not None:
            check_size(*im.size)
        im = _to_rgb8(ImageOps.exif_transpose(im))
        given = im.size
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(im, dtype=np.uint8).copy(), given


@dataclass(frozen=True)
class ReadImage:
    """An image file's pixels as read, and the size the file gave (EXIF orientation applied)."""

    pixels: torch.Tensor        # [3, H, W] float in [0, 1]
    given: tuple[int, int]      # (width, height) of the file

    @property
    def resized_from(self) -> list[int] | None:
        """The file's [width, height] where it was read at another size (None: read as it was)."""
        shape = (int(self.pixels.shape[2]), int(self.pixels.shape[1]))
        return None if shape == self.given else list(self.given)


def read_image(data: bytes, source: str, size: int | None = IMAGE_SIZE,
               check_size: Callable[[int, int], object] | None = None) -> ReadImage:
    """Decode an image file to RGB in [0, 1]: resized to ``size``×``size`` (bicubic) where a model reads that
    size, or (``size`` None) at its own size. Images of more than ``MAX_IMAGE_PIXELS`` pixels, and those
    ``check_size(width, height)`` refuses, are refused before they are decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            arr, given = _decode(data, source, size, check_size)
    except Image.DecompressionBombError:
        raise SemcomError(f"{source}: an image of far more than {MAX_IMAGE_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise SemcomError(f"{source}: not an image file (or a damaged one)") from None
    return ReadImage(torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0, given)


def image_from_bytes(data: bytes, source: str) -> torch.Tensor:
    """Decode an image file to [3, 64, 64] float in [0, 1] (EXIF orientation applied, resized if needed:
    :func:`read_image` says whether it was)."""
    return read_image(data, source).pixels


def resize_note(source: str, read: ReadImage, reader: str) -> str | None:
    """The one line that says an image was resized for a model that reads 64×64 (None: it was not)."""
    if read.resized_from is None:
        return None
    width, height = read.resized_from
    return f"{source} is {width}×{height}; the {reader} reads {IMAGE_SIZE}×{IMAGE_SIZE} pictures: resized"


def sentence_from_bytes(data: bytes, source: str) -> str:
    """A UTF-8 text file's sentence, whitespace collapsed."""
    try:
        return " ".join(data.decode("utf-8").split())
    except UnicodeDecodeError:
        raise SemcomError(f"{source}: not a UTF-8 text file") from None


def _says_present(words: list[str], answer: str) -> bool:
    """A yes/no answer says the thing asked about is there (a negated question answered "no" too)."""
    return (answer == "yes") != ("not" in words or "no" in words)


def question_kind(question: str, answer: str) -> str:
    if answer not in ("yes", "no"):
        return "open"
    return "present" if _says_present(question.rstrip("?").split(), answer) else "absent"


def derive_captions(questions, answers, image_ids) -> dict[int, tuple[str, str]]:
    """Colour and shape per image, from what the questions and answers reveal."""
    color: dict[int, str] = {}
    shape: dict[int, str] = {}
    for q, a, i in zip(questions, answers, image_ids):
        words = q.rstrip("?").split()
        q_colors = [w for w in words if w in COLORS]
        q_shapes = [w for w in words if w in SHAPES]
        if a in COLORS:
            color[i] = a
            if q_shapes:
                shape[i] = q_shapes[0]
        elif a in SHAPES:
            shape[i] = a
            if q_colors:
                color[i] = q_colors[0]
        else:  # yes/no: a negated question answered "no" also says the thing is there
            present = _says_present(words, a)
            if present and q_colors:
                color[i] = q_colors[0]
            if present and q_shapes:
                shape[i] = q_shapes[0]
    return {i: (color[i], shape[i]) for i in sorted(color) if i in shape}


@dataclass
class EasyVQA:
    """One split of easy-vqa, images held in memory as uint8 [N, 3, 64, 64]."""

    split: str
    questions: list[str]
    answers: list[str]
    image_ids: list[int]
    images: torch.Tensor
    captions: dict[int, tuple[str, str]] = field(default_factory=dict)
    _kinds: dict[str, list[int]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, split: str) -> "EasyVQA":
        if split == "train":
            q, a, ids = easy_vqa.get_train_questions()
            paths = easy_vqa.get_train_image_paths()
        elif split == "test":
            q, a, ids = easy_vqa.get_test_questions()
            paths = easy_vqa.get_test_image_paths()
        else:
            raise SemcomError(f"unknown easy-vqa split '{split}' (train or test)")
        n = max(paths) + 1
        images = torch.zeros(n, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
        for i, p in paths.items():
            with Image.open(p) as im:
                images[i] = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
        return cls(split, list(q), list(a), list(ids), images, derive_captions(q, a, ids))

    def batch_images(self, image_ids) -> torch.Tensor:
        return self.images[torch.as_tensor(list(image_ids))].float() / 255.0

    def questions_by_kind(self) -> dict[str, list[int]]:
        """Question indices per kind (``QUESTION_KINDS``), computed once."""
        if self._kinds is None:
            self._kinds = {k: [] for k in QUESTION_KINDS}
            for i, (q, a) in enumerate(zip(self.questions, self.answers)):
                self._kinds[question_kind(q, a)].append(i)
        return self._kinds

    @cached_property
    def captioned_ids(self) -> list[int]:
        """Ids of the images with a caption, in order."""
        return sorted(self.captions)

    @cached_property
    def sentences(self) -> list[str]:
        """The distinct questions, used as sentences for the text task."""
        return sorted(set(self.questions))
