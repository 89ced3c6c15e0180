"""One registry type for every named kind: channels, tasks, projectors, methods, metrics, decoders, stages…

A registry maps names to what they name, in registration order. Entries are added where they are
defined (``@CHANNELS.register("awgn")``), so a new entry is one decorator away from presets, flags,
help listings and error messages alike; a lookup of an unknown name is refused in one line that lists
what the registry holds.

>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red")
... def red(): return "#f00"
>>> COLOURS.names()
['red']
>>> COLOURS.lookup("blue")
Traceback (most recent call last):
...
semcom_cli.core.errors.SemcomError: unknown colour 'blue' (choose from: red)
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from semcom_cli.core.errors import SemcomError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names → entries of one ``kind`` (the word error messages use: "unknown channel 'x'")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None, entry: T | None = None):
        """``@registry.register("name")`` on a class or function, or ``registry.register("name", obj)``.
        Without a name, the decorated object's ``name`` attribute is used. Names are unique."""
        def add(obj: T) -> T:
            key = name if name is not None else getattr(obj, "name")
            if key in self._entries:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._entries[key] = obj
            return obj

        return add(entry) if entry is not None else add

    def unregister(self, name: str) -> T:
        """Remove and return an entry (a test's toy, a plugin unloaded)."""
        return self._entries.pop(name)

    def lookup(self, name: str) -> T:
        """The entry named ``name``; one line listing the registered names if there is none."""
        return self._entries[self.check(name)]

    def check(self, name: str, what: str | None = None) -> str:
        """``name`` if registered; else a :class:`SemcomError` naming ``what`` (the flag or field)."""
        if name not in self._entries:
            where = f"{what}: " if what else ""
            raise SemcomError(f"{where}unknown {self.kind} {_short(name)} (choose from: {', '.join(self._entries)})")
        return name

    def names(self, where: Callable[[T], bool] | None = None) -> list[str]:
        """Registered names in registration order (those whose entry passes ``where``)."""
        return [n for n, e in self._entries.items() if where is None or where(e)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._entries.get(name, default)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self):
        return list(self._entries.items())

    def values(self):
        return list(self._entries.values())

    def keys(self):
        return list(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


def _short(name) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:59] + "…"
