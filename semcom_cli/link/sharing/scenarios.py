"""Multi-user scenarios built from easy-vqa, seeded: who sees which scene and asks what.

Each scenario draws groups of ``n_users`` users. A user gets one easy-vqa test
image and one of that image's questions (vqa), or the task's answer for it (caption). How
related the users' scenes are is the scenario:

- ``same-scene``: one image, every user a different question about it
  (several viewers of one scene).
- ``same-objects``: different images of the same colour and shape (they
  differ in size and position).
- ``same-color``: one colour, shapes as different as possible (the shapes
  taken in turn, in a random order).
- ``same-shape``: one shape, every user a different colour (8 colours).
- ``unrelated``: every user's image drawn independently from all images (two
  may still share a colour or, with 3 shapes, often a shape: chance overlaps).
- ``distinct``: every user a different colour, shapes as different as possible
  (all different up to 3 users): as little in common as easy-vqa allows.

Only images whose colour and shape the questions reveal (880 of 1,000) are used.
The draw depends on (seed, scenario, n_users, group) alone, so adding groups or
users to a sweep never changes the groups already drawn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from semcom_cli.core.errors import SemcomError
from semcom_cli.data.easyvqa import EasyVQA
from semcom_cli.tasks import get_task

__all__ = ["SCENARIOS", "UserItem", "draw_groups", "check_scenario"]

SCENARIOS = ("same-scene", "same-objects", "same-color", "same-shape", "unrelated", "distinct")
MAX_USERS = 8


@dataclass(frozen=True)
class UserItem:
    image_id: int
    instruction: str | None  # the user's question (vqa); None for caption
    reference: str


def check_scenario(name: str) -> str:
    if name not in SCENARIOS:
        raise SemcomError(f"unknown scenario '{name}' (choose from: {', '.join(SCENARIOS)})")
    return name


class _Index:
    """Questions per image and images per colour / shape / both, in a fixed order."""

    def __init__(self, data: EasyVQA):
        self.data = data
        self.questions: dict[int, list[tuple[str, str]]] = {}
        for q, a, i in zip(data.questions, data.answers, data.image_ids):
            if i in data.captions and (q, a) not in self.questions.setdefault(i, []):
                self.questions[i].append((q, a))
        self.images = sorted(i for i in data.captions if self.questions.get(i))
        self.by: dict[tuple, list[int]] = {}
        for i in self.images:
            color, shape = data.captions[i]
            for key in (("color", color), ("shape", shape), ("both", color, shape)):
                self.by.setdefault(key, []).append(i)


def _images(index: _Index, scenario: str, n: int, rng: random.Random) -> list[int]:
    data = index.data
    if scenario == "same-scene":
        pool = [i for i in index.images if len(index.questions[i]) >= n]
        return [rng.choice(pool)] * n
    if scenario == "same-objects":
        pool = [k for k in sorted(index.by) if k[0] == "both" and len(index.by[k]) >= n]
        return rng.sample(index.by[rng.choice(pool)], n)
    if scenario == "unrelated":
        return [rng.choice(index.images) for _ in range(n)]
    if scenario == "same-color":
        color = rng.choice(sorted({c for c, _ in data.captions.values()}))
        shapes = sorted({s for c, s in data.captions.values() if c == color})
        rng.shuffle(shapes)
        wanted = [("both", color, shapes[k % len(shapes)]) for k in range(n)]
    elif scenario == "same-shape":
        shape = rng.choice(sorted({s for _, s in data.captions.values()}))
        colors = sorted({c for c, s in data.captions.values() if s == shape})
        rng.shuffle(colors)
        wanted = [("both", colors[k % len(colors)], shape) for k in range(n)]
    else:  # distinct
        colors = sorted({c for c, _ in data.captions.values()})
        shapes = sorted({s for _, s in data.captions.values()})
        rng.shuffle(colors)
        rng.shuffle(shapes)
        wanted = [("both", colors[k % len(colors)], shapes[k % len(shapes)]) for k in range(n)]
    chosen: list[int] = []
    for key in wanted:  # distinct images, even where two users get the same colour and shape
        chosen.append(rng.choice([i for i in index.by[key] if i not in chosen]))
    return chosen


def draw_groups(data: EasyVQA, scenario: str, n_users: int, n_groups: int, seed: int,
                task: str = "vqa") -> list[list[UserItem]]:
    """``n_groups`` groups of ``n_users`` users each (see the module's description)."""
    check_scenario(scenario)
    if not 1 <= n_users <= MAX_USERS:
        raise SemcomError(f"users per group must be 1 to {MAX_USERS} (got {n_users})")
    if n_groups < 1:
        raise SemcomError(f"need at least one group (got {n_groups})")
    t = get_task(task)
    if t.modality != "image" or not t.trainable:
        raise SemcomError(f"multi-user scenarios are image tasks: vqa or caption (got '{task}')")
    index = _Index(data)
    # a task with a fixed instruction: each image's reference answer; a question task: the image's questions
    references = {k: r for k, _, r in t.items(data)} if t.instruction is not None else None
    groups = []
    for g in range(n_groups):
        rng = random.Random(f"{seed}:{scenario}:{n_users}:{g}")
        images = _images(index, scenario, n_users, rng)
        if references is not None:
            groups.append([UserItem(i, None, references[i]) for i in images])
            continue
        if scenario == "same-scene":  # different questions about the one scene
            qa = rng.sample(index.questions[images[0]], n_users)
        else:
            qa = [rng.choice(index.questions[i]) for i in images]
        groups.append([UserItem(i, q, a) for i, (q, a) in zip(images, qa)])
    return groups
