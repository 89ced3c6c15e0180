"""A feature network semcom trains itself, for a distribution distance between reconstructions and
originals. No Inception or LPIPS weights can be downloaded here, so FID/KID in their usual sense are
out of reach; the measure reported is **KID on semcom's scene-classifier features**: the kernel
inception distance formula (torchmetrics) over the statistics of a small CNN trained to tell, from a
scene, which of the 8 colours and 3 shapes it shows and whether its background is a photograph: its
128 features before the last layer, and the mean and spread of each block's activations (the early
ones see edges and texture, which the labels do not). Its numbers compare decoders with one another
on these scenes; they are not comparable with published FID/KID figures.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["FeatureSettings", "SceneClassifier", "scene_labels", "kid"]

FEATURES = 128


@dataclass(frozen=True)
class FeatureSettings:
    width: int = 32


def scene_labels(objects_per_scene: list, textured: list[bool]) -> torch.Tensor:
    """[B, 8 + 3 + 1] multi-hot: colours present, shapes present, photographed background."""
    out = torch.zeros(len(textured), len(COLORS) + len(SHAPES) + 1)
    for row, (objects, photo) in enumerate(zip(objects_per_scene, textured)):
        for color, shape in objects:
            out[row, COLORS.index(color)] = 1
            out[row, len(COLORS) + SHAPES.index(shape)] = 1
        out[row, -1] = float(photo)
    return out


class SceneClassifier(nn.Module):
    """64×64 scene → 128 features (:meth:`forward`) → 12 label logits (:meth:`logits`)."""

    def __init__(self, s: FeatureSettings):
        super().__init__()
        w = s.width

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, stride=2), nn.GroupNorm(8, cout), nn.SiLU())

        self.body = nn.Sequential(block(3, w), block(w, 2 * w), block(2 * w, 4 * w), block(4 * w, 4 * w))
        self.project = nn.Linear(4 * w * 2, FEATURES)
        self.head = nn.Linear(FEATURES, len(COLORS) + len(SHAPES) + 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.body(images.float() * 2 - 1)
        pooled = torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)
        return torch.nn.functional.silu(self.project(pooled))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self(images))

    def statistics(self, images: torch.Tensor) -> torch.Tensor:
        """What the KID compares: the 128 features, and the mean and spread of every block's activations
        over the image (the early blocks' spread is what tells a sharp edge from a blurred one; the
        classifier's own features are made to ignore that)."""
        x = images.float() * 2 - 1
        parts = []
        for block in self.body:
            x = block(x)
            parts.append(torch.nn.functional.normalize(torch.cat([x.mean((2, 3)), x.std((2, 3))], 1), dim=-1))
        pooled = torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)
        parts.append(torch.nn.functional.normalize(torch.nn.functional.silu(self.project(pooled)), dim=-1))
        return torch.cat(parts, 1)


class _UnitScaleFeatures(nn.Module):
    """The classifier's statistics, each part unit length and the whole scaled to length √d, so that
    KID's cubic kernel (x·y/d + 1)³ sees values of order one, as with Inception's features."""

    def __init__(self, classifier: SceneClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        stats = self.classifier.statistics(images)
        return torch.nn.functional.normalize(stats, dim=-1) * stats.shape[1] ** 0.5


@torch.no_grad()
def kid(classifier: SceneClassifier, real: torch.Tensor, fake: torch.Tensor, subset_size: int = 50,
        subsets: int = 50) -> dict:
    """KID (×1000) between two sets of images [N, 3, 64, 64] in [0, 1] on the classifier's features:
    mean and standard deviation over random subsets (torchmetrics' estimator)."""
    from torchmetrics.image.kid import KernelInceptionDistance  # heavy: torchmetrics, image metrics only


    size = min(subset_size, real.shape[0], fake.shape[0])
    with warnings.catch_warnings():  # its note that features are kept in memory: a few hundred images here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_UnitScaleFeatures(classifier.eval()), subsets=subsets,
                                         subset_size=size)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    mean, std = metric.compute()
    value, spread = 1000 * float(mean), 1000 * float(std)
    # ci95 here: ± 1.96 × the spread over subsets (overlapping subsets: a rough band, not a strict interval)
    return {"value": value, "std": spread, "ci95": [value - 1.96 * spread, value + 1.96 * spread],
            "n": int(fake.shape[0])}
