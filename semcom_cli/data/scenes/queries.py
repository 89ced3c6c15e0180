"""Referring queries for a scene: phrases and questions that pick out exactly one object.

Kinds: by colour ("the red shape"), by shape ("the circle"), both ("the red circle"), by position
("the shape at the top left", "the leftmost triangle"), by size ("the largest shape"), and
easy-vqa-style questions about one object ("what color is the triangle?", with its answer). A
query is made only where it is unambiguous: the attribute is unique in the scene, or (position,
size) the referent leads the next object by a clear margin.

Each kind has training wordings and **test-only wordings** the training queries never use, so a
measure on the test split tells whether a model learnt the referent or the phrasing.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from semcom_cli.data.scenes.generator import Scene
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["Query", "QUERY_KINDS", "WORDINGS", "Referent", "REFERENT_VALUES", "referring_queries", "absent_queries",
           "ABSENT"]

QUERY_KINDS = ("color", "shape", "color_shape", "position", "size", "question")

# {c}: colour, {s}: shape, {p}: corner phrase, {e}: extreme (leftmost, largest, …), {n}: noun,
# {d}: direction (left, up, …), {b}: side (left, top, …), {z}: size word
WORDINGS = {
    "train": {
        "color": ("the {c} shape", "the {c} object", "the {c} one", "the {c} thing", "the object in {c}",
                  "point to the {c} shape"),
        "shape": ("the {s}", "the {s} in the image", "the {s} object", "look at the {s}", "the one that is a {s}"),
        "color_shape": ("the {c} {s}", "the {s} that is {c}", "the {s} in {c}", "show the {c} {s}"),
        "position": ("the {n} at the {p}", "the {n} in the {p} corner", "the {n} near the {p}", "the {e} {n}",
                     "the {n} that is {e}", "the {n} closest to the {b} edge", "the {n} most to the {b}"),
        "size": ("the {e} shape", "the {e} object", "the {e} one", "the {z} {n}"),
        "question": ("what color is the {s}?", "what is the color of the {s}?", "tell me the colour of the {s}",
                     "what shape is the {c} object?", "what is the shape of the {c} thing?"),
    },
    "test": {
        "color": ("the thing coloured {c}", "whatever is {c}"),
        "shape": ("the {s} shape", "where is the {s}"),
        "color_shape": ("a {c}-colored {s}", "find the {c} {s}"),
        "position": ("the {n} in the {p} area", "the {n} that is furthest {d}"),
        "size": ("the {n} of the {z} size", "which shape is {e}"),
        "question": ("which colour does the {s} have?", "the {c} object is which shape?"),
    },
}
WORDINGS["val"] = WORDINGS["train"]

_CORNERS = {"top left": (0, 0), "top right": (1, 0), "bottom left": (0, 1), "bottom right": (1, 1)}
_EXTREMES = {"leftmost": ("x", min, "left", "left"), "rightmost": ("x", max, "right", "right"),
             "topmost": ("y", min, "up", "top"), "lowest": ("y", max, "down", "bottom")}
ABSENT = -1              # the target of a query naming what the scene does not hold
EMPTY_CORNER = 0.6       # no object's centre within this (|dx| + |dy|, of the side) of a corner
POSITION_MARGIN = 0.15  # of the image side: the referent must lead the next object by this much
SIZE_RATIO = 1.5         # largest / smallest: the referent's visible area this many times the next one's


# What a query says about its object, field by field (None: the query does not say). Whatever the
# wording, a query of these scenes means one of these combinations: the LLM's reading of the query is
# mapped onto them (:mod:`semcom_cli.reconstruct.guidance.referent`), and the image is searched for them.
REFERENT_VALUES: dict[str, tuple] = {
    "color": (None, *COLORS),
    "shape": (None, *SHAPES),
    "where": (None, "top left", "top right", "bottom left", "bottom right", "leftmost", "rightmost", "topmost",
              "lowest"),
    "size": (None, "largest", "smallest"),
}


@dataclass(frozen=True)
class Referent:
    color: str | None = None
    shape: str | None = None
    where: str | None = None
    size: str | None = None

    def __post_init__(self):
        for field, values in REFERENT_VALUES.items():
            if getattr(self, field) not in values:
                raise ValueError(f"unknown {field} {getattr(self, field)!r}")

    def indices(self) -> list[int]:
        """Each field's value as its index in :data:`REFERENT_VALUES` (0: not said)."""
        return [values.index(getattr(self, field)) for field, values in REFERENT_VALUES.items()]

    @classmethod
    def from_indices(cls, indices) -> "Referent":
        return cls(**{f: values[int(i)] for (f, values), i in zip(REFERENT_VALUES.items(), indices)})

    def to_json(self) -> dict:
        return {f: getattr(self, f) for f in REFERENT_VALUES if getattr(self, f) is not None}

    def describe(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.to_json().items()) or "nothing"


def _referent(kind: str, fields: dict) -> Referent:
    if kind == "color":
        return Referent(color=fields["c"])
    if kind == "shape":
        return Referent(shape=fields["s"])
    if kind == "color_shape":
        return Referent(color=fields["c"], shape=fields["s"])
    if kind == "question":  # it names what it does not ask
        return Referent(shape=fields["s"]) if fields["ask"] == "color" else Referent(color=fields["c"])
    if kind == "position":
        noun = None if fields["n"] == "shape" else fields["n"]
        return Referent(shape=noun, where=fields["p"] if fields.get("p") else fields["e"])
    return Referent(size=fields["e"])


@dataclass(frozen=True)
class Query:
    text: str
    kind: str
    target: int                 # the object it refers to (ABSENT: none of the scene's)
    answer: str | None = None   # questions only: the answer about the target
    referent: Referent = Referent()  # what the query says about the target

    def to_json(self) -> dict:
        out = {"text": self.text, "kind": self.kind, "target": self.target, "referent": self.referent.to_json()}
        return out if self.answer is None else {**out, "answer": self.answer}


def _unique(values: list) -> list[int]:
    return [i for i, v in enumerate(values) if values.count(v) == 1]


def _centroids(scene: Scene) -> list[tuple[float, float]]:
    out = []
    for m in scene.masks:
        ys, xs = m.nonzero()
        out.append((float(xs.mean()) / scene.size, float(ys.mean()) / scene.size))
    return out


def _candidates(scene: Scene) -> list[tuple[str, int, dict]]:
    """(kind, target, fields) for every unambiguous reference in the scene."""
    objs = scene.objects
    colors, shapes = [o.color for o in objs], [o.shape for o in objs]
    out: list[tuple[str, int, dict]] = []
    for i in _unique(colors):
        out.append(("color", i, {"c": colors[i], "s": shapes[i]}))
        out.append(("question", i, {"c": colors[i], "s": shapes[i], "ask": "shape"}))
    for i in _unique(shapes):
        out.append(("shape", i, {"c": colors[i], "s": shapes[i]}))
        out.append(("question", i, {"c": colors[i], "s": shapes[i], "ask": "color"}))
    for i in _unique(list(zip(colors, shapes))):
        out.append(("color_shape", i, {"c": colors[i], "s": shapes[i]}))
    centres = _centroids(scene)
    for phrase, (cx, cy) in _CORNERS.items():  # nearest a corner, clearly nearer than the next object
        d = sorted((abs(x - cx) + abs(y - cy), i) for i, (x, y) in enumerate(centres))
        if len(d) > 1 and d[1][0] - d[0][0] >= 2 * POSITION_MARGIN and d[0][0] < 0.6:
            out.append(("position", d[0][1], {"p": phrase, "n": "shape"}))
    for name, (axis, pick, direction, side) in _EXTREMES.items():
        for noun, members in [("shape", range(len(objs)))] + [(s, [i for i in range(len(objs)) if shapes[i] == s])
                                                              for s in sorted(set(shapes))]:
            members = list(members)
            if len(members) < 2:
                continue
            coord = [centres[i][0 if axis == "x" else 1] for i in members]
            best = pick(range(len(members)), key=lambda k: coord[k])
            rest = [abs(coord[k] - coord[best]) for k in range(len(members)) if k != best]
            if min(rest) >= POSITION_MARGIN:
                out.append(("position", members[best], {"e": name, "n": noun, "d": direction, "b": side, "p": None}))
    areas = scene.areas()
    order = sorted(range(len(objs)), key=lambda i: areas[i])
    if len(objs) > 1 and areas[order[-1]] >= SIZE_RATIO * areas[order[-2]]:
        out.append(("size", order[-1], {"e": "largest", "z": "biggest", "n": "shape"}))
    if len(objs) > 1 and areas[order[1]] >= SIZE_RATIO * areas[order[0]]:
        out.append(("size", order[0], {"e": "smallest", "z": "smallest", "n": "shape"}))
    return out


def _render(kind: str, fields: dict, wording: str) -> str | None:
    """The wording filled in, or None where it does not fit the reference (a corner phrase needs a
    corner, an extreme one an extreme)."""
    if kind == "position":
        corner = fields.get("p") is not None
        if ("{p}" in wording) != corner:
            return None
        if ("{d}" in wording or "{b}" in wording) and fields.get("d") is None:
            return None
    if kind == "question":  # a question names what it does not ask about
        asks_color = "color" in wording or "colour" in wording
        if asks_color != (fields["ask"] == "color"):
            return None
    return wording.format(**{k: v for k, v in fields.items() if v is not None})


def referring_queries(scene: Scene, split: str = "train", seed: int = 0, per_kind: int = 1) -> list[Query]:
    """Up to ``per_kind`` queries of each kind the scene allows, each in one of the split's wordings
    (seeded), in ``QUERY_KINDS`` order."""
    if split not in WORDINGS:
        raise ValueError(f"unknown split {split!r} (train, val, test)")
    rng = random.Random(f"{scene.seed}:{split}:{seed}")
    by_kind: dict[str, list[Query]] = {k: [] for k in QUERY_KINDS}
    for kind, target, fields in _candidates(scene):
        options = [w for w in WORDINGS[split][kind] if _render(kind, fields, w) is not None]
        if not options:
            continue
        text = _render(kind, fields, rng.choice(options))
        obj = scene.objects[target]
        answer = (obj.color if fields.get("ask") == "color" else obj.shape) if kind == "question" else None
        by_kind[kind].append(Query(text, kind, target, answer, _referent(kind, fields)))
    out = []
    for kind in QUERY_KINDS:
        found = by_kind[kind]
        rng.shuffle(found)
        out += found[:per_kind]
    return out


def _absent_candidates(scene: Scene) -> list[tuple[str, dict]]:
    """(kind, fields) for every reference to something the scene does not hold: a colour, a shape or
    a colour-and-shape no object has, a corner no object is near, the leftmost (…) of a shape it lacks."""
    colors, shapes = {o.color for o in scene.objects}, {o.shape for o in scene.objects}
    pairs = {(o.color, o.shape) for o in scene.objects}
    out: list[tuple[str, dict]] = []
    out += [("color", {"c": c}) for c in COLORS if c not in colors]
    out += [("shape", {"s": s}) for s in SHAPES if s not in shapes]
    out += [("color_shape", {"c": c, "s": s}) for c in colors for s in SHAPES if (c, s) not in pairs]
    centres = _centroids(scene)
    for phrase, (cx, cy) in _CORNERS.items():
        if min(abs(x - cx) + abs(y - cy) for x, y in centres) >= EMPTY_CORNER:
            out.append(("position", {"p": phrase, "n": "shape"}))
    for name, (_, _, direction, side) in _EXTREMES.items():
        out += [("position", {"e": name, "n": s, "d": direction, "b": side, "p": None}) for s in SHAPES
                if s not in shapes]
    return out


def absent_queries(scene: Scene, split: str = "test", seed: int = 0, per_kind: int = 1) -> list[Query]:
    """Up to ``per_kind`` queries of each kind naming something the scene does not hold, in the split's
    wordings (target :data:`ABSENT`): what the guide must answer "not found" to."""
    if split not in WORDINGS:
        raise ValueError(f"unknown split {split!r} (train, val, test)")
    rng = random.Random(f"absent:{scene.seed}:{split}:{seed}")
    by_kind: dict[str, list[Query]] = {}
    for kind, fields in _absent_candidates(scene):
        options = [w for w in WORDINGS[split][kind] if _render(kind, fields, w) is not None
                   and all(slot in fields and fields[slot] is not None for slot in re.findall(r"\{(\w)\}", w))]
        if options:
            text = _render(kind, fields, rng.choice(options))
            by_kind.setdefault(kind, []).append(Query(text, kind, ABSENT, None, _referent(kind, fields)))
    out = []
    for kind in QUERY_KINDS:
        found = by_kind.get(kind, [])
        rng.shuffle(found)
        out += found[:per_kind]
    return out
