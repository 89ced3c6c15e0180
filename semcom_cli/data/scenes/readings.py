"""Queries labelled word by word: what the guide's parser learns to read, and to say it cannot.

A query of these scenes names its object by some of four fields (:class:`.queries.Referent`). The
parser also has to say when it does not know: a query with a value outside the fields' words ("the
purple star", "the medium-sized one"), a word it has no field for ("the striped circle", "the dog"),
another language ("le cercle vert"), nonsense or a request that is not a referring query. Each query
here carries, per field, its value's index in :data:`.queries.REFERENT_VALUES` (0: not said) or
:data:`OUTSIDE` (a value of that field the guide has no word for), and per word a tag: filler, read
(a word that sets a field) or unread (a word the guide cannot use).

The outside words, languages and filler phrases come in a **training** set and a **held-out** set
that never meet, and the known wordings in the split's own ones (:data:`.queries.WORDINGS`) plus
calibration wordings used only on the validation split, so a measure on the held-out side tells
whether the parser learnt what "unknown" means or the words it was shown.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from semcom_cli.data.corpus import corpus_documents, split_sentences
from semcom_cli.data.scenes.queries import REFERENT_VALUES, WORDINGS, _candidates, _referent, _render
from semcom_cli.data.scenes.splits import scene_at
from semcom_cli.tasks.shapes import COLORS, SHAPES

__all__ = ["FILLER", "READ", "UNREAD", "OUTSIDE", "LabelledQuery", "known_queries", "outside_queries",
           "reading_set", "SIDES"]

FILLER, READ, UNREAD = 0, 1, 2
NO_FIELD_KINDS = ("outside attribute", "foreign", "nonsense", "unrelated")
OUTSIDE = -1  # a field's value the guide has no word for (stored as the head's last class)
SIDES = ("train", "held_out")

# slot → the field it sets ({n}: the noun, a shape or the generic "shape")
_SLOT_FIELD = {"c": "color", "s": "shape", "p": "where", "e": None, "n": "shape", "d": "where", "b": "where",
               "z": "size"}

# known wordings that neither the training nor the test split uses: the validation split's calibration
CALIBRATION_WORDINGS = {
    "color": ("the one in {c}", "anything {c}"),
    "shape": ("that {s}", "the {s} there"),
    "color_shape": ("the {c}-coloured {s}", "that {c} {s}"),
    "position": ("the {n} toward the {p}", "the {n} sitting {e}"),
    "size": ("the {z} {n} in the scene", "the shape which is {e}"),
    "question": ("which color is the {s}?", "what kind of shape is the {c} object?"),
}

# more training wordings, for the parser alone: the more ways of saying a known thing it has seen, the
# less a new filler word looks like something it cannot read (none is a test or calibration wording)
PARSER_WORDINGS = {
    "color": ("the {c} item", "something {c}", "the piece in {c}", "the shape painted {c}", "the thing that is {c}"),
    "shape": ("the {s} over there", "the {s} item", "a {s}", "the {s}-shaped thing", "where can i find the {s}"),
    "color_shape": ("the {s} painted {c}", "one {c} {s}", "the {s} which is {c}", "the {c}-hued {s}",
                    "the {s} with a {c} fill"),
    "position": ("the {n} farthest to the {b}", "the {n} placed {e}", "the {n} located at the {p}",
                 "the {n} positioned {e}", "the {e} item", "the {n} on the far {b}"),
    "size": ("the {z} item", "the {n} that looks {e}", "the {e} of all the shapes", "the {n} which appears {e}",
             "the {n} with the {z} area"),
    "question": ("what's the color of the {s}?", "can you tell me what colour the {s} is?",
                 "which shape is painted {c}?", "the {c} one, what shape is it?", "what color do you see on the {s}?",
                 "what color would you call the {s}?", "the {c} object has what shape?"),
}

OUTSIDE_WORDS = {
    "color": {"train": ("purple", "pink", "orange", "white", "violet", "magenta", "cyan", "navy", "maroon", "olive",
                        "beige", "gold", "silver", "turquoise", "lavender", "crimson", "indigo", "tan", "salmon",
                        "mint", "rust", "lilac", "fuchsia", "ochre", "jade", "saffron", "sepia", "taupe", "bronze",
                        "cobalt", "mustard", "pastel"),
              "held_out": ("amber", "scarlet", "lime", "coral", "ivory", "khaki", "charcoal", "emerald", "ruby",
                           "peach", "mauve", "burgundy", "aqua", "cream", "copper", "plum")},
    "shape": {"train": ("star", "hexagon", "pentagon", "heart", "cross", "arrow", "diamond", "crescent", "octagon",
                        "spiral", "ring", "cube", "cylinder", "squiggle", "blob", "polygon", "line", "dot", "curve",
                        "wave", "semicircle", "prism", "torus", "teardrop", "chevron", "octahedron"),
              "held_out": ("trapezoid", "rhombus", "parallelogram", "cone", "pyramid", "moon", "kite", "zigzag",
                           "donut", "lightning bolt")},
    "object": {"train": ("dog", "cat", "car", "tree", "house", "person", "bird", "flower", "chair", "boat", "apple",
                         "fish", "book", "face", "table", "banana", "sun", "building", "plane", "glass", "hat", "leaf",
                         "door", "computer", "pencil", "letter", "number", "word", "bus", "mountain", "river", "coin",
                         "box", "ball", "egg", "bridge", "candle", "guitar", "spoon", "train"),
               "held_out": ("horse", "bicycle", "lamp", "cup", "phone", "bottle", "cloud", "key", "shoe", "window")},
    "corner": {"train": ("center", "middle", "top middle", "bottom middle"),
               "held_out": ("centre", "very middle", "lower middle")},
    "extreme": {"train": ("middle", "central", "second", "innermost"),
                "held_out": ("second-to-last", "halfway", "most central")},
    "size": {"train": ("medium", "medium-sized", "mid-sized", "small", "big", "large", "tiny", "huge"),
             "held_out": ("average-sized", "moderately sized", "little", "enormous", "middling")},
    "attribute": {"train": ("striped", "shiny", "wooden", "dotted", "transparent", "glowing", "hollow", "spotted",
                            "furry", "metallic", "blurry", "moving", "soft", "heavy", "old", "new", "happy", "dirty",
                            "wet", "sharp", "rotating", "faded", "cracked", "painted-over", "upside-down", "famous"),
                  "held_out": ("plaid", "rusty", "glittering", "fuzzy", "checkered", "frozen", "broken", "smiling")},
}

# words the guide has no field for, around known ones ({a}: the outside word)
ATTRIBUTE_WORDINGS = ("the {a} {s}", "the {a} {c} shape", "the {c} {s} that is {a}", "find the {a} one",
                      "the {a} {c} {s}", "the {a} thing")

FOREIGN = {
    "train": {
        "fr": ({"red": "rouge", "green": "vert", "blue": "bleu", "black": "noir", "gray": "gris", "teal": "sarcelle",
                "brown": "marron", "yellow": "jaune"}, {"circle": "cercle", "rectangle": "rectangle",
                                                         "triangle": "triangle"},
               ("le {s} {c}", "la forme {c}", "où est le {s}", "montre le {s} {c}")),
        "de": ({"red": "rot", "green": "grün", "blue": "blau", "black": "schwarz", "gray": "grau", "teal": "türkis",
                "brown": "braun", "yellow": "gelb"}, {"circle": "Kreis", "rectangle": "Rechteck",
                                                       "triangle": "Dreieck"},
               ("der {c}e {s}", "die Form in {c}", "wo ist das {s}", "zeig mir das {s}")),
    },
    "held_out": {
        "es": ({"red": "rojo", "green": "verde", "blue": "azul", "black": "negro", "gray": "gris", "teal": "verde azulado",
                "brown": "marrón", "yellow": "amarillo"}, {"circle": "círculo", "rectangle": "rectángulo",
                                                             "triangle": "triángulo"},
               ("el {s} {c}", "la forma {c}", "dónde está el {s}")),
        "it": ({"red": "rosso", "green": "verde", "blue": "blu", "black": "nero", "gray": "grigio", "teal": "ottanio",
                "brown": "marrone", "yellow": "giallo"}, {"circle": "cerchio", "rectangle": "rettangolo",
                                                          "triangle": "triangolo"},
               ("il {s} {c}", "la forma {c}", "dov'è il {s}")),
    },
}

REQUESTS = {"train": ("what time is it", "tell me a joke", "how are you", "play some music", "open the door",
                      "turn off the lights", "what is your name", "hello there", "send the file", "thank you"),
            "held_out": ("what's the weather like", "call my mother", "set an alarm for seven", "who won the game",
                         "good morning", "order a pizza", "how far is the moon")}

NONSENSE_WORDINGS = ("{x}", "{x} {y}", "the {x}", "the {x} shape", "the {c} {x}", "{x} {s}", "where is the {x}")

FILLER_PHRASES = {
    "train": (("please find ", ""), ("can you show me ", ""), ("highlight ", ""), ("i want to see ", ""),
              ("focus on ", ""), ("zoom in on ", ""), ("look for ", ""), ("mark ", ""), ("select ", ""),
              ("show me ", ""), ("i'm looking for ", ""), ("point out ", ""), ("now ", ""),
              ("", " please"), ("", " in the picture"), ("", " in this image"), ("", " for me"), ("", " here"),
              ("", " over there"), ("", " in the frame"), ("", " thanks"), ("", " in the drawing"),
              ("", " on the canvas"), ("", " shown here")),
    "held_out": (("could you locate ", ""), ("i'm interested in ", ""), ("pick out ", ""), ("find me ", ""),
                 ("", " in the photo"), ("", " if you can"), ("", " in the scene")),
}


@dataclass(frozen=True)
class LabelledQuery:
    text: str
    fields: tuple[int, ...]    # per field of REFERENT_VALUES: the value's index (0: not said) or OUTSIDE
    word_tags: tuple[int, ...]  # per word (white-space separated): FILLER, READ or UNREAD
    kind: str                   # "known" or what makes it unreadable ("outside color", "nonsense", …)

    @property
    def says_what_no_field_holds(self) -> bool:
        """A word of no field at all (an attribute such as "striped", another language, nonsense, a
        request that refers to nothing), as against a field's value outside its words ("purple")."""
        return self.kind in NO_FIELD_KINDS

    @property
    def readable(self) -> bool:
        """The guide can read it: every field known, one at least said, every content word used."""
        return OUTSIDE not in self.fields and any(self.fields) and UNREAD not in self.word_tags


def _fill(wording: str, fills: dict[str, tuple[str, int]]) -> tuple[str, tuple[int, ...]]:
    """A wording with its slots filled → (text, a tag per word): a word holding a slot takes the slot's
    tag (unread over read over filler), the others are filler."""
    text, spans, at = "", [], 0
    for m in re.finditer(r"\{(\w)\}", wording):
        text += wording[at : m.start()]
        value, tag = fills[m.group(1)]
        spans.append((len(text), len(text) + len(value), tag))
        text += value
        at = m.end()
    text += wording[at:]
    tags = []
    for w in re.finditer(r"\S+", text):
        hit = [t for s, e, t in spans if s < w.end() and e > w.start()]
        tags.append(max(hit) if hit else FILLER)
    return text, tuple(tags)


def _known_fills(kind: str, fields: dict) -> dict[str, tuple[str, int]]:
    out = {}
    for slot, value in fields.items():
        if value is None or slot == "ask":
            continue
        generic = slot == "n" and value == "shape"
        out[slot] = (value, FILLER if generic else READ)
    return out


def _indices(kind: str, fields: dict) -> list[int]:
    return _referent(kind, fields).indices()


def _wordings(split: str) -> dict[str, tuple]:
    """The known wordings a split's labelled queries use: training adds the parser's own."""
    if split == "val":
        return CALIBRATION_WORDINGS
    if split == "train":
        return {kind: (*WORDINGS["train"][kind], *PARSER_WORDINGS[kind]) for kind in WORDINGS["train"]}
    return WORDINGS[split]


def _fits(kind: str, fields: dict, wording: str) -> bool:
    return _render(kind, fields, wording) is not None


def known_queries(split: str, scenes: int, start: int = 0, seed: int = 0, per_scene: int = 4) -> list[LabelledQuery]:
    """Up to ``per_scene`` queries naming an object of each of the split's scenes ``start`` …, in the
    split's wordings (validation: the calibration wordings), labelled."""
    rng = random.Random(f"known:{split}:{seed}")
    out = []
    for index in range(start, start + scenes):
        cands = _candidates(scene_at(split, index))
        rng.shuffle(cands)
        for kind, _, fields in cands[:per_scene]:
            options = [w for w in _wordings(split)[kind] if _fits(kind, fields, w)]
            if not options:
                continue
            fills = _known_fills(kind, fields)
            if fields.get("c") == "gray" and rng.random() < 0.4:  # both spellings name the one grey
                fills["c"] = ("grey", READ)
            text, tags = _fill(rng.choice(options), fills)
            out.append(LabelledQuery(text, tuple(_indices(kind, fields)), tags, "known"))
    return out


def _field_index(field: str) -> int:
    return list(REFERENT_VALUES).index(field)


def _outside_of_candidate(kind: str, fields: dict, wording: str, side: str, rng: random.Random):
    """A known query with one of its slots given a word outside the guide's fields, or None where the
    wording has no slot that can take one."""
    slots = [m for m in re.findall(r"\{(\w)\}", wording) if fields.get(m) is not None]
    choices = []
    for slot in slots:
        if slot == "c":
            choices.append(("c", "color", "color"))
        elif slot in ("s", "n"):
            choices += [(slot, "shape", "shape"), (slot, "object", "shape")]
        elif slot == "p":
            choices.append(("p", "corner", "where"))
        elif slot == "e":
            choices.append(("e", "size" if kind == "size" else "extreme", "size" if kind == "size" else "where"))
        elif slot == "z":
            choices.append(("z", "size", "size"))
    if not choices:
        return None
    slot, words, field = rng.choice(choices)
    fills = _known_fills(kind, fields)
    fills[slot] = (rng.choice(OUTSIDE_WORDS[words][side]), UNREAD)
    text, tags = _fill(wording, fills)
    idx = _indices(kind, fields)
    idx[_field_index(field)] = OUTSIDE
    return LabelledQuery(text, tuple(idx), tags, f"outside {words}")


def _filler_words() -> set[str]:
    words = set()
    for split in WORDINGS.values():
        for wordings in split.values():
            for w in wordings:
                words.update(re.sub(r"\{\w\}", " ", w).lower().split())
    for side in FILLER_PHRASES.values():
        for a, b in side:
            words.update((a + " " + b).split())
    return {w.strip("?.!,") for w in words} | {"a", "an", "the", "is", "it", "of", "in", "on", "to", "and"}


def _unrelated(side: str, rng: random.Random, count: int) -> list[LabelledQuery]:
    """Requests that are not referring queries and sentences of a news corpus cut short."""
    known = set(COLORS) | set(SHAPES) | {"grey", "largest", "smallest", "biggest", "leftmost", "rightmost",
                                         "topmost", "lowest", "left", "right", "top", "bottom"}
    filler = _filler_words()
    docs = corpus_documents()
    half = len(docs) // 2
    docs = docs[:half] if side == "train" else docs[half:]
    texts = list(REQUESTS[side])
    while len(texts) < count:
        sentence = rng.choice(split_sentences(rng.choice(docs))).split()
        n = rng.randint(2, 8)
        words = [w.strip("\"'(),;:") for w in sentence[:n]]
        words = [w for w in words if w]
        if words and not any(w.lower().strip(".?!") in known for w in words):
            texts.append(" ".join(words))
    out = []
    for text in texts[:count]:
        tags = tuple(FILLER if w.lower().strip("?.!,") in filler else UNREAD for w in text.split())
        if UNREAD not in tags:
            continue
        out.append(LabelledQuery(text, (0, 0, 0, 0), tags, "unrelated"))
    return out


def _said(wording: str, color, shape) -> tuple[int, ...]:
    """The field targets of a wording that may name a colour ({c}) and a shape ({s}): each value's index,
    OUTSIDE as it is, 0 for a field the wording does not name."""
    def index(field: str, value) -> int:
        return value if value == OUTSIDE else REFERENT_VALUES[field].index(value)
    return (index("color", color) if "{c}" in wording else 0, index("shape", shape) if "{s}" in wording else 0, 0, 0)


def _nonsense_word(rng: random.Random) -> str:
    if rng.random() < 0.3:  # keyboard runs, as a user mashing keys types them
        row = rng.choice(("qwertyuiop", "asdfghjkl", "zxcvbnm"))
        a = rng.randrange(len(row) - 3)
        return row[a : a + rng.randint(3, len(row) - a)]
    consonants, vowels = "bcdfghjklmnpqrstvwxz", "aeiouy"
    return "".join(rng.choice(consonants if i % 2 == 0 else vowels) if rng.random() < 0.8
                   else rng.choice("abcdefghijklmnopqrstuvwxyz") for i in range(rng.randint(3, 8)))


def outside_queries(side: str, count: int, seed: int = 0) -> list[LabelledQuery]:
    """``count`` queries the guide cannot read, of every class, from the ``side``'s words (train or
    held_out): outside values of a field, words of no field, other languages, nonsense, other requests."""
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}")
    rng = random.Random(f"outside:{side}:{seed}")
    split = "train" if side == "train" else "test"
    out: list[LabelledQuery] = []
    share = {"field": 0.45, "attribute": 0.15, "foreign": 0.12, "nonsense": 0.13, "unrelated": 0.15}
    target = {k: round(v * count) for k, v in share.items()}
    index = 0
    while len(out) < target["field"]:
        for kind, _, fields in _candidates(scene_at(split, index)):
            options = [w for w in _wordings(split)[kind] if _fits(kind, fields, w)]
            if options and rng.random() < 0.5:
                q = _outside_of_candidate(kind, fields, rng.choice(options), side, rng)
                if q is not None:
                    out.append(q)
        index += 1
    for _ in range(target["attribute"]):
        wording = rng.choice(ATTRIBUTE_WORDINGS)
        c, s = rng.choice(COLORS), rng.choice(SHAPES)
        fills = {"a": (rng.choice(OUTSIDE_WORDS["attribute"][side]), UNREAD), "c": (c, READ), "s": (s, READ)}
        text, tags = _fill(wording, fills)
        out.append(LabelledQuery(text, _said(wording, c, s), tags, "outside attribute"))
    languages = FOREIGN[side]
    for _ in range(target["foreign"]):
        colours, shapes, wordings = languages[rng.choice(sorted(languages))]
        c, s = rng.choice(COLORS), rng.choice(SHAPES)
        wording = rng.choice(wordings)
        # a word that is English too ("triangle" in French) is read as English
        fills = {"c": (colours[c], UNREAD), "s": (shapes[s], READ if shapes[s] == s else UNREAD)}
        text, _ = _fill(wording, fills)
        tags = tuple(READ if w == s and "{s}" in wording else UNREAD for w in text.split())
        out.append(LabelledQuery(text, _said(wording, OUTSIDE, s if shapes[s] == s else OUTSIDE), tags, "foreign"))
    for _ in range(target["nonsense"]):
        wording = rng.choice(NONSENSE_WORDINGS)
        c, s = rng.choice(COLORS), rng.choice(SHAPES)
        text, tags = _fill(wording, {"x": (_nonsense_word(rng), UNREAD), "y": (_nonsense_word(rng), UNREAD),
                                     "c": (c, READ), "s": (s, READ)})
        out.append(LabelledQuery(text, _said(wording, c, s), tags, "nonsense"))
    out += _unrelated(side, rng, target["unrelated"])
    rng.shuffle(out)
    return out[:count]


def _with_filler(q: LabelledQuery, side: str, rng: random.Random) -> LabelledQuery:
    before, after = rng.choice(FILLER_PHRASES[side])
    text = before + q.text.rstrip("?.!") + after
    tags = (FILLER,) * len(before.split()) + q.word_tags + (FILLER,) * len(after.split())
    return LabelledQuery(text, q.fields, tags, q.kind)


def _vary(q: LabelledQuery, rng: random.Random) -> LabelledQuery:
    """The same query as a user might type it: a capital first letter, an end mark."""
    text = q.text
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    if text[-1] not in "?.!" and rng.random() < 0.4:
        text += rng.choice(".?!")
    return LabelledQuery(text, q.fields, q.word_tags, q.kind)


def reading_set(split: str, scenes: int, outside: int, seed: int = 0, filler: float = 0.3) -> list[LabelledQuery]:
    """The parser's queries of a split: known queries of ``scenes`` scenes (a share ``filler`` of them
    inside a filler phrase) and ``outside`` unreadable ones. Training: the training words; validation
    and test: the held-out words (validation with the calibration wordings, test with the test ones)."""
    side = "train" if split == "train" else "held_out"
    rng = random.Random(f"reading:{split}:{seed}")
    known = known_queries(split, scenes, seed=seed)
    known = [_with_filler(q, side, rng) if rng.random() < filler else q for q in known]
    unknown = outside_queries(side, outside, seed=seed + (0 if split != "test" else 1000))
    out = [_vary(q, rng) for q in known + unknown]
    return list({q.text: q for q in out}.values())
