"""Work done on first use, for processes that classify one message and exit.

The pipe transport starts a process per bounce, so what importing the classifier costs
counts as much as classifying. Compiling regular expressions is most of that cost, and
one message needs few of the parsers' patterns: :func:`regex` compiles a pattern when it
is first used. :class:`cached` is ``functools.cached_property`` without the lock that
Python 3.11 takes on every first access (the lock costs more than most properties).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

#: What a compiled pattern offers; copied onto the stand-in once compiled.
_PATTERN_ATTRIBUTES = (
    "search", "match", "fullmatch", "finditer", "findall", "sub", "subn", "split",
    "pattern", "flags", "groups", "groupindex",
)


def regex(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, done when the pattern is first used."""
    return _Pattern(pattern, flags)  # type: ignore[return-value]  # behaves as one


class _Pattern:
    """Stands in for a compiled pattern: compiles it on the first attribute asked for,
    then holds its methods, so that later calls cost what the pattern's own do."""

    def __init__(self, pattern: str, flags: int) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> object:
        compiled = re.compile(*self._source)
        for attribute in _PATTERN_ATTRIBUTES:
            setattr(self, attribute, getattr(compiled, attribute))
        return getattr(compiled, name)


if TYPE_CHECKING:
    from functools import cached_property

    cached = cached_property
else:

    class cached:  # noqa: N801 - named like the decorator it stands for
        """``functools.cached_property`` without the lock."""

        def __init__(self, func: Callable[[object], object]) -> None:
            self.func = func
            self.name = func.__name__
            self.__doc__ = func.__doc__

        def __set_name__(self, owner: type, name: str) -> None:
            self.name = name

        def __get__(self, instance: object, owner: type | None = None) -> object:
            if instance is None:
                return self
            value = instance.__dict__[self.name] = self.func(instance)
            return value
